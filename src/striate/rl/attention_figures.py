"""The recurrent attention model's glimpse paths drawn on its images (Mnih et al. 2014, Fig. 3),
as matplotlib Figures (no pyplot state):

    out = model(images, sample=False)
    fig = glimpse_figure(images, out.locations, model.glimpse.sensor.sizes, labels, predicted)
    fig.savefig("glimpses.png")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from striate.errors import InputError

__all__ = ["draw_glimpses", "glimpse_figure"]


def _centres(locations: torch.Tensor, height: int, width: int) -> np.ndarray:
    """T×2 glimpse centres in imshow's coordinates (pixel i centred at i), as the sensor reads
    them: l ∈ [−1, 1] maps to [0, size] in pixel edges."""
    loc = locations.detach().float().clamp(-1, 1).cpu().numpy()
    return (loc + 1) / 2 * np.array([width, height]) - 0.5


def draw_glimpses(ax: Axes, image: torch.Tensor, locations: torch.Tensor,
                  sizes: Sequence[int], title: str = "") -> None:  # fmt: skip
    """One image (C×H×W) with its glimpse path (T×2 locations): the path as a line, the
    smallest patch of every glimpse as a square (first green, last red), and every scale of the
    last glimpse dashed."""
    image = image.detach().float().cpu()
    if image.max() > 1:
        image = image / 255
    c, h, w = image.shape
    shown = image[0] if c == 1 else image.permute(1, 2, 0).clamp(0, 1)
    ax.imshow(shown.numpy(), cmap="gray", vmin=0, vmax=1)
    centres = _centres(locations, h, w)
    ax.plot(centres[:, 0], centres[:, 1], "-", color="#ffcc00", lw=1.2)
    t = len(centres)
    fade = np.linspace(0, 1, t)  # green at the first glimpse, red at the last
    colours = np.clip(np.stack([0.2 + 0.8 * fade, 0.8 * (1 - fade), np.full(t, 0.1)], 1), 0, 1)
    for (x, y), colour in zip(centres, colours, strict=True):
        ax.add_patch(
            Rectangle(
                (x - sizes[0] / 2, y - sizes[0] / 2),
                sizes[0],
                sizes[0],
                fill=False,
                edgecolor=colour,
                lw=1.0,
            )
        )
    x, y = centres[-1]
    for size in sizes[1:]:
        ax.add_patch(
            Rectangle(
                (x - size / 2, y - size / 2),
                size,
                size,
                fill=False,
                edgecolor=colours[-1],
                lw=0.8,
                ls="--",
            )
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def glimpse_figure(
    images: torch.Tensor,
    locations: torch.Tensor,
    sizes: Sequence[int],
    labels: torch.Tensor | None = None,
    predicted: torch.Tensor | None = None,
    columns: int = 8,
    title: str | None = None,
) -> Figure:
    """A grid of `images` (N×C×H×W) each with its glimpse path (`locations` N×T×2 in [−1, 1]);
    `sizes` are the sensor's patch sides (``GlimpseSensor.sizes``); with labels and predictions
    each panel's title reads ``label→predicted``."""
    if images.dim() != 4 or locations.dim() != 3 or locations.shape[::2] != (len(images), 2):
        raise InputError(
            f"glimpse_figure: expected images N×C×H×W and locations N×T×2, got "
            f"{tuple(images.shape)} and {tuple(locations.shape)}"
        )
    n = len(images)
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    fig = Figure(figsize=(1.6 * columns, 1.75 * rows + (0.3 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).reshape(-1)
    for i, ax in enumerate(axes):
        if i >= n:
            ax.axis("off")
            continue
        text = ""
        if labels is not None:
            text = str(int(labels[i]))
            if predicted is not None:
                text += f"→{int(predicted[i])}"
        draw_glimpses(ax, images[i], locations[i], sizes, text)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
