"""Semantic segmentation as a Task: a class for every pixel.

    Segmentation()                                   # per-pixel cross-entropy
    Segmentation(class_weights=[0.2] + [1.0] * 10)   # background weighted down
    Trainer(epochs=5, task=Segmentation(), opt="adam", lr=1e-3).fit(UNet(), train, val)

A batch is `(x, y)`: images N×C×H×W and class maps N×H×W (int64; `ignore_index` pixels, 255 by
default, count in no loss or score). The model returns logits N×K×H×W. The loss is the mean
cross-entropy over the counted pixels (Long et al. 2015: "a per-pixel multinomial logistic
loss"), weighted per class when `class_weights` are given (then, as `F.cross_entropy` does,
divided by the summed weights of the pixels). Training reports the running loss and pixel
accuracy; evaluation the loss, pixel accuracy, mean class accuracy and mean IoU from a confusion
matrix of every pixel (`striate.segmentation.metrics`), reduced across processes. `val_miou` is
the metric whose best weights are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import integer
from striate.engine.task import TASKS, Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError
from striate.segmentation.metrics import IGNORE_INDEX, ConfusionMatrix


class Segmentation(Task):
    """Per-pixel classification; see the module docstring."""

    name = "segmentation"
    running_stats = ("loss", "acc", "n")
    metrics = ("loss", "acc", "miou")
    monitor = "val_miou"

    def __init__(
        self, class_weights: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        self.ignore_index = integer("Segmentation", "ignore_index", ignore_index)
        self.class_weights = None
        if class_weights is not None:
            w = torch.as_tensor(class_weights, dtype=torch.float32)
            if w.dim() != 1 or len(w) < 2 or not bool(torch.isfinite(w).all() & (w >= 0).all()):
                raise ConfigError(
                    f"Segmentation: class_weights must be one non-negative number per class, "
                    f"got {list(class_weights)!r}"
                )
            self.class_weights = w

    def _check(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        if logits.dim() != 4 or y.shape != (logits.shape[0], *logits.shape[2:]):
            raise ConfigError(
                f"Segmentation: the model must return class scores N×K×H×W for class maps "
                f"N×H×W {tuple(y.shape)}, got {tuple(logits.shape)}"
            )
        w = self.class_weights
        if w is not None and len(w) != logits.shape[1]:
            raise ConfigError(
                f"Segmentation: {len(w)} class_weights for a model of {logits.shape[1]} classes"
            )

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean per-pixel cross-entropy of `logits` (N×K×H×W) against class maps `y`."""
        self._check(logits, y)
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits.float(), y, weight=w, ignore_index=self.ignore_index)

    def _weighted_pixels(self, logits: torch.Tensor, y: torch.Tensor):
        """Per-pixel cross-entropies (already times their class weight, 0 where ignored) and
        the weights they are averaged with, both N×H×W: `loss` is sum / sum, as F.cross_entropy
        averages."""
        self._check(logits, y)
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        per_pixel = F.cross_entropy(
            logits.float(), y, weight=w, ignore_index=self.ignore_index, reduction="none"
        )
        counted = y != self.ignore_index
        weight = counted.float() if w is None else w[y.clamp(0, len(w) - 1)] * counted
        return per_pixel, weight

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        """The loss is the batch's mean over pixels; the per-sample `losses` are each image's own
        mean over its counted pixels (0 for an image whose pixels are all ignored)."""
        x, y = batch[:2]
        logits = model(x)
        per_pixel, weight = self._weighted_pixels(logits, y)
        loss = per_pixel.sum() / weight.sum()  # NaN when every pixel is ignored, as F.cross_entropy
        losses = per_pixel.flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-12)
        counted = y != self.ignore_index
        n = counted.sum()
        correct = ((logits.detach().argmax(1) == y) & counted).sum()
        stats = stack_stats(loss.detach().float() * n, correct, n)
        return Step(loss, stats, losses)

    def evaluation(self, **options: Any) -> Evaluation:
        return SegmentationEvaluation(self)

    def predict(
        self, model: nn.Module, x: torch.Tensor, probabilities: bool = False, **options: Any
    ) -> torch.Tensor:
        """The class map N×H×W (int64), or with `probabilities` the softmax N×K×H×W."""
        logits = model(x).float()
        return logits.softmax(1) if probabilities else logits.argmax(1)


class SegmentationEvaluation(Evaluation):
    """The summed loss over counted pixels and a confusion matrix of every pixel."""

    def __init__(self, task: Segmentation) -> None:
        super().__init__(task)
        self.confusion: ConfusionMatrix | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        x, y = batch[:2]
        logits = model(x).float()
        loss = self.task.loss(logits, y)
        n = (y != self.task.ignore_index).sum()
        stats = stack_stats(torch.where(n > 0, loss * n, 0.0), n).double()
        self.sums = stats if self.sums is None else self.sums + stats
        if self.confusion is None:
            self.confusion = ConfusionMatrix(logits.shape[1], self.task.ignore_index)
        self.confusion.update(logits.argmax(1), y)

    def reduce(self) -> None:
        super().reduce()
        if self.confusion is not None:
            self.confusion.reduce()

    def compute(self) -> dict[str, float]:
        if self.sums is None or self.confusion is None:
            return {}
        loss_sum, n = self.sums.tolist()
        return {"loss": loss_sum / max(n, 1), **self.confusion.compute()}


TASKS.add("segmentation", Segmentation)
