"""Segmentation scores from a confusion matrix of pixels (Long et al. 2015, §5: pixel accuracy,
mean accuracy, mean IU).

    cm = confusion_matrix(pred, target, num_classes=11)      # K×K, rows truth, columns prediction
    scores(cm)   # {"acc": pixel accuracy, "class_acc": mean class accuracy, "miou": mean IoU}

With n_ij the pixels of class i predicted as j and t_i = Σ_j n_ij: pixel accuracy Σ n_ii / Σ t_i,
class accuracy n_ii / t_i, IoU_i = n_ii / (t_i + Σ_j n_ji − n_ii). A class absent from both the
truth and the prediction has no IoU (0/0) and is left out of the mean, as is usual (Cityscapes,
torchmetrics); a class absent from the truth is left out of the mean class accuracy. Pixels whose
truth is `ignore_index` (255, VOC's "void" border) count nowhere.
"""

from __future__ import annotations

import torch

from striate.engine import distributed
from striate.errors import ConfigError

IGNORE_INDEX = 255


def confusion_matrix(
    pred: torch.Tensor,
    target: torch.Tensor,
    num_classes: int,
    ignore_index: int | None = IGNORE_INDEX,
) -> torch.Tensor:
    """The K×K int64 matrix of pixel counts (rows: true class, columns: predicted class) of two
    class maps of one shape, by one `bincount` of target·K + prediction. Truth equal to
    `ignore_index` is skipped; other values outside 0..K−1 raise a ConfigError."""
    if pred.shape != target.shape:
        raise ConfigError(
            f"confusion_matrix: prediction {tuple(pred.shape)} and truth {tuple(target.shape)} "
            f"must have the same shape"
        )
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if ignore_index is not None:
        keep = target != ignore_index
        pred, target = pred[keep], target[keep]
    if len(target) and (
        int(target.min()) < 0
        or int(target.max()) >= num_classes
        or int(pred.min()) < 0
        or int(pred.max()) >= num_classes
    ):
        raise ConfigError(
            f"confusion_matrix: classes must be 0..{num_classes - 1} (or {ignore_index} in the "
            f"truth, ignored), got truth {int(target.min())}..{int(target.max())} and "
            f"prediction {int(pred.min())}..{int(pred.max())}"
        )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.view(num_classes, num_classes)


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """IoU of each class (float64), NaN where the class is in neither truth nor prediction."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.nan)


def class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Recall of each class (float64), NaN where the truth has none of it."""
    cm = cm.double()
    total = cm.sum(1)
    return torch.where(total > 0, cm.diagonal() / total.clamp_min(1), torch.nan)


def scores(cm: torch.Tensor) -> dict[str, float]:
    """Pixel accuracy ("acc"), mean class accuracy ("class_acc") and mean IoU ("miou") of a
    confusion matrix; NaN when it counts no pixel."""
    cm = cm.double()
    total = float(cm.sum())
    return {
        "acc": float(cm.diagonal().sum()) / total if total else float("nan"),
        "class_acc": float(class_accuracy(cm).nanmean()),
        "miou": float(iou_per_class(cm).nanmean()),
    }


class ConfusionMatrix:
    """A confusion matrix accumulated batch by batch on the batches' device, summed across
    processes by `reduce` (as `Evaluation` sums its statistics), read by `scores`."""

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix: torch.Tensor | None = None

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        cm = confusion_matrix(pred, target, self.num_classes, self.ignore_index)
        self.matrix = cm if self.matrix is None else self.matrix + cm

    def reduce(self) -> None:
        if self.matrix is not None and distributed.is_distributed():
            distributed.all_reduce_sum(self.matrix)

    def compute(self) -> dict[str, float]:
        if self.matrix is None:
            return {}
        return scores(self.matrix)
