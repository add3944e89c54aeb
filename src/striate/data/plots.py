"""Figures of datasets, built without pyplot so that they work on headless machines."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from striate.data.imageset import ImageSet


def grid_gap(h: int, w: int) -> int:
    """Pixels of white between the tiles of a sample grid of H×W images."""
    return max(1, max(h, w) // 16)


def sample_grid(ds: ImageSet, n: int = 64, per_class: int | None = None, seed: int = 0) -> Figure:
    """`n` random images in a square grid, or `per_class` images of each class, one row a class.

    The tiles are pasted into one mosaic (white gaps of `grid_gap` pixels, taller between rows
    that carry class names; a blank tile where a class has too few images) drawn as one image:
    a grid of hundreds of images costs one `imshow`, not an axes per image.
    """
    g = torch.Generator().manual_seed(seed)
    if per_class is not None:
        rows = []
        for c in range(ds.num_classes):
            idx = torch.nonzero(ds.labels == c).flatten().cpu()
            pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
            rows.append(pick.tolist() + [-1] * (per_class - len(pick)))
        nrows, ncols = ds.num_classes, per_class
        cells = [i for row in rows for i in row]
    else:
        k = min(n, len(ds))
        cells = torch.randperm(len(ds), generator=g)[:k].tolist()
        ncols = max(1, math.ceil(math.sqrt(k)))
        nrows = max(1, math.ceil(k / ncols))
        cells += [-1] * (nrows * ncols - k)
    c, h, w = ds.shape
    gap = grid_gap(h, w)
    row_gap = gap if per_class is not None else max(gap, h // 4)  # room for each tile's class
    mosaic = _mosaic(ds.images, torch.tensor(cells, dtype=torch.int64), ncols, gap, row_gap)
    fig = Figure(figsize=(ncols * 0.9 + (1.2 if per_class else 0), nrows * 0.9 + 0.4))
    ax = fig.add_subplot()
    if c == 1:
        ax.imshow(mosaic[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(mosaic.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_frame_on(False)
    ax.set_xticks([])
    centres = [row_gap + r * (h + row_gap) + (h - 1) / 2 for r in range(nrows)]
    if per_class is not None:
        ax.set_yticks(centres, [str(name) for name in ds.classes], fontsize=7)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
        labels = ds.labels.cpu()
        for j, i in enumerate(cells):
            if i >= 0:
                r, col = divmod(j, ncols)
                x = gap + col * (w + gap) + (w - 1) / 2
                y = row_gap + r * (h + row_gap) - 0.5
                name = ds.classes[int(labels[i])]
                ax.text(x, y, name, fontsize=6, ha="center", va="bottom")
    fig.suptitle(ds.source or "samples", fontsize=8)
    fig.tight_layout()
    return fig


def _mosaic(
    images: torch.Tensor, cells: torch.Tensor, ncols: int, gap: int, row_gap: int
) -> torch.Tensor:
    """C×H'×W' uint8: the images at `cells` (−1 for a blank tile) in rows of `ncols`, white
    `gap` pixels between and around the columns and `row_gap` between and around the rows."""
    _, c, h, w = images.shape
    nrows = len(cells) // ncols
    tiles = torch.full((len(cells), c, h, w), 255, dtype=torch.uint8)
    used = cells >= 0
    tiles[used] = images[cells[used].to(images.device)].cpu()
    tiles = F.pad(tiles, (gap, 0, row_gap, 0), value=255)  # a gap before each tile
    grid = tiles.view(nrows, ncols, c, h + row_gap, w + gap).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, nrows * (h + row_gap), ncols * (w + gap))
    return F.pad(grid, (0, gap, 0, row_gap), value=255)  # and after the last


BOX_COLOURS = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#469990",
    "#dcbeff",
    "#9a6324",
    "#800000",
    "#000075",
)


def draw_boxes(
    ax,
    boxes: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    scores: torch.Tensor | None = None,
    linewidth: float = 1.2,
    fontsize: float = 6,
) -> None:
    """Draw x1 y1 x2 y2 pixel boxes on an axes showing the image, coloured by class, captioned
    with the class name (and score). Label −2 (a crowd region) is drawn dashed and grey."""
    from matplotlib.patches import Rectangle

    for k, ((x1, y1, x2, y2), label) in enumerate(
        zip(boxes.tolist(), labels.tolist(), strict=True)
    ):
        crowd = label < 0
        colour = "0.5" if crowd else BOX_COLOURS[label % len(BOX_COLOURS)]
        # Pixel i covers [i, i + 1): imshow centres it at i, so box edges sit half a pixel left.
        ax.add_patch(
            Rectangle(
                (x1 - 0.5, y1 - 0.5),
                x2 - x1,
                y2 - y1,
                fill=False,
                edgecolor=colour,
                linewidth=linewidth,
                linestyle="--" if crowd else "-",
            )
        )
        text = "crowd" if crowd else classes[label]
        if scores is not None:
            text += f" {float(scores[k]):.2f}"
        ax.text(
            x1 - 0.5,
            y1 - 0.5,
            text,
            color="white",
            fontsize=fontsize,
            va="bottom",
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8},
        )


def detection_grid(ds, n: int = 16, seed: int = 0) -> Figure:
    """`n` random images of a DetectionSet with their boxes and class names, one axes each."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(ds), generator=g)[: min(n, len(ds))].tolist()
    ncols = max(1, math.ceil(math.sqrt(len(picks))))
    nrows = max(1, math.ceil(len(picks) / ncols))
    fig = Figure(figsize=(ncols * 2.2, nrows * 2.2))
    for k, i in enumerate(picks):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        image, target = ds[i]
        image = image.cpu()
        if image.shape[0] == 1:
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        labels = torch.where(target["crowd"], -2, target["labels"])
        draw_boxes(ax, target["boxes"].cpu(), labels.cpu(), ds.classes)
        ax.set_axis_off()
    fig.tight_layout()
    return fig
