"""Figures of datasets, built without pyplot so that they work on headless machines."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from striate.data.imageset import ImageSet


def sample_grid(ds: ImageSet, n: int = 64, per_class: int | None = None, seed: int = 0) -> Figure:
    """`n` random images in a square grid, or `per_class` images of each class, one row a class."""
    g = torch.Generator().manual_seed(seed)
    if per_class is not None:
        rows = []
        for c in range(ds.num_classes):
            idx = torch.nonzero(ds.labels == c).flatten()
            pick = idx[torch.randperm(len(idx), generator=g)[:per_class]]
            rows.append(pick.tolist() + [None] * (per_class - len(pick)))
        nrows, ncols = ds.num_classes, per_class
        cells = [i for row in rows for i in row]
    else:
        k = min(n, len(ds))
        cells = torch.randperm(len(ds), generator=g)[:k].tolist()
        ncols = max(1, math.ceil(math.sqrt(k)))
        nrows = max(1, math.ceil(k / ncols))
        cells += [None] * (nrows * ncols - k)
    fig = Figure(figsize=(ncols * 0.9 + (1.2 if per_class else 0), nrows * 0.9 + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, i in zip(axes.flat, cells, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)
        if i is None:
            continue
        img = ds.images[i].cpu()
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
        if per_class is None:
            ax.set_title(ds.classes[int(ds.labels[i])], fontsize=6, pad=2)
    if per_class is not None:
        for c, ax in enumerate(axes[:, 0]):
            ax.set_ylabel(ds.classes[c], rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(ds.source or "samples", fontsize=8)
    fig.tight_layout()
    return fig
