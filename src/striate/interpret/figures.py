"""The figures every interpretation method draws: a heat map over its image, image | map | overlay
panels for an attribution, and grids of images (filters, activation maps, patches, neighbours).

Each function returns a matplotlib ``Figure`` (no pyplot state; the caller saves or shows it) or,
for `overlay` and `image_grid`, the pixels, so a report can embed them as it likes.

Images come as the model takes them: a tensor C×H×W or N×C×H×W, 0–1 floats or uint8 (NumPy
H×W×C arrays too); a grey image is shown in grey.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.figure import Figure

from striate.checks import boolean, did_you_mean, non_negative_int, number, positive_int
from striate.errors import ConfigError, InputError

__all__ = [
    "attribution_figure",
    "attribution_map",
    "image_grid",
    "overlay",
    "show_grid",
    "to_hwc",
]


# --------------------------------------------------------------------------- pixels


def to_hwc(image: Any, owner: str = "image") -> np.ndarray:
    """One image as an H×W×3 float64 array in [0, 1]: from C×H×W / 1×C×H×W tensors (C = 1 or 3),
    H×W×C or H×W arrays, uint8 (÷255) or floats (clipped to 0–1)."""
    t = image.detach().cpu() if isinstance(image, torch.Tensor) else None
    if t is not None:
        if t.is_floating_point():  # bf16 / half have no NumPy dtype
            t = t.to(torch.float64)
        if t.dim() == 4 and t.shape[0] == 1:
            t = t[0]
        if t.dim() == 3 and t.shape[0] in (1, 3):
            a = t.permute(1, 2, 0).numpy()
        elif t.dim() == 2:
            a = t.numpy()
        else:
            raise InputError(
                f"{owner}: give one image as a C×H×W tensor (C = 1 or 3), got shape "
                f"{tuple(t.shape)}"
            )
    else:
        a = np.asarray(image)
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3))):
            raise InputError(
                f"{owner}: give one image as an H×W×C array (C = 1 or 3), got shape {a.shape}"
            )
    if a.dtype == np.uint8:
        a = a.astype(np.float64) / 255.0
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        a = np.clip(a.astype(np.float64), 0.0, 1.0)
    else:
        raise InputError(f"{owner}: pixels must be uint8 or 0–1 floats, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    return np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a


def _map_2d(heatmap: Any, owner: str) -> torch.Tensor:
    """A heat map as an H×W float64 tensor (accepts H×W, 1×H×W, 1×1×H×W, tensors or arrays)."""
    t = torch.as_tensor(np.asarray(heatmap) if not isinstance(heatmap, torch.Tensor) else heatmap)
    t = t.detach().cpu().to(torch.float64)
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2:
        raise InputError(
            f"{owner}: the heat map must be one map H×W (or 1×H×W, 1×1×H×W), got shape "
            f"{tuple(torch.as_tensor(heatmap).shape)}; reduce the channels first "
            f"(attribution_map does)"
        )
    if not torch.isfinite(t).all():
        raise InputError(f"{owner}: the heat map has NaN or infinite values")
    return t


def _unit(t: torch.Tensor, clip: float = 1.0) -> torch.Tensor:
    """Scaled to [0, 1] from the minimum to the `clip` quantile (values above it saturate: a
    gradient map's few extreme pixels would otherwise leave the rest dark); a constant map
    becomes zeros."""
    low = t.min()
    high = t.max() if clip >= 1 else torch.quantile(t.flatten().float(), clip).to(t.dtype)
    return ((t - low) / (high - low)).clamp(0, 1) if high > low else torch.zeros_like(t)


def overlay(
    image: Any, heatmap: Any, alpha: float = 0.5, cmap: str = "jet", clip: float = 1.0
) -> np.ndarray:
    """The heat map over the image: an H×W×3 float array, ``(1 − alpha)·image + alpha·cmap(m)``.

    The map is first resized to the image (bilinear, ``align_corners=False``, as Grad-CAM's
    coarse maps are upsampled, Selvaraju et al. 2017, arXiv:1610.02391) and then scaled to 0–1
    from its minimum to its `clip` quantile (1: the maximum), so its lowest value takes the colour
    map's first colour and its highest the last; scaling after resizing keeps both ends exact.
    `clip` = 0.99 saturates the top 1 % of a gradient map, as captum's visualisation does.
    """
    alpha = number("overlay", "alpha", alpha, low=0, high=1)
    clip = number("overlay", "clip", clip, low=0, high=1, low_open=True)
    colours = _colormap("overlay", cmap)
    img = to_hwc(image, "overlay")
    m = _map_2d(heatmap, "overlay")
    h, w = img.shape[:2]
    if m.shape != (h, w):
        m = F.interpolate(m[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    coloured = colours(_unit(m, clip).numpy())[..., :3]
    return (1.0 - alpha) * img + alpha * coloured


def _colormap(owner: str, cmap: str):
    try:
        return colormaps[cmap]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"{owner}: cmap must be a matplotlib colour map name such as 'jet', 'viridis' or "
            f"'hot', got {cmap!r}{did_you_mean(cmap, list(colormaps))}"
        ) from None


def attribution_map(attribution: Any) -> torch.Tensor:
    """N×C×H×W attributions as N×H×W maps: ``max_c |a_c|`` when C > 1 (Simonyan et al. 2014,
    arXiv:1312.6034, §3.1: the absolute gradient's maximum over the colour channels); a
    one-channel map (Grad-CAM's N×1×H×W) as it is."""
    t = torch.as_tensor(attribution).detach().cpu()
    if t.dim() == 2:
        t = t[None, None]
    elif t.dim() == 3:
        t = t[None]
    if t.dim() != 4:
        raise InputError(f"attribution: give N×C×H×W (or C×H×W, H×W), got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    return t[:, 0] if t.shape[1] == 1 else t.abs().amax(dim=1)


# --------------------------------------------------------------------------- grids


def image_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    nrow: int = 8,
    padding: int = 2,
    normalize: bool = False,
    value_range: tuple[float, float] | None = None,
    scale_each: bool = False,
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Images N×C×H×W tiled into one C×H'×W' image, with torchvision's `make_grid` semantics.

    ``nrow`` images per row, ``min(nrow, N)`` columns and ``ceil(N / columns)`` rows, each tile
    preceded by ``padding`` pixels of ``pad_value`` above and to its left and the whole grid closed
    by ``padding`` more at the bottom and right; one-channel images become three (grey RGB); a
    single image comes back as it is, without padding. ``normalize`` rescales to 0–1 by
    ``value_range`` (clamped) or by the minimum and maximum, of each image with ``scale_each``.
    """
    nrow = positive_int("image_grid", "nrow", nrow)
    padding = non_negative_int("image_grid", "padding", padding)
    boolean("image_grid", "normalize", normalize)
    boolean("image_grid", "scale_each", scale_each)
    number("image_grid", "pad_value", pad_value)
    t = _stack(images, "image_grid")
    if t.dim() == 2:
        t = t[None]
    if t.dim() == 3:
        t = t[None]
    if t.dim() != 4:
        raise InputError(
            f"image_grid: images must be N×C×H×W (or C×H×W, H×W, a list of C×H×W), got shape "
            f"{tuple(t.shape)}"
        )
    if t.shape[1] == 1:
        t = t.expand(-1, 3, -1, -1)
    if normalize:
        t = _normalized(t, value_range, scale_each)
    if t.shape[0] == 1:
        return t[0].clone()
    n, c, h, w = t.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    blank = t.new_full((rows * cols - n, c, h, w), pad_value)
    tiles = torch.cat([t, blank]) if len(blank) else t
    # each tile gets `padding` rows/columns of pad_value before it; the grid `padding` after all
    tiles = F.pad(tiles, (padding, 0, padding, 0), value=pad_value) if padding else tiles
    hh, ww = h + padding, w + padding
    grid = tiles.reshape(rows, cols, c, hh, ww).permute(2, 0, 3, 1, 4).reshape(c, rows * hh, -1)
    return F.pad(grid, (0, padding, 0, padding), value=pad_value) if padding else grid


def _stack(images: Any, owner: str) -> torch.Tensor:
    if isinstance(images, (list, tuple)):
        if not images or not all(isinstance(i, torch.Tensor) for i in images):
            raise InputError(f"{owner}: give a tensor N×C×H×W or a non-empty list of tensors")
        shapes = {tuple(i.shape) for i in images}
        if len(shapes) > 1:
            raise InputError(f"{owner}: the images differ in shape: {sorted(shapes)}")
        return torch.stack([i.detach() for i in images])
    if not isinstance(images, torch.Tensor):
        raise InputError(f"{owner}: give a tensor N×C×H×W, got {type(images).__name__}")
    if images.numel() == 0:
        raise InputError(f"{owner}: no images given (shape {tuple(images.shape)})")
    return images.detach()


def _normalized(
    t: torch.Tensor, value_range: tuple[float, float] | None, scale_each: bool
) -> torch.Tensor:
    t = t.to(torch.float32) if not t.is_floating_point() else t
    if value_range is not None:
        if not (isinstance(value_range, (tuple, list)) and len(value_range) == 2):
            raise ConfigError(f"image_grid: value_range must be (low, high), got {value_range!r}")
        low = torch.tensor(float(value_range[0]), dtype=t.dtype)
        high = torch.tensor(float(value_range[1]), dtype=t.dtype)
    elif scale_each:
        low = t.amin(dim=(1, 2, 3), keepdim=True)
        high = t.amax(dim=(1, 2, 3), keepdim=True)
    else:
        low, high = t.min(), t.max()
    return (t.clamp(low, high) - low) / (high - low).clamp_min(1e-5)


def show_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    nrow: int = 8,
    padding: int = 2,
    normalize: bool = False,
    title: str | None = None,
    pad_value: float = 1.0,
    width: float = 8.0,
) -> Figure:
    """A figure of `image_grid` (white padding by default, 255 for uint8 images): filters, maps,
    patches, neighbours."""
    first = images if isinstance(images, torch.Tensor) else next(iter(images), None)
    if isinstance(first, torch.Tensor) and first.dtype == torch.uint8 and not normalize:
        pad_value = pad_value * 255.0
    grid = image_grid(images, nrow=nrow, padding=padding, normalize=normalize, pad_value=pad_value)
    pixels = to_hwc(grid, "show_grid")
    positive = number("show_grid", "width", width, low=0, low_open=True)
    h, w = pixels.shape[:2]
    fig = Figure(figsize=(positive, max(positive * h / w, 1.0) + (0.4 if title else 0.0)))
    ax = fig.subplots()
    ax.imshow(pixels, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- attributions


def attribution_figure(
    image: Any,
    attribution: Any,
    title: str | Sequence[str] | None = None,
    top_classes: Sequence | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    clip: float = 0.99,
) -> Figure:
    """One row per image: the image | its attribution map | the map over the image (both drawn
    up to the map's `clip` quantile: see `overlay`).

    `image` is C×H×W or N×C×H×W (as the model took it), `attribution` the method's output for
    it (N×C×H×W from gradient methods, reduced with `attribution_map`; N×1×h×w from Grad-CAM,
    resized). `title` is the figure's (a string) or one per image (a list); `top_classes` is,
    per image, a list of ``(class name, probability)`` pairs written under the image (for one
    image, the list alone).
    """
    images = torch.as_tensor(image) if not isinstance(image, torch.Tensor) else image.detach()
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise InputError(
            f"attribution_figure: image must be C×H×W or N×C×H×W, got shape {tuple(images.shape)}"
        )
    maps = attribution_map(attribution)
    n = images.shape[0]
    if maps.shape[0] != n:
        raise InputError(
            f"attribution_figure: {n} image(s) but {maps.shape[0]} attribution map(s); give "
            f"one map per image"
        )
    titles = [None] * n if isinstance(title, str) else _per_image(title, n, "title")
    if top_classes is not None and n == 1 and _is_pairs(top_classes):
        top_classes = [top_classes]
    tops = _per_image(top_classes, n, "top_classes")
    _colormap("attribution_figure", cmap)
    fig = Figure(figsize=(9.0, 3.2 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        pixels = to_hwc(images[i], "attribution_figure")
        a, b, c = axes[i]
        a.imshow(pixels)
        b.imshow(_unit(maps[i], clip).numpy(), cmap=cmap, vmin=0, vmax=1)
        c.imshow(overlay(pixels, maps[i], alpha=alpha, cmap=cmap, clip=clip))
        for ax, name in zip(axes[i], ("image", "map", "overlay"), strict=True):
            ax.set_axis_off()
            ax.set_title(name if i == 0 else "", fontsize=9)
        if titles[i]:
            a.set_title(str(titles[i]), fontsize=10)
        if tops[i]:
            lines = [f"{name}: {float(p):.1%}" for name, p in tops[i]]
            a.text(0.0, -0.04, "\n".join(lines), transform=a.transAxes, va="top", fontsize=8)
    if isinstance(title, str):
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _is_pairs(v: Any) -> bool:
    return (
        isinstance(v, (list, tuple))
        and bool(v)
        and all(isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) for p in v)
    )


def _per_image(v: Any, n: int, name: str) -> list:
    if v is None:
        return [None] * n
    if isinstance(v, (list, tuple)) and len(v) == n:
        return list(v)
    raise ConfigError(f"attribution_figure: {name} must be given once per image ({n})")
