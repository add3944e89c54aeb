"""Classification losses for the training engine: softmax cross-entropy and multiclass hinge.

Both take ``logits`` N×C and a target that is either int64 class indices (N,) or, for
cross-entropy only, soft targets N×C (rows summing to 1, as mixup and cutmix make them), and
return the mean over the batch as a 0-d tensor (``reduction="none"``: one loss per sample, N,
what loss-based sampling records). Half-precision logits (bf16/fp16 under autocast)
are evaluated in float32 so the log-sum-exp does not lose the small differences between scores;
float64 logits stay float64 (gradient checks).

- Cross-entropy (CS231n lecture 3): ``L_i = -Σ_j q_ij log softmax(s_i)_j`` with ``q_i`` the
  one-hot or soft target. Label smoothing (Szegedy et al. 2016, arXiv:1512.00567, §7) replaces
  ``q_i`` by ``(1 - ε)·q_i + ε/C``, for hard and soft targets alike (as
  ``torch.nn.functional.cross_entropy`` does).
- Multiclass hinge (Weston & Watkins 1999; CS231n's multiclass SVM):
  ``L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + Δ)``. ``torch.nn.functional.multi_margin_loss``
  divides this sum by C; this one does not, so its values match the lectures'.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from striate.checks import did_you_mean, number
from striate.errors import ConfigError
from striate.registry import Registry

__all__ = ["LOSSES", "cross_entropy", "make_loss", "multiclass_hinge"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# the names a loss is also known by
_ALIASES = {"ce": "cross_entropy", "softmax": "cross_entropy", "svm": "hinge"}


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """float32 for half-precision logits, their own dtype otherwise."""
    return torch.float32 if logits.dtype in (torch.float16, torch.bfloat16) else logits.dtype


def _check_logits(logits: Any, owner: str) -> None:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ConfigError(f"{owner}: logits must be a float tensor N×C, got {got}")


def _is_soft(logits: torch.Tensor, target: Any, owner: str) -> bool:
    """Whether ``target`` is soft (N×C float); raise if it fits neither form."""
    if not isinstance(target, torch.Tensor):
        raise ConfigError(f"{owner}: target must be a tensor, got {type(target).__name__}")
    n, c = logits.shape
    if target.ndim == 1 and target.shape[0] == n and not target.is_floating_point():
        return False
    if target.ndim == 2 and target.shape == logits.shape and target.is_floating_point():
        return True
    raise ConfigError(
        f"{owner}: target must be int64 class indices of shape ({n},) or float soft targets of "
        f"shape ({n}, {c}) matching the logits; got {target.dtype} of shape {tuple(target.shape)}"
    )


def _check_smoothing(label_smoothing: Any) -> float:
    return number(
        "loss",
        "label_smoothing",
        label_smoothing,
        low=0.0,
        high=1.0,
        high_open=True,
        hint="0.1 is usual",
    )


def _check_margin(margin: Any) -> float:
    return number("hinge loss", "margin", margin, low=0.0, low_open=True, hint="1.0 is usual")


def _check_reduction(reduction: Any) -> None:
    if reduction not in ("mean", "none"):
        raise ConfigError(f"loss: reduction must be 'mean' or 'none', got {reduction!r}")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_sample.mean() if reduction == "mean" else per_sample


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Mean (or per-sample) softmax cross-entropy of N×C ``logits`` against class indices or
    soft targets."""
    _check_logits(logits, "cross_entropy")
    soft = _is_soft(logits, target, "cross_entropy")
    eps = _check_smoothing(label_smoothing)
    _check_reduction(reduction)
    logp = F.log_softmax(logits.to(_compute_dtype(logits)), dim=1)
    if soft:
        q = target.to(logp.dtype)
        if eps:
            q = q * (1.0 - eps) + eps / logits.shape[1]
        return _reduce(-(q * logp).sum(1), reduction)
    nll = -logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
    if eps:
        # (1-ε)·(-log p_y) + ε·mean_j(-log p_j): the smoothed target without building it
        nll = nll * (1.0 - eps) - logp.mean(1) * eps
    return _reduce(nll, reduction)


def multiclass_hinge(
    logits: torch.Tensor, target: torch.Tensor, margin: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """Mean (or per-sample) Weston–Watkins multiclass hinge loss
    ``Σ_{j≠y} max(0, s_j - s_y + margin)``."""
    _check_logits(logits, "multiclass_hinge")
    if _is_soft(logits, target, "multiclass_hinge"):
        raise ConfigError(
            "multiclass_hinge needs hard labels (int64 class indices), got soft targets: turn off "
            "mixup/cutmix (they make soft targets) or use the cross_entropy loss"
        )
    delta = _check_margin(margin)
    _check_reduction(reduction)
    s = logits.to(_compute_dtype(logits))
    yi = target.long().unsqueeze(1)
    margins = (s - s.gather(1, yi) + delta).clamp(min=0.0)
    margins = margins.scatter(1, yi, 0.0)  # j = y is not a term of the sum
    return _reduce(margins.sum(1), reduction)


def make_loss(
    name: str = "cross_entropy",
    label_smoothing: float = 0.0,
    margin: float = 1.0,
    reduction: str = "mean",
) -> LossFn:
    """The loss ``name`` as a function ``(logits, target) -> mean loss`` (per-sample losses with
    ``reduction="none"``), options bound."""
    key = name.strip().lower() if isinstance(name, str) else name
    key = _ALIASES.get(key, key)
    if key not in LOSSES:
        aliases = ", ".join(f"{a} → {k}" for a, k in _ALIASES.items())
        raise ConfigError(
            f"unknown loss {name!r}; choose one of {', '.join(LOSSES)} (aliases: {aliases})"
            f"{did_you_mean(key, [*LOSSES, *_ALIASES])}"
        )
    eps = _check_smoothing(label_smoothing)
    _check_reduction(reduction)
    if key == "cross_entropy":
        return partial(cross_entropy, label_smoothing=eps, reduction=reduction)
    if eps:
        raise ConfigError(
            f"label_smoothing={eps} applies to cross_entropy only; set it to 0 for the hinge loss"
        )
    return partial(multiclass_hinge, margin=_check_margin(margin), reduction=reduction)


LOSSES: Registry[LossFn] = Registry("loss")
LOSSES.add("cross_entropy", cross_entropy, "softmax cross-entropy (aliases ce, softmax)")
LOSSES.add("hinge", multiclass_hinge, "Weston–Watkins multiclass hinge loss (alias svm)")
