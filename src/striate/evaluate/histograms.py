"""Per-layer activation statistics (`LayerStats`, as `striate doctor` records them) and their
figures: a histogram of each layer's outputs, and the mean and std against depth (CS231n
lecture 6). `striate.train.activations` computes the statistics; reports draw them from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

__all__ = ["LayerStats", "plot_histograms", "plot_layer_stats"]


@dataclass
class LayerStats:
    """Statistics of one layer's output on one batch; `dead_frac` for ReLUs, `saturated_frac`
    for tanh/sigmoid (None elsewhere); `hist` = (counts, bin edges) of the output values."""

    name: str
    kind: str
    shape: tuple[int, ...]
    mean: float
    std: float
    zero_frac: float
    dead_frac: float | None = None
    saturated_frac: float | None = None
    hist: tuple[list[int], list[float]] = field(default_factory=lambda: ([], []))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["hist"] = {"counts": list(self.hist[0]), "edges": list(self.hist[1])}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerStats:
        hist = d.get("hist") or {}
        return cls(
            **{k: v for k, v in d.items() if k not in ("hist", "shape")},
            shape=tuple(d.get("shape", ())),
            hist=(list(hist.get("counts", [])), list(hist.get("edges", []))),
        )


def _as_stats(stats: Sequence[LayerStats | dict]) -> list[LayerStats]:
    return [s if isinstance(s, LayerStats) else LayerStats.from_dict(s) for s in stats]


def plot_histograms(stats: Sequence[LayerStats | dict], max_layers: int = 12) -> Figure:
    """One histogram of output values per layer (the first `max_layers`), titled with the
    layer's mean, std and dead/saturated fraction. Accepts LayerStats or their `to_dict()`."""
    stats = _as_stats(stats)[:max_layers]
    n = max(1, len(stats))
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 2.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes[len(stats) :]:
        ax.set_axis_off()
    for ax, s in zip(axes, stats, strict=False):
        counts, edges = s.hist
        if len(counts):
            ax.stairs(counts, edges, fill=True, alpha=0.7)
        extra = ""
        if s.dead_frac is not None:
            extra = f", dead {s.dead_frac:.0%}"
        elif s.saturated_frac is not None:
            extra = f", sat. {s.saturated_frac:.0%}"
        ax.set_title(
            f"{s.name} ({s.kind})\nmean {s.mean:.3g}, std {s.std:.3g}{extra}",
            fontsize=8,
            parse_math=False,
        )
        ax.tick_params(labelsize=7)
    if not stats:
        axes[0].text(0.5, 0.5, "no layers recorded", ha="center", va="center")
    fig.tight_layout()
    return fig


def plot_layer_stats(stats: Sequence[LayerStats | dict]) -> Figure:
    """Mean and std of each layer's output against depth (the lecture's two panels)."""
    stats = _as_stats(stats)
    fig = Figure(figsize=(9, 3.2))
    ax_mean, ax_std = fig.subplots(1, 2)
    x = np.arange(1, len(stats) + 1)
    ax_mean.plot(x, [s.mean for s in stats], "ob-")
    ax_mean.set_title("layer mean")
    ax_std.plot(x, [s.std for s in stats], "or-")
    ax_std.set_title("layer std")
    for ax in (ax_mean, ax_std):
        ax.set_xlabel("layer")
        ax.set_xticks(x, [s.name for s in stats], rotation=60, fontsize=7)
    fig.tight_layout()
    return fig
