"""embedding: PCA against scikit-learn's, t-SNE's shape and determinism, the grid's assignment
against a brute-force reference, the scatter figure rendered."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import PCA

from striate.errors import ConfigError, InputError
from striate.interpret.embedding import embedding, embedding_figure, embedding_grid


def features(n: int = 40, d: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, d, generator=g) * 5
    return centres[torch.arange(n) % 4] + torch.randn(n, d, generator=g)


def test_pca_coordinates_equal_scikit_learns():
    x = features()
    got = embedding(x, method="pca")
    expected = PCA(n_components=2, random_state=0).fit_transform(x.double().numpy())
    assert got.shape == (40, 2) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_tsne_is_n_by_2_and_the_same_for_the_same_seed():
    x = features(n=30, d=60)  # wider than pca_dims=50: reduced first
    a = embedding(x, perplexity=5, max_iter=500, seed=3)
    b = embedding(x, perplexity=5, max_iter=500, seed=3)
    assert a.shape == (30, 2) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    c = embedding(x, perplexity=5, max_iter=500, seed=3, init="random")
    torch.testing.assert_close(c, embedding(x, perplexity=5, max_iter=500, seed=3, init="random"))
    assert not torch.equal(c, embedding(x, perplexity=5, max_iter=500, seed=4, init="random"))
    # the four clusters stay apart: every point's nearest other point is in its own cluster
    d = torch.cdist(a, a) + torch.eye(30) * 1e9
    assert (d.argmin(1) % 4 == torch.arange(30) % 4).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"perplexity": 40}, ConfigError, "perplexity must be less than the number of points"),
        ({"method": "tnse"}, ConfigError, "did you mean 'tsne'"),
        ({"perplexity": 0}, ConfigError, "perplexity must be a positive number"),
        ({"features": torch.rand(40)}, InputError, "N×D numbers"),
        ({"features": torch.full((5, 3), float("nan"))}, InputError, "NaN"),
    ],
)
def test_embedding_refuses_bad_input_in_one_line(kwargs, error, match):
    with pytest.raises(error, match=match) as e:
        embedding(**({"features": features()} | kwargs))
    assert "\n" not in str(e.value)


def lattice(rows: int, cols: int, seed: int = 0):
    """Points on a rows×cols lattice (y up), shuffled, and images that say which point they are."""
    perm = torch.randperm(rows * cols, generator=torch.Generator().manual_seed(seed))
    r, c = perm // cols, perm % cols
    coords = torch.stack([c.float(), (rows - 1 - r).float()], 1)  # row 0 is the top: largest y
    images = torch.arange(rows * cols, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(-1, 3, 2, 2)
    return coords, images.clone(), r, c


def test_grid_with_as_many_cells_as_images_places_each_image_once_at_its_point():
    coords, images, r, c = lattice(4, 5)
    coords += torch.randn(coords.shape, generator=torch.Generator().manual_seed(1)) * 0.1
    grid = embedding_grid(coords, images, grid=(4, 5))
    assert sorted(grid.index.flatten().tolist()) == list(range(20))  # each image exactly once
    for i in range(20):
        assert grid.index[r[i], c[i]] == i
    assert grid.image.shape == (3, 4 * 2, 5 * 2)
    tiles = grid.image.reshape(3, 4, 2, 5, 2).permute(1, 3, 0, 2, 4)  # rows×cols×C×h×w
    torch.testing.assert_close(tiles, images[grid.index])


def test_unique_assignment_is_the_optimal_one_and_leaves_spare_cells_empty():
    g = torch.Generator().manual_seed(2)
    coords = torch.rand(7, 2, generator=g)
    images = torch.rand(7, 1, 3, 3, generator=g)
    grid = embedding_grid(coords, images, grid=(3, 3), fill=-1.0)
    placed = grid.index.flatten()
    assert sorted(placed[placed >= 0].tolist()) == list(range(7)) and (placed < 0).sum() == 2
    # reference: the same cost written out with loops, solved by scipy
    unit = (coords - coords.min(0).values) / (coords.max(0).values - coords.min(0).values)
    cost = np.zeros((9, 7))
    for cell in range(9):
        cy, cx = 1 - (cell // 3 + 0.5) / 3, (cell % 3 + 0.5) / 3
        for p in range(7):
            cost[cell, p] = (cx - unit[p, 0]) ** 2 + (cy - unit[p, 1]) ** 2
    rows, cols = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(
        cost[np.flatnonzero(placed >= 0), placed[placed >= 0]].sum()
    )
    empty = int(np.flatnonzero(placed < 0)[0])
    assert (
        grid.image[:, empty // 3 * 3 : empty // 3 * 3 + 3, empty % 3 * 3 : empty % 3 * 3 + 3] == -1
    ).all()


def test_nearest_assignment_fills_every_cell_with_its_nearest_image():
    g = torch.Generator().manual_seed(4)
    coords = torch.rand(5, 2, generator=g)
    images = torch.rand(5, 3, 2, 2, generator=g)
    grid = embedding_grid(coords, images, grid=(3, 4), assignment="nearest")
    unit = (coords - coords.min(0).values) / (coords.max(0).values - coords.min(0).values)
    for row in range(3):
        for col in range(4):
            centre = torch.tensor([(col + 0.5) / 4, 1 - (row + 0.5) / 3])
            assert grid.index[row, col] == ((unit - centre) ** 2).sum(1).argmin()


def test_grid_resizes_uint8_tiles_and_refuses_bad_input():
    coords, images, _, _ = lattice(2, 2)
    grid = embedding_grid(coords, (images * 10).to(torch.uint8), grid=(2, 2), tile=(4, 4))
    assert grid.image.dtype == torch.uint8 and grid.image.shape == (3, 8, 8)
    with pytest.raises(InputError, match="one image per point \\(4\\)"):
        embedding_grid(coords, images[:3], grid=(2, 2))
    with pytest.raises(InputError, match="coords must be N×2"):
        embedding_grid(torch.rand(4, 3), images, grid=(2, 2))
    with pytest.raises(ConfigError, match="grid must be two positive integers"):
        embedding_grid(coords, images, grid=(2, 2, 2))
    with pytest.raises(ConfigError, match="did you mean 'nearest'"):
        embedding_grid(coords, images, grid=(2, 2), assignment="neares")


def test_embedding_figure_renders_with_thumbnails_and_labels():
    coords, images, _, _ = lattice(3, 3)
    fig = embedding_figure(coords, images / 9, labels=torch.arange(9) % 2, classes=["a", "b"])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    assert len(fig.axes[0].images) == 9
    assert len(embedding_figure(coords, images / 9, max_images=4).axes[0].images) == 4
