"""Pictures of grasping: depth images with grasps drawn as jaw segments (matplotlib, Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _draw_grasp(ax, grasp: torch.Tensor, width: float, color: str, lw: float = 1.5) -> None:
    x, y, theta = (float(v) for v in grasp[:3])
    dx, dy = math.cos(theta) * width / 2, math.sin(theta) * width / 2
    ax.plot([x - dx, x + dx], [y - dy, y + dy], color=color, lw=lw)
    for s in (-1, 1):  # the jaws, across the axis
        jx, jy = x + s * dx, y + s * dy
        ax.plot([jx - dy * 0.25, jx + dy * 0.25], [jy + dx * 0.25, jy - dx * 0.25], color=color,
                lw=lw)  # fmt: skip


def plot_grasps(
    images: torch.Tensor,
    grasps: Sequence[torch.Tensor],
    colors: Sequence[Sequence[str]],
    titles: Sequence[str] | None = None,
    width: float = 28.0,
    columns: int = 4,
):
    """A grid of depth images (N×1×H×W) with, on image i, the grasps `grasps[i]` (M×≥3) in
    `colors[i]`. Returns the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(images[i, 0].cpu().numpy(), cmap="viridis_r")
        for grasp, color in zip(grasps[i], colors[i], strict=True):
            _draw_grasp(ax, grasp, width, color)
        h, w = images.shape[-2:]
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    fig.tight_layout()
    return fig


def plot_crops(crops: torch.Tensor, labels: torch.Tensor, columns: int = 8):
    """Grasp-aligned crops (N×1×C×C) titled by label, the grasp axis marked on the middle row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(crops)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    c = crops.shape[-1]
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(crops[i, 0].cpu().numpy(), cmap="viridis_r")
        ax.axhline(c // 2, color="w", lw=0.5, ls=":")
        ax.set_title("robust" if int(labels[i]) else "not", fontsize=7)
    fig.tight_layout()
    return fig
