"""Figures of captioning: a grid of images with captions, and the per-word attention maps of one
caption (Xu et al. 2015, figure 2: where the decoder looked when it said each word)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure


def _rgb(image: torch.Tensor):
    """uint8 or [0, 1] float 3×H×W → H×W×3 float array for imshow."""
    x = image.detach().cpu().float()
    if image.dtype == torch.uint8:
        x = x / 255
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_captions(
    images: torch.Tensor,
    captions: Sequence[str],
    truths: Sequence[str] | None = None,
    columns: int = 4,
) -> Figure:
    """Images (N×3×H×W) with their captions below; `truths` (a reference each) in grey under
    them when given."""
    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(2.6 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(_rgb(images[i]), interpolation="nearest")
        text = _wrap(captions[i])
        if truths is not None:
            text += "\n(" + _wrap(truths[i]) + ")"
        ax.set_title(text, fontsize=7, loc="center")
    fig.tight_layout()
    return fig


def _wrap(text: str, width: int = 30) -> str:
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join([*lines, line]) if line or lines else ""


def plot_attention(
    image: torch.Tensor, words: Sequence[str], alphas: torch.Tensor, columns: int = 6
) -> Figure:
    """The image, then for each generated word its attention map α_t (L = g×g locations)
    upsampled bilinearly to the image, scaled to its maximum and laid over it as a white glow
    (as in Xu et al.'s figures: bright where the decoder looked)."""
    t = len(words)
    alphas = alphas[:t].detach().cpu().float()
    g = math.isqrt(alphas.shape[1])
    if g * g != alphas.shape[1]:
        raise ValueError(f"plot_attention: {alphas.shape[1]} locations do not form a square grid")
    h, w = image.shape[1:]
    maps = F.interpolate(alphas.view(t, 1, g, g), size=(h, w), mode="bilinear", align_corners=False)
    maps = maps[:, 0]
    maps = maps / maps.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    rgb = _rgb(image)
    cols = max(1, min(columns, t + 1))
    rows = math.ceil((t + 1) / cols)
    fig = Figure(figsize=(1.7 * cols, 1.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    axes.flat[0].imshow(rgb, interpolation="nearest")
    axes.flat[0].set_title("image", fontsize=8)
    for i, word in enumerate(words):
        ax = axes.flat[i + 1]
        glow = maps[i].numpy()[..., None]
        ax.imshow(0.55 * rgb + 0.45 * glow, interpolation="nearest")
        ax.set_title(word, fontsize=8)
    fig.tight_layout()
    return fig
