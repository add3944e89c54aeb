"""Images tiled into one grid picture, and that picture written as a PNG one pixel per image
pixel (the samples, snapshots and latent views of the generative models)."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from striate._atomic import atomic_path


def grid(images: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """Images N×C×H×W tiled row by row into one C×H'×W' image with a 2-pixel border."""
    n, c, h, w = images.shape
    cols = columns or max(1, int(n**0.5 + 0.5))
    rows = -(-n // cols)
    pad = 2
    canvas = torch.ones(c, pad + rows * (h + pad), pad + cols * (w + pad))
    tiles = torch.ones(rows * cols, c, h, w)
    tiles[:n] = images.float().clamp(0, 1)
    tiles = tiles.reshape(rows, cols, c, h, w).permute(2, 0, 3, 1, 4)  # c, rows, h, cols, w
    body = torch.ones(c, rows, h + pad, cols, w + pad)
    body[:, :, :h, :, :w] = tiles
    canvas[:, pad:, pad:] = body.reshape(c, rows * (h + pad), cols * (w + pad))
    return canvas


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> Figure:
    """Write `images` as one PNG grid of `columns` columns (None: square) at `path`, one pixel per
    image pixel (atomically); returns the figure."""
    g = grid(images.cpu(), columns)
    fig = Figure(figsize=(g.shape[2] / 60, g.shape[1] / 60))
    ax = fig.add_axes((0, 0, 1, 1))
    img = g.permute(1, 2, 0).numpy()
    ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=60, format="png")
    return fig
