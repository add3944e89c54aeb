"""Image classification as a Task: the Trainer's default.

    Classification(loss="cross_entropy", label_smoothing=0.1, topk=(1, 5), tta="flip")

Training reports the running loss and accuracy; evaluation the loss, accuracy and top-k
accuracies, in fp32 whatever the training precision, optionally averaged over test-time
augmented views (`striate.evaluate.tta`). A model with auxiliary heads (GoogLeNet's
`forward_with_aux`) adds `aux_weight` × each head's loss in training only (Szegedy et al. 2014,
§5: "added to the total loss of the network with a discount weight (0.3)").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from striate.checks import number
from striate.engine import distributed
from striate.engine.losses import make_loss
from striate.engine.metrics import MetricTracker
from striate.engine.task import TASKS, Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError
from striate.evaluate.tta import parse_tta, tta_log_probs


class Classification(Task):
    """Class scores from images; see the module docstring."""

    name = "classification"
    running_stats = ("loss", "acc", "n")
    monitor = "val_acc"

    def __init__(
        self,
        loss: str = "cross_entropy",
        label_smoothing: float = 0.0,
        topk: Sequence[int] = (1, 5),
        tta: bool | str = False,
        aux_weight: float = 0.3,
    ) -> None:
        self.loss_name = loss
        self.label_smoothing = label_smoothing
        self.loss_fn = make_loss(loss, label_smoothing=label_smoothing)
        self.sample_loss_fn = make_loss(loss, label_smoothing=label_smoothing, reduction="none")
        parse_tta(tta)  # a bad spec fails here, not after training
        self.tta, self.topk = tta, tuple(topk)
        self.aux_weight = number("Classification", "aux_weight", aux_weight, low=0.0)
        self.metrics = ("loss", "acc", *(f"top{k}" for k in self.topk if k > 1))

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x, y = batch
        with_aux = getattr(model, "forward_with_aux", None)
        if with_aux is not None and getattr(model, "aux_logits", False) and model.training:
            logits, *aux = with_aux(x)
            losses = self.sample_loss_fn(logits, y)
            for head in aux:
                if head is not None:
                    losses = losses + self.aux_weight * self.sample_loss_fn(head, y)
        else:
            logits = model(x)
            losses = self.sample_loss_fn(logits, y)
        loss = losses.mean()
        labels = y.argmax(1) if y.dim() == 2 else y
        n = len(labels)
        correct = (logits.detach().argmax(1) == labels).sum()
        return Step(loss, stack_stats(loss.detach().float() * n, correct, n), losses)

    def setup(self, model: nn.Module, trainer: Any) -> None:
        if getattr(model, "aux_logits", False) and distributed.is_distributed():
            raise ConfigError(
                "Classification: auxiliary heads train on one process (DistributedDataParallel "
                "sees only forward()): build the model with aux_logits=False under torchrun"
            )

    def log_probs(self, model: nn.Module, x: torch.Tensor, tta: bool | str | None = None):
        """Log-probabilities (logits for the hinge loss) of a batch in fp32, averaged over the
        TTA views."""
        views = parse_tta(self.tta if tta is None else tta)
        return tta_log_probs(model, x, views, logits=self.loss_name in ("hinge", "svm"))

    def evaluation_label(self, tta: bool | str | None = None) -> str:
        views = len(parse_tta(self.tta if tta is None else tta))
        return "evaluating" + (f" ({views} views per image)" if views > 1 else "")

    def predict(self, model: nn.Module, x: torch.Tensor, tta: bool | str | None = None):
        """Class probabilities, N×C."""
        return self.log_probs(model, x, tta).softmax(1)

    def evaluation(self, tta: bool | str | None = None) -> Evaluation:
        return ClassificationEvaluation(self, tta)

    def score(self, probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """`evaluate`'s numbers from per-sample probabilities (no second pass over the data:
        cross-entropy and the hinge loss depend on the scores only up to a shift per sample, so
        the log of the probabilities gives the loss of the logits)."""
        log_p = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
        tracker = MetricTracker(probs.shape[1], self.topk)
        tracker.update(log_p, labels, self.loss_fn(log_p, labels))
        return tracker.compute()


class ClassificationEvaluation(Evaluation):
    """Loss, accuracy and top-k accuracy through a MetricTracker (exact counts, reduced across
    processes in one collective)."""

    def __init__(self, task: Classification, tta: bool | str | None) -> None:
        super().__init__(task)
        self.tta = tta
        self.tracker: MetricTracker | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        x, y = batch
        out = self.task.log_probs(model, x, self.tta)
        if self.tracker is None:
            self.tracker = MetricTracker(out.shape[1], self.task.topk)
        self.tracker.update(out, y, self.task.loss_fn(out, y))

    def reduce(self) -> None:
        if self.tracker is not None:
            distributed.all_reduce_tracker(self.tracker)

    def compute(self) -> dict[str, float]:
        return {} if self.tracker is None else self.tracker.compute()


TASKS.add("classification", Classification)
