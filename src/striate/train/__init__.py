"""Training neural networks: the Trainer and its callbacks, optimisers, schedules, LR finder.

    from striate.train import Trainer
    Trainer(epochs=10, opt="sgd", lr=0.1, schedule="onecycle", out="runs/x").fit(model, train, val)

`train_run(TrainConfig(...))` is the whole job behind `striate train` (data, model, run folder);
`doctor(model, data)` runs the lectures' sanity checks (`striate doctor`).
"""

from striate.train.callbacks import (
    EMA,
    Callback,
    Checkpoint,
    CSVLogger,
    EarlyStopping,
    GradientClipping,
    Lookahead,
    ProgressBar,
    TensorBoard,
)
from striate.train.config import TrainConfig
from striate.train.diagnostics import Check, DoctorReport, doctor
from striate.train.ensemble import (
    Ensemble,
    EnsembleResult,
    Snapshots,
    evaluate_ensemble,
    load_snapshots,
    snapshot_paths,
)
from striate.train.hpsearch import SearchResult, Stage, coarse_fine, parse_space, search
from striate.train.losses import LOSSES, cross_entropy, make_loss, multiclass_hinge
from striate.train.lr_finder import LRFinderResult, lr_find
from striate.train.metrics import MetricTracker, accuracy, topk_accuracy
from striate.train.optim import OPTIMIZERS, make_optimizer, param_groups
from striate.train.precision import PRECISIONS, resolve_precision
from striate.train.run import RunResult, train_run
from striate.train.schedules import SCHEDULES, Schedule, Scheduler, make_schedule, plot_schedule
from striate.train.trainer import Trainer, TrainingDiverged

__all__ = [
    "EMA",
    "LOSSES",
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "CSVLogger",
    "Callback",
    "Check",
    "Checkpoint",
    "DoctorReport",
    "EarlyStopping",
    "Ensemble",
    "EnsembleResult",
    "GradientClipping",
    "LRFinderResult",
    "Lookahead",
    "MetricTracker",
    "ProgressBar",
    "RunResult",
    "Schedule",
    "Scheduler",
    "SearchResult",
    "Snapshots",
    "Stage",
    "TensorBoard",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "accuracy",
    "coarse_fine",
    "cross_entropy",
    "doctor",
    "evaluate_ensemble",
    "load_snapshots",
    "lr_find",
    "make_loss",
    "make_optimizer",
    "make_schedule",
    "multiclass_hinge",
    "param_groups",
    "parse_space",
    "plot_schedule",
    "resolve_precision",
    "search",
    "snapshot_paths",
    "topk_accuracy",
    "train_run",
]
