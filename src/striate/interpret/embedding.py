"""Last-layer features seen in two dimensions: PCA and t-SNE coordinates, the lecture's "t-SNE
grid" of images, and a scatter of thumbnails.

- PCA and t-SNE are scikit-learn's (`sklearn.decomposition.PCA`, `sklearn.manifold.TSNE`; van
  der Maaten & Hinton, "Visualizing Data using t-SNE", JMLR 2008). Before t-SNE, features wider
  than ``pca_dims`` are reduced with PCA, as van der Maaten & Hinton do (§4.2: to 30 dimensions)
  and scikit-learn's documentation advises (50): it removes noise and makes the pairwise
  distances cheap. t-SNE's perplexity, a smooth count of neighbours, must be below the number of
  points (scikit-learn refuses it otherwise; the paper uses 5–50).
- The grid (Karpathy's "cnnembed" pages, which the lecture shows) snaps the 2-D points to a
  rows×cols lattice: coordinates are scaled to the unit square, each cell's centre is
  ``((col + ½)/cols, (row + ½)/rows)`` with row 0 at the top (the largest y, as in the scatter),
  and images go to cells by one of two rules:

  * ``"unique"`` (default): a one-to-one assignment of images to cells that minimises the total
    squared distance between each cell and its image's point (the linear assignment problem,
    solved exactly by `scipy.optimize.linear_sum_assignment`): every image appears at most once,
    and when there are as many cells as images every cell is filled and every image placed once.
    Karpathy fills cells greedily with the nearest unused image, which depends on the order the
    cells are visited; the assignment does not.
  * ``"nearest"``: each cell shows the image nearest its centre; an image may fill several cells
    and some none (every cell is filled).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from striate.checks import int_sequence, integer, number, one_of, positive_int
from striate.errors import ConfigError, InputError
from striate.interpret.figures import to_hwc

__all__ = ["EmbeddingGrid", "embedding", "embedding_figure", "embedding_grid"]


def _features(features: Any, owner: str) -> np.ndarray:
    """N×D float64 (rows flattened), finite, or one clear line."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().to(torch.float64).numpy()
    a = np.asarray(features)
    if a.ndim < 2 or a.shape[0] == 0 or not np.issubdtype(a.dtype, np.number):
        raise InputError(
            f"{owner}: features must be N×D numbers (one row per image; N×C×H×W is flattened), "
            f"got {a.dtype} of shape {a.shape}"
        )
    a = a.reshape(len(a), -1).astype(np.float64)
    if not np.isfinite(a).all():
        raise InputError(f"{owner}: features has NaN or infinite values")
    return a


def embedding(
    features: Any,
    method: str = "tsne",
    seed: int = 0,
    perplexity: float = 30.0,
    pca_dims: int | None = 50,
    max_iter: int = 1000,
    init: str = "pca",
) -> torch.Tensor:
    """2-D coordinates (N×2 float32) of N feature rows by t-SNE (``"tsne"``) or PCA (``"pca"``).

    ``seed`` fixes PCA's randomised solver (used for large inputs) and t-SNE's random start, so
    the same seed on the same machine gives the same points. t-SNE starts from the PCA layout
    (``init="pca"``, scaled, as Kobak & Berens 2019 advise for preserving global structure; then
    the seed changes nothing) or from a random one (``"random"``), with scikit-learn's automatic
    learning rate (max(N / 12 / 4, 50)).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    owner = "embedding"
    method = one_of(owner, "method", method, ("tsne", "pca"))
    init = one_of(owner, "init", init, ("pca", "random"))
    seed = integer(owner, "seed", seed, low=0, high=2**32 - 1)
    x = _features(features, owner)
    n, d = x.shape
    if n < 2 or d < 2:
        raise InputError(
            f"{owner}: {method} needs at least 2 rows and 2 features to place points in 2-D, got "
            f"{n}×{d}"
        )
    if method == "pca":
        coords = PCA(n_components=2, random_state=seed).fit_transform(x)
        return torch.from_numpy(coords).to(torch.float32)
    perplexity = number(owner, "perplexity", perplexity, low=0, low_open=True)
    if perplexity >= n:
        raise ConfigError(
            f"{owner}: perplexity must be less than the number of points ({n}), got "
            f"{perplexity:g}; use about 5–50 and fewer than N (e.g. {max(1, min(30, n // 3))})"
        )
    pca_dims = positive_int(owner, "pca_dims", pca_dims, allow_none=True)
    max_iter = integer(owner, "max_iter", max_iter, low=250, hint="scikit-learn's minimum")
    if pca_dims is not None and d > pca_dims and n > pca_dims:
        x = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init=init,
        learning_rate="auto",
        max_iter=max_iter,
        random_state=seed,
    )
    return torch.from_numpy(tsne.fit_transform(x)).to(torch.float32)


class EmbeddingGrid(NamedTuple):
    """The grid as one image, and which image each cell shows."""

    image: torch.Tensor  # C×(rows·h)×(cols·w), the images' dtype
    index: torch.Tensor  # rows×cols: the image in each cell, −1 for an empty one


def embedding_grid(
    coords: Any,
    images: torch.Tensor,
    grid: tuple[int, int] = (20, 20),
    assignment: str = "unique",
    tile: tuple[int, int] | None = None,
    fill: float = 0.0,
) -> EmbeddingGrid:
    """The lecture's t-SNE grid: a rows×cols lattice over the 2-D points, each cell showing an
    image whose point is near it (``assignment``: see the module docstring), as one big image.

    `images` are N×C×H×W (uint8 or floats), one per point; ``tile=(h, w)`` resizes them
    (bilinear, antialiased) first; empty cells take ``fill``.
    """
    from scipy.optimize import linear_sum_assignment

    owner = "embedding_grid"
    rows, cols = _pair(owner, "grid", grid)
    assignment = one_of(owner, "assignment", assignment, ("unique", "nearest"))
    fill = number(owner, "fill", fill)
    xy = _features(coords, owner)
    if xy.shape[1] != 2:
        raise InputError(f"{owner}: coords must be N×2 (from embedding), got shape {xy.shape}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) != len(xy):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise InputError(
            f"{owner}: images must be a tensor N×C×H×W with one image per point ({len(xy)}), "
            f"got {shape}"
        )
    images = images.detach()
    if tile is not None:
        size = _pair(owner, "tile", tile)
        resized = F.interpolate(
            images.float(), size=size, mode="bilinear", align_corners=False, antialias=True
        )
        if not images.is_floating_point():
            resized = resized.round().clamp(0, 255)
        images = resized.to(images.dtype)
    span = xy.max(0) - xy.min(0)
    unit = (xy - xy.min(0)) / np.where(span > 0, span, 1.0)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    centres = np.stack([(c.ravel() + 0.5) / cols, 1.0 - (r.ravel() + 0.5) / rows], axis=1)
    cost = ((centres[:, None, :] - unit[None, :, :]) ** 2).sum(-1)  # cells × points
    index = np.full(rows * cols, -1, dtype=np.int64)
    if assignment == "nearest":
        index[:] = cost.argmin(1)
    else:
        cells, points = linear_sum_assignment(cost)
        index[cells] = points
    n, ch, h, w = images.shape
    padded = torch.cat([images, images.new_full((1, ch, h, w), fill)])  # row n: the empty cell
    tiles = padded[torch.from_numpy(np.where(index < 0, n, index)).to(images.device)]
    big = tiles.reshape(rows, cols, ch, h, w).permute(2, 0, 3, 1, 4).reshape(ch, rows * h, -1)
    return EmbeddingGrid(big, torch.from_numpy(index.reshape(rows, cols)))


def _pair(owner: str, name: str, v: Any) -> tuple[int, int]:
    pair = int_sequence(owner, name, v, hint="rows, cols" if name == "grid" else "height, width")
    if len(pair) != 2:
        raise ConfigError(f"{owner}: {name} must be two positive integers, got {v!r}")
    return pair[0], pair[1]


def embedding_figure(
    coords: Any,
    images: torch.Tensor | None = None,
    labels: Any = None,
    classes: list[str] | None = None,
    max_images: int = 300,
    size: float = 0.05,
    seed: int = 0,
    title: str | None = None,
) -> Figure:
    """The 2-D points as a scatter coloured by label, with thumbnails of up to `max_images`
    images (chosen at random with `seed` when there are more) drawn at their points, each
    ``size`` of the plot's width wide."""
    owner = "embedding_figure"
    xy = _features(coords, owner)
    if xy.shape[1] != 2:
        raise InputError(f"{owner}: coords must be N×2 (from embedding), got shape {xy.shape}")
    n = len(xy)
    max_images = positive_int(owner, "max_images", max_images)
    size = number(owner, "size", size, low=0, low_open=True, high=1)
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    if labels is not None:
        y = np.asarray(torch.as_tensor(labels).cpu()).reshape(-1)
        if len(y) != n:
            raise InputError(f"{owner}: {len(y)} labels for {n} points; give one per point")
        for k in np.unique(y):
            name = classes[int(k)] if classes is not None and 0 <= int(k) < len(classes) else k
            ax.scatter(*xy[y == k].T, s=8, label=str(name))
        if len(np.unique(y)) <= 20:
            ax.legend(fontsize=7, markerscale=2, loc="best")
    else:
        ax.scatter(*xy.T, s=8, color="0.3")
    if images is not None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) != n:
            raise InputError(
                f"{owner}: images must be a tensor N×C×H×W with one image per point ({n})"
            )
        lo, hi = xy.min(0), xy.max(0)
        span = np.where(hi > lo, hi - lo, 1.0)
        pick = np.arange(n)
        if n > max_images:
            pick = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
        w = size * span[0]
        h_over_w = images.shape[2] / images.shape[3]
        hgt = w * h_over_w * span[1] / span[0]
        for i in pick:
            x0, y0 = xy[i]
            ax.imshow(
                to_hwc(images[i], owner),
                extent=(x0 - w / 2, x0 + w / 2, y0 - hgt / 2, y0 + hgt / 2),
                zorder=3,
            )
        ax.set_xlim(lo[0] - w, hi[0] + w)
        ax.set_ylim(lo[1] - hgt, hi[1] + hgt)
        ax.set_aspect("auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"{n} points", fontsize=10)
    fig.tight_layout()
    return fig
