"""The normalisation family for convolutional features N×C×H×W: batch, layer, instance and group
norm, built as torch's own layers, and the axes each one averages over.

Every member computes ``y = γ (x − μ) / sqrt(σ² + ε) + β`` with a learned per-channel scale γ
and shift β (shape 1×C×1×1); they differ only in the set S of entries that share one mean and
variance (Wu and He, "Group Normalization", ECCV 2018, arXiv:1803.08494, eq. 1–3 and Fig. 2):

=========  ================================  =========================  ======================
norm       μ, σ shape (one per ...)          averaged over              torch layer
=========  ================================  =========================  ======================
batch      1×C×1×1 (channel)                 N, H, W                    ``nn.BatchNorm2d(C)``
layer      N×1×1×1 (example)                 C, H, W                    ``nn.GroupNorm(1, C)``
instance   N×C×1×1 (example and channel)     H, W                       ``nn.InstanceNorm2d``
group      N×G×1×1 (example, group of C/G)   C/G channels, H, W         ``nn.GroupNorm(G, C)``
=========  ================================  =========================  ======================

Batch norm (Ioffe and Szegedy 2015, arXiv:1502.03167) uses the minibatch's statistics in training
and running averages at test time: the only member whose output depends on the batch and differs
between train and eval mode. Layer norm (Ba, Kiros and Hinton 2016, arXiv:1607.06450) on conv
features is ``GroupNorm(1, C)``: one mean per example over C, H, W, with per-channel γ, β as in
Wu and He's comparison (``nn.LayerNorm([C, H, W])`` normalises the same entries but learns a γ per
entry and fixes H×W). Instance norm (Ulyanov, Vedaldi and Lempitsky 2016, arXiv:1607.08022) is
used here with ``affine=True`` and no running statistics, so it too behaves the same at train and
test time.
"""

from __future__ import annotations

import torch
from torch import nn

from striate.checks import one_of, positive_int
from striate.errors import ConfigError

__all__ = ["NORMS", "make_norm", "norm_axes", "normalize_reference"]

NORMS = ("batch", "layer", "instance", "group", "none")


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """The torch layer of normalisation ``kind`` (one of NORMS) for ``channels`` feature maps;
    ``groups`` is group norm's G (it must divide ``channels``)."""
    kind = one_of("make_norm", "norm", kind, NORMS)
    channels = positive_int("make_norm", "channels", channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        groups = positive_int("make_norm", "groups", groups)
        if channels % groups:
            raise ConfigError(
                f"make_norm: groups must divide the number of channels ({channels}), got {groups}; "
                f"pick a divisor such as {_divisor_near(channels, groups)}"
            )
        return nn.GroupNorm(groups, channels)
    return nn.Identity()


def norm_axes(kind: str) -> tuple[str, ...]:
    """The axes of N×C×H×W that normalisation ``kind`` averages over (group: C within a group)."""
    kind = one_of("norm_axes", "norm", kind, NORMS[:-1])
    return {
        "batch": ("N", "H", "W"),
        "layer": ("C", "H", "W"),
        "instance": ("H", "W"),
        "group": ("C", "H", "W"),
    }[kind]


def normalize_reference(
    x: torch.Tensor, kind: str, groups: int = 8, eps: float = 1e-5
) -> torch.Tensor:
    """``(x − μ) / sqrt(σ² + ε)`` of a batch N×C×H×W with μ and the biased σ² taken over the
    axes of ``kind`` (Wu and He 2018, eq. 1–2), without γ and β: the formula written out, for
    teaching and as the reference the torch layers are tested against."""
    kind = one_of("normalize_reference", "norm", kind, NORMS[:-1])
    if x.ndim != 4:
        raise ConfigError(
            f"normalize_reference: x must be a batch N×C×H×W, got shape {tuple(x.shape)}"
        )
    n, c, h, w = x.shape
    if kind == "batch":
        dims, v = (0, 2, 3), x
    elif kind == "instance":
        dims, v = (2, 3), x
    else:
        g = 1 if kind == "layer" else groups
        if c % g:
            raise ConfigError(f"normalize_reference: groups must divide C={c}, got {g}")
        dims, v = (2, 3, 4), x.reshape(n, g, c // g, h, w)
    mean = v.mean(dim=dims, keepdim=True)
    var = v.var(dim=dims, unbiased=False, keepdim=True)
    return ((v - mean) / torch.sqrt(var + eps)).reshape(n, c, h, w)


def _divisor_near(n: int, k: int) -> int:
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: (abs(d - k), d))
