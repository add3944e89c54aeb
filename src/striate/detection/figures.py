"""Pictures of a detector at work: test images with their boxes and scores before and after
non-maximum suppression, one image's detections, and precision–recall curves per class."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from striate.data.plots import draw_boxes
from striate.detection.mean_ap import MeanAveragePrecision
from striate.detection.mean_ap import plot_pr_curves as _plot_pr
from striate.detection.postprocess import Detections


def _show(ax, image: torch.Tensor) -> None:
    img = image.detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def _best_on_top(found: dict[str, torch.Tensor], min_score: float) -> dict[str, torch.Tensor]:
    """The detections scoring ≥ `min_score` on the CPU, worst first, so that where boxes overlap
    the best one and its caption are drawn last, on top."""
    keep = torch.nonzero(found["scores"] >= min_score).flatten()
    keep = keep[found["scores"][keep].argsort(stable=True)]
    return {k: v[keep].cpu() for k, v in found.items()}


def plot_detections(
    images: torch.Tensor,
    before: Detections,
    after: Detections,
    classes: Sequence[str],
    min_score: float = 0.2,
) -> Figure:
    """Images (N×C×H×W, 0–1) in two rows: the candidates scoring ≥ `min_score` before
    non-maximum suppression (top) and the detections kept after it (bottom), each box with its
    class and score."""
    n = len(images)
    fig = Figure(figsize=(2.3 * n, 5.0))
    axes = fig.subplots(2, n, squeeze=False)
    for row, found in enumerate((before, after)):
        for i in range(n):
            ax = axes[row][i]
            _show(ax, images[i])
            d = _best_on_top(found[i], min_score)
            draw_boxes(ax, d["boxes"], d["labels"], tuple(classes), d["scores"], 0.8, 5)
            if i == 0:
                label = "before NMS" if row == 0 else "after NMS"
                ax.set_ylabel(f"{label}\n(score ≥ {min_score:g})", fontsize=8)
    fig.tight_layout()
    return fig


def plot_image_detections(
    image: torch.Tensor, found: dict[str, torch.Tensor], classes: Sequence[str], title: str = ""
) -> Figure:
    """One image (C×H×W, 0–1) with its detections, classes and scores."""
    h, w = image.shape[-2:]
    scale = 4.0 / max(h, w)
    fig = Figure(figsize=(max(2.5, w * scale * 1.2), max(2.5, h * scale * 1.2)))
    ax = fig.subplots()
    _show(ax, image)
    d = _best_on_top(found, 0.0)
    draw_boxes(ax, d["boxes"], d["labels"], tuple(classes), d["scores"])
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def plot_pr_curves(metric: MeanAveragePrecision, classes: Sequence[str]) -> Figure:
    """Precision against recall per class at IoU 0.5, from an updated MeanAveragePrecision."""
    return _plot_pr(metric, classes)
