"""Classification metrics: one-off functions, and an epoch accumulator that never waits on the GPU.

``accuracy``, ``topk_accuracy`` and ``per_class_accuracy`` score one set of predictions and
return host values (they synchronise, which is fine once per evaluation). ``MetricTracker``
is for the training loop: ``update`` only launches tensor ops (top-k, sums, ``index_add_`` into
fixed-size per-class counters) on the batch's device and keeps the running sums there, so a
CUDA step queue is never drained for a metric; ``compute`` copies everything to the host in one
transfer at the end of the epoch.

Targets may be class indices (N,) or soft targets N×C (mixup, cutmix); a soft target counts as
its argmax class. The loss is averaged per sample, ``Σ_b loss_b·n_b / Σ_b n_b``, so a short last
batch weighs what its size says.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import torch

from striate.errors import ConfigError

__all__ = ["MetricTracker", "accuracy", "per_class_accuracy", "topk_accuracy"]


def _check_scores(logits: Any, owner: str, num_classes: int | None = None) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(f"{owner}: logits must be a tensor N×C, got {got}")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ConfigError(
            f"{owner}: logits have {logits.shape[1]} columns but the tracker was made for "
            f"num_classes={num_classes}; make it with the model's number of classes"
        )


def _labels(target: Any, n: int, c: int | None, owner: str) -> torch.Tensor:
    """Class indices (N,) from indices or soft targets N×C (argmax); raise on a shape mismatch."""
    if isinstance(target, torch.Tensor):
        if target.ndim == 1 and target.shape[0] == n and not target.is_floating_point():
            return target.long()
        if target.ndim == 2 and target.shape[0] == n and (c is None or target.shape[1] == c):
            return target.argmax(1)
    got = tuple(target.shape) if isinstance(target, torch.Tensor) else type(target).__name__
    want = f"({n}, {c})" if c is not None else f"({n}, C)"
    raise ConfigError(
        f"{owner}: target must be integer class indices of shape ({n},) or soft targets of "
        f"shape {want}; got {got}"
    )


def _check_k(k: Any, c: int, owner: str) -> int:
    if not isinstance(k, Integral) or isinstance(k, bool) or not 1 <= k <= c:
        raise ConfigError(
            f"{owner}: k must be an integer in 1..{c} (the number of classes), got {k!r}"
        )
    return int(k)


def _check_num_classes(c: Any, owner: str) -> None:
    if not isinstance(c, Integral) or isinstance(c, bool) or c < 1:
        raise ConfigError(f"{owner}: num_classes must be an integer ≥ 1, got {c!r}")


def _nonempty(n: int, owner: str) -> None:
    if n == 0:
        raise ConfigError(f"{owner}: the batch is empty; pass at least one sample")


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of samples whose highest-scoring class is the target class."""
    _check_scores(logits, "accuracy")
    n, c = logits.shape
    _nonempty(n, "accuracy")
    y = _labels(target, n, c, "accuracy").to(logits.device)
    return (logits.argmax(1) == y).double().mean().item()


def topk_accuracy(logits: torch.Tensor, target: torch.Tensor, k: int) -> float:
    """Fraction of samples whose target class is among the ``k`` highest-scoring classes."""
    _check_scores(logits, "topk_accuracy")
    n, c = logits.shape
    _nonempty(n, "topk_accuracy")
    k = _check_k(k, c, "topk_accuracy")
    y = _labels(target, n, c, "topk_accuracy").to(logits.device)
    top = logits.topk(k, dim=1).indices
    return (top == y[:, None]).any(1).double().mean().item()


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Recall of each class: correct / present, float64 on the CPU; NaN where a class is absent.

    ``pred`` is predicted class indices (N,) or scores N×C (argmax is taken).
    """
    _check_num_classes(num_classes, "per_class_accuracy")
    if not isinstance(pred, torch.Tensor) or pred.ndim not in (1, 2):
        got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
        raise ConfigError(
            f"per_class_accuracy: pred must be class indices (N,) or scores N×C, got {got}"
        )
    if pred.ndim == 2:
        _check_scores(pred, "per_class_accuracy", num_classes)
        pred = pred.argmax(1)
    n = pred.shape[0]
    y = _labels(target, n, num_classes, "per_class_accuracy").to(pred.device)
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ConfigError(
            f"per_class_accuracy: target labels must lie in 0..{num_classes - 1}, got "
            f"{int(y.min())}..{int(y.max())}; check num_classes"
        )
    total = torch.zeros(num_classes, dtype=torch.long, device=y.device)
    correct = torch.zeros_like(total)
    total.index_add_(0, y, torch.ones_like(y))
    correct.index_add_(0, y, (pred.long() == y).long())
    return correct.cpu().double() / total.cpu().double()


def _accumulator_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; elsewhere float64 keeps a long epoch's loss sum exact enough
    return torch.float32 if device.type == "mps" else torch.float64


class MetricTracker:
    """Running loss, top-k accuracies and per-class accuracy over an epoch, kept on the device.

    ``topk`` lists the k of the reported top-k accuracies: k = 1 is always reported as "acc";
    each k > 1 below ``num_classes`` as ``f"top{k}"`` (top-k with k ≥ num_classes is always 1).
    """

    def __init__(self, num_classes: int, topk: Sequence[int] = (1, 5)) -> None:
        _check_num_classes(num_classes, "MetricTracker")
        try:
            ks = list(topk)
        except TypeError:
            ks = [topk]
        for k in ks:
            if not isinstance(k, Integral) or isinstance(k, bool) or k < 1:
                raise ConfigError(
                    f"MetricTracker: topk must be positive integers such as (1, 5), got {topk!r}"
                )
        self.num_classes = int(num_classes)
        self.topk: tuple[int, ...] = tuple(sorted({1} | {int(k) for k in ks if k < num_classes}))
        self._device: torch.device | None = None  # set by the first update
        self._state: dict[str, torch.Tensor] = {}
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far (call at the start of each epoch); keeps the device."""
        self._n = 0
        self._n_loss = 0
        for key, value in self._state.items():
            if key != "k_index":
                value.zero_()  # in place: no new allocation, no host transfer

    @property
    def n(self) -> int:
        """Number of samples seen since the last reset."""
        return self._n

    def _init_state(self, device: torch.device) -> None:
        self._device = device
        c, long = self.num_classes, torch.long
        self._state = {
            "loss": torch.zeros((), dtype=_accumulator_dtype(device), device=device),
            "correct": torch.zeros(len(self.topk), dtype=long, device=device),
            "k_index": torch.tensor([k - 1 for k in self.topk], dtype=long, device=device),
            "class_correct": torch.zeros(c, dtype=long, device=device),
            "class_total": torch.zeros(c, dtype=long, device=device),
        }

    @torch.no_grad()
    def update(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        loss: torch.Tensor | float | None = None,
    ) -> None:
        """Add a batch: logits N×C, class indices or soft targets, and the batch's mean loss."""
        _check_scores(logits, "MetricTracker.update", self.num_classes)
        n = logits.shape[0]
        y = _labels(target, n, self.num_classes, "MetricTracker.update")
        if loss is not None and not (
            (isinstance(loss, torch.Tensor) and loss.numel() == 1)
            or (isinstance(loss, Real) and not isinstance(loss, bool))
        ):
            got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ConfigError(
                f"MetricTracker.update: loss must be the batch's mean loss (one number), got {got}"
            )
        if n == 0:
            return
        if self._device is None:
            self._init_state(logits.device)
        s, dev = self._state, self._device
        logits, y = logits.detach().to(dev), y.to(dev)
        top = logits.topk(self.topk[-1], dim=1).indices
        hits = top == y[:, None]  # at most one hit per row, at the target's rank
        s["correct"] += hits.sum(0).cumsum(0).index_select(0, s["k_index"])
        s["class_total"].index_add_(0, y, torch.ones_like(y))
        s["class_correct"].index_add_(0, y, hits[:, 0].long())
        if loss is not None:
            if isinstance(loss, torch.Tensor):
                s["loss"] += loss.detach().reshape(()).to(device=dev, dtype=s["loss"].dtype) * n
            else:
                s["loss"] += float(loss) * n  # a scalar argument: no host-to-device copy
            self._n_loss += n
        self._n += n

    def compute(self) -> dict[str, float]:
        """The epoch's mean loss, "acc" and each ``f"top{k}"``; NaN for what has not been seen."""
        keys = ["acc" if k == 1 else f"top{k}" for k in self.topk]
        if self._n == 0:
            return {"loss": math.nan, **dict.fromkeys(keys, math.nan)}
        s = self._state
        loss_sum, *correct = torch.cat(
            [s["loss"].reshape(1), s["correct"].to(s["loss"].dtype)]
        ).tolist()  # the one host transfer
        out = {"loss": loss_sum / self._n_loss if self._n_loss else math.nan}
        out.update({key: c / self._n for key, c in zip(keys, correct, strict=True)})
        return out

    def per_class(self) -> torch.Tensor:
        """Accuracy (recall) of each class, float64 on the CPU; NaN for classes not seen."""
        if self._n == 0:
            return torch.full((self.num_classes,), math.nan, dtype=torch.float64)
        s = self._state
        counts = torch.stack([s["class_correct"], s["class_total"]]).cpu().double()
        return counts[0] / counts[1]
