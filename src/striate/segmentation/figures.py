"""Pictures of segmentations: class maps in a fixed palette, overlays on the images, a legend.

    plot_overlays(images, truth, pred, classes)    # rows of image | truth | prediction
    overlay(image, class_map)                      # H×W×3 uint8: the classes painted on a grey copy

Class 0 (background) is left unpainted; classes 1.. take matplotlib's tab10 colours (its grey
made gold) then tab20's, the same in every figure, so a colour means one class across a run's
pictures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from striate._atomic import atomic_path
from striate.errors import ConfigError


def palette(num_classes: int) -> np.ndarray:
    """num_classes×3 uint8 colours: black for the background, then tab10 (grey made gold),
    tab20's lighter half, then hsv."""
    base = [colormaps["tab10"](i)[:3] for i in range(10)]
    base[7] = (1.0, 0.85, 0.0)  # tab10's grey would vanish on the greyed image of `overlay`
    base += [colormaps["tab20"](i)[:3] for i in range(1, 20, 2)]
    extra = max(num_classes - 1 - len(base), 0)
    base += [colormaps["hsv"](i / max(extra, 1))[:3] for i in range(extra)]
    colours = np.array([(0.0, 0.0, 0.0), *base[: max(num_classes - 1, 0)]])
    return (colours * 255).round().astype(np.uint8)


def _hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """An image as uint8 H×W×3 (from uint8 or 0–1 float, C×H×W or H×W×C, grey or colour)."""
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]


def colourize(class_map: torch.Tensor | np.ndarray, num_classes: int) -> np.ndarray:
    """A class map H×W as an H×W×3 uint8 picture in `palette(num_classes)`."""
    m = np.asarray(class_map.cpu() if isinstance(class_map, torch.Tensor) else class_map)
    colours = palette(max(num_classes, int(m.max(initial=0)) + 1))
    return colours[m.astype(np.int64)]


def overlay(
    image: torch.Tensor | np.ndarray,
    class_map: torch.Tensor | np.ndarray,
    num_classes: int,
    alpha: float = 0.85,
) -> np.ndarray:
    """The class map painted over a dimmed grey copy of `image` (H×W×3 uint8): each
    non-background pixel blended `alpha` towards its class's colour, so that the colours read
    as classes even where the image itself is colourful."""
    img = _hwc(image).astype(np.float32)
    grey = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    base = np.repeat((64 + 0.5 * grey)[..., None], 3, axis=2)
    m = np.asarray(class_map.cpu() if isinstance(class_map, torch.Tensor) else class_map)
    tint = colourize(m, num_classes).astype(np.float32)
    a = np.where(m[..., None] > 0, alpha, 0.0)
    return (base * (1 - a) + tint * a).round().astype(np.uint8)


def legend_handles(classes: Sequence[str], present: Sequence[int] | None = None) -> list[Patch]:
    """Coloured patches naming `classes` (only those in `present`, when given)."""
    colours = palette(len(classes)) / 255
    shown = range(len(classes)) if present is None else sorted(set(present))
    return [Patch(facecolor=colours[i], edgecolor="grey", label=classes[i]) for i in shown]


def plot_overlays(
    images: torch.Tensor,
    truth: torch.Tensor | None,
    pred: torch.Tensor,
    classes: Sequence[str],
    titles: Sequence[str] | None = None,
) -> Figure:
    """One row per image: the image, the true classes painted over it (when `truth` is given)
    and the predicted ones (`overlay`), with a legend of the palette. images N×C×H×W (uint8 or
    0–1), maps N×H×W."""
    k = len(classes)
    cols = 2 if truth is None else 3
    n = len(images)
    height = 1.9 * n + 0.5
    fig = Figure(figsize=(1.9 * cols, height))
    axes = fig.subplots(n, cols, squeeze=False)
    heads = ["image", "prediction"] if truth is None else ["image", "truth", "prediction"]
    for i in range(n):
        panels = [_hwc(images[i])]
        if truth is not None:
            panels.append(overlay(images[i], truth[i], k))
        panels.append(overlay(images[i], pred[i], k))
        for j, panel in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(heads[j], fontsize=9)
        if titles is not None:
            axes[i][0].set_ylabel(titles[i], fontsize=7)
    fig.legend(
        handles=legend_handles(classes),
        loc="lower center",
        ncol=min(k, 6),
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
    return fig


def plot_iou(iou: Sequence[float], classes: Sequence[str]) -> Figure:
    """A bar per class of its IoU (missing bars: classes in neither truth nor prediction)."""
    fig = Figure(figsize=(max(4.0, 0.45 * len(classes) + 1.5), 2.8))
    ax = fig.subplots()
    values = np.asarray(iou, dtype=np.float64)
    colours = palette(len(classes)) / 255
    colours[0] = 0.6  # the black background in grey
    ax.bar(range(len(classes)), np.nan_to_num(values), color=colours.tolist())
    ax.set_xticks(range(len(classes)), classes, fontsize=7, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("IoU")
    ax.set_title(f"per-class IoU (mean {np.nanmean(values):.3f})", fontsize=9)
    fig.tight_layout()
    return fig


def save_class_map(
    path: str | os.PathLike, class_map: torch.Tensor | np.ndarray, num_classes: int
) -> Path:
    """Write a class map H×W as an 8-bit palette PNG (atomically): each pixel's value is its
    class index, shown in `palette(num_classes)` (VOC's SegmentationClass convention)."""
    m = np.asarray(class_map.cpu() if isinstance(class_map, torch.Tensor) else class_map)
    if num_classes > 256:
        raise ConfigError(f"a palette PNG holds at most 256 classes, got {num_classes}")
    m = np.ascontiguousarray(m, dtype=np.uint8)
    image = Image.frombytes("P", (m.shape[1], m.shape[0]), m.tobytes())
    image.putpalette(palette(num_classes).reshape(-1).tolist())
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path
