"""The task-agnostic training machinery: one loop (`Trainer`), the `Task` that says what a batch's
loss is, callbacks, optimisers, schedules, precision, distributed training, the LR finder and
metrics.

    from striate.engine import Trainer
    Trainer(epochs=10, opt="sgd", lr=0.1, schedule="onecycle", out="runs/x").fit(model, train, val)
"""

from striate.engine.callbacks import (
    EMA,
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    GradientClipping,
    GradientNormLogger,
    Lookahead,
    ProgressBar,
    TensorBoard,
)
from striate.engine.classification import Classification
from striate.engine.divergence import TrainingDiverged
from striate.engine.losses import LOSSES, cross_entropy, make_loss, multiclass_hinge
from striate.engine.lr_finder import LRFinderResult, lr_find
from striate.engine.metrics import MetricTracker, accuracy, topk_accuracy
from striate.engine.muon import Muon
from striate.engine.optim import OPTIMIZERS, make_optimizer, muon_groups, param_groups
from striate.engine.precision import PRECISIONS, resolve_precision
from striate.engine.schedules import SCHEDULES, Schedule, Scheduler, make_schedule, plot_schedule
from striate.engine.step import optimizer_step
from striate.engine.task import TASKS, Evaluation, Step, Task
from striate.engine.trainer import Trainer

__all__ = [
    "EMA",
    "LOSSES",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "TASKS",
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "Classification",
    "EarlyStopping",
    "Evaluation",
    "GradientClipping",
    "GradientNormLogger",
    "LRFinderResult",
    "Lookahead",
    "MetricTracker",
    "Muon",
    "ProgressBar",
    "Schedule",
    "Scheduler",
    "Step",
    "Task",
    "TensorBoard",
    "Trainer",
    "TrainingDiverged",
    "accuracy",
    "cross_entropy",
    "lr_find",
    "make_loss",
    "make_optimizer",
    "make_schedule",
    "multiclass_hinge",
    "muon_groups",
    "optimizer_step",
    "param_groups",
    "plot_schedule",
    "resolve_precision",
    "topk_accuracy",
]
