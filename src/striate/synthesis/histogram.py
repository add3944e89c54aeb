"""Histogram matching of features and the histogram loss (Wilmot et al. 2017, arXiv:1701.08893),
pass 2's texture term in painterly harmonization (Luan et al. 2018).

`feature_histogram` counts each channel's values over the masked positions in `bins` equal bins
spanning that channel's range. `remap_histogram` moves values onto a reference histogram while
keeping their order: sort each channel; the value of rank i (from 0) goes to the bin idx whose
cumulative count (the reference scaled to the n values) first exceeds i, at the fraction
(i − cum[idx−1]) / hist[idx] of the bin's width, so that values sharing a bin spread evenly inside
it; then undo the sort. The bins are the reference's, so the remapped values have the reference
histogram. `histogram_loss` is ‖F − R(F)‖² with R(F) the remapped features, held constant.

Where the reference material (../shared/reference/001_*.md, "Deep Painterly Harmonization") is
wrong or departs from the authors:
- it ranks from 1 (i = 1…n) and looks for the first cumulative count ≥ i: the last value of every
  bin then lands on the upper edge, which is the next bin's lower edge, so the remapped histogram
  is off by one value per bin. The authors' kernel (cuda_utils.cu, hist_remap2) ranks from 0 and
  takes cum[idx−1] ≤ i < cum[idx]; so does this module.
- it rebuilds the values with the *output's* minimum and maximum; the histogram's bins span the
  *reference's*, and only those reproduce it (the authors, and Wilmot et al., use the reference's).
- its ``(cum_ref.unsqueeze(1) - rng.unsqueeze(2) < 0).sum(2)`` holds C·n·bins booleans;
  `torch.searchsorted` finds the same bins in C·n.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from striate.checks import one_of, positive_int
from striate.errors import InputError

__all__ = ["Histogram", "feature_histogram", "histogram_loss", "remap_histogram"]


@dataclass
class Histogram:
    """Per-channel counts (C×bins) over equal bins from `low` to `high` (C each)."""

    counts: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    @property
    def bins(self) -> int:
        return self.counts.shape[1]


def _values(owner: str, features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """C×n: the features (C×H×W or 1×C×H×W) at the positions where `mask` (H×W) is set."""
    if isinstance(features, torch.Tensor) and features.dim() == 4 and features.shape[0] == 1:
        features = features[0]
    if not isinstance(features, torch.Tensor) or features.dim() != 3:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise InputError(f"{owner}: features must be C×H×W, got {got}")
    c = features.shape[0]
    if mask is None:
        return features.reshape(c, -1)
    m = mask.reshape(mask.shape[-2:]) if mask.dim() > 2 else mask
    if tuple(m.shape) != tuple(features.shape[1:]):
        raise InputError(
            f"{owner}: mask is {tuple(m.shape)} but the features are {tuple(features.shape[1:])}"
        )
    keep = m.reshape(-1) > 0
    if not bool(keep.any()):
        raise InputError(f"{owner}: the mask selects no position; give a mask with some set")
    return features.reshape(c, -1)[:, keep]


def _bin_of(values: torch.Tensor, low: torch.Tensor, high: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index of each value (C×n) in [low, high] cut into `bins`, the top edge in the last."""
    scaled = (values - low[:, None]) / (high - low)[:, None] * bins
    return scaled.floor().long().clamp(0, bins - 1)


def feature_histogram(
    features: torch.Tensor, bins: int = 256, *, mask: torch.Tensor | None = None
) -> Histogram:
    """Each channel's histogram of `features` (C×H×W) over the positions of `mask` (H×W), in
    `bins` bins from the channel's minimum to its maximum (widened by 1 each way when they are
    equal, as the authors do)."""
    owner = "feature_histogram"
    bins = positive_int(owner, "bins", bins)
    v = _values(owner, features, mask).detach()
    if v.shape[1] == 0:
        raise InputError(f"{owner}: the features have no positions")
    low, high = v.min(1).values, v.max(1).values
    flat = low == high
    low, high = torch.where(flat, low - 1, low), torch.where(flat, high + 1, high)
    idx = _bin_of(v, low, high, bins)
    counts = torch.zeros(v.shape[0], bins, dtype=v.dtype, device=v.device)
    counts.scatter_add_(1, idx, torch.ones_like(v))
    return Histogram(counts, low, high)


def remap_histogram(values: torch.Tensor, target: Histogram) -> torch.Tensor:
    """`values` (C×n) moved onto `target`'s histogram, order kept (see the module's note)."""
    owner = "remap_histogram"
    if not isinstance(values, torch.Tensor) or values.dim() != 2:
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values)
        raise InputError(f"{owner}: values must be C×n, got {got}")
    c, n = values.shape
    if target.counts.shape[0] != c:
        raise InputError(
            f"{owner}: the values have {c} channels and the histogram {target.counts.shape[0]}"
        )
    counts = target.counts.to(values.device, torch.float64)
    hist = counts * n / counts.sum(1, keepdim=True).clamp_min(1e-12)
    cum = hist.cumsum(1)
    cum_prev = torch.cat([torch.zeros(c, 1, dtype=cum.dtype, device=cum.device), cum[:, :-1]], 1)
    _, order = values.detach().sort(1)
    rank = torch.arange(n, dtype=torch.float64, device=values.device).expand(c, n).contiguous()
    idx = torch.searchsorted(cum, rank, right=True).clamp(max=target.bins - 1)
    ratio = ((rank - cum_prev.gather(1, idx)) / hist.gather(1, idx).clamp_min(1e-8)).clamp(0, 1)
    low = target.low.to(values.device, torch.float64)[:, None]
    step = (target.high - target.low).to(values.device, torch.float64)[:, None] / target.bins
    remapped_sorted = low + (idx + ratio) * step
    remapped = torch.empty_like(remapped_sorted).scatter_(1, order, remapped_sorted)
    return remapped.to(values.dtype)


def histogram_loss(
    features: torch.Tensor,
    target: Histogram,
    *,
    mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Σ (F − R(F))² over the masked values of `features` (C×H×W or 1×C×H×W), R the remapping
    onto `target` held constant (Wilmot et al. 2017, eq. 5): "sum", or "mean" over the C·n
    values. Its gradient is 2(F − R(F)) (/ C·n)."""
    owner = "histogram_loss"
    reduction = one_of(owner, "reduction", reduction, ("mean", "sum"))
    v = _values(owner, features, mask)
    r = remap_histogram(v.detach(), target)
    err = (v - r).square().sum()
    return err / v.numel() if reduction == "mean" else err
