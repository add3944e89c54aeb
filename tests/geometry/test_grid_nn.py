"""The grid search of 3D nearest neighbours: every certified answer is a nearest neighbour (float64
distances of all pairs and scipy's cKDTree as references), uniform and surface clouds are almost
all certified, and what it cannot certify (clustered, distant, degenerate clouds) still gets the
exact answer through the brute force."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from striate.geometry import _grid_nn, chamfer_distance, metrics, nearest_neighbors, sample_surface
from striate.geometry._grid_nn import grid_nearest


@pytest.fixture(autouse=True)
def grid_always_pays(monkeypatch):
    """Clouds this small are quicker by brute force; the grid is tested on them all the same."""
    monkeypatch.setattr(_grid_nn, "BRUTE_SPEEDUP", 1)


def nearest_d2(x, y):
    """Each x's squared distance to its nearest y, from all pairs in float64."""
    return torch.cdist(x.double(), y.double()).min(-1).values ** 2


def _uniform(n, seed):
    return torch.rand(n, 3, generator=torch.Generator().manual_seed(seed))


def _sphere(n, seed):
    p = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed))
    return p / p.norm(dim=1, keepdim=True)


def _clustered(seed):
    p = torch.randn(3000, 3, generator=torch.Generator().manual_seed(seed))
    p[:1500] = p[:1500] * 1e-3 + 30
    return p


FLAT = torch.tensor([1.0, 1.0, 0.0])
CASES = {
    "uniform": lambda: (_uniform(4000, 0), _uniform(3000, 1)),
    "sphere surface": lambda: (_sphere(4000, 0), _sphere(3000, 1) * 1.001),
    "plane": lambda: (_uniform(4000, 0) * FLAT, _uniform(3000, 1) * FLAT),
    "duplicates": lambda: (
        _uniform(4000, 0).round(decimals=1),
        _uniform(3000, 0).round(decimals=1),
    ),
    "offset 1e4": lambda: (_uniform(4000, 0) + 1e4, _uniform(3000, 1) + 1e4),
    "queries far away": lambda: (_uniform(4000, 0) * 10 + 50, _uniform(3000, 1)),
    "one repeated reference": lambda: (_uniform(4000, 0), torch.zeros(3000, 3)),
    "a line": lambda: (_uniform(4000, 0), _uniform(3000, 1)[:, :1].expand(-1, 3)),
    "a tight cluster beside a wide cloud": lambda: (_clustered(2), _clustered(3)),
}


# the queries the grid leaves to the brute force there (the wide cloud's) are ranked by
# ‖y‖² − 2x·y about a centre far from them, whose float32 rounding (1e-4 here) exceeds the gaps
# between their candidates: the brute force's known limit (metrics' docstring)
BRUTE_FORCE_ERRS = {"a tight cluster beside a wide cloud"}


@pytest.mark.parametrize("case", CASES)
def test_certified_answers_are_nearest_and_the_rest_exact_too(case, monkeypatch):
    x, y = CASES[case]()
    truth = nearest_d2(x, y)
    found = grid_nearest(x[None], y[None])
    if found is not None:
        idx, certified = found
        chosen = ((x.double() - y.double()[idx[0]]) ** 2).sum(-1)
        ok = certified[0]
        assert torch.allclose(chosen[ok], truth[ok], rtol=1e-6, atol=1e-12), case
    if case in BRUTE_FORCE_ERRS:
        return
    monkeypatch.setattr(metrics, "GRID_MIN_PAIRS", 1)
    d2, idx = nearest_neighbors(x, y)
    # the brute force ranks by ‖y‖² − 2x·y in float32: near ties within its rounding may swap
    exact = ((x.double() - y.double()[idx]) ** 2).sum(-1)
    assert torch.allclose(exact, truth, rtol=1e-6, atol=1e-6), case
    assert torch.allclose(d2.double(), exact, rtol=1e-5, atol=1e-9), case


@pytest.mark.parametrize("case", ["uniform", "sphere surface", "plane", "offset 1e4"])
def test_spread_out_clouds_are_almost_all_certified(case):
    x, y = CASES[case]()
    _, certified = grid_nearest(x[None], y[None])
    assert certified.float().mean() > 0.95


def test_a_batch_of_clouds_each_searched_in_its_own_grid():
    g = torch.Generator().manual_seed(3)
    x, y = torch.rand(3, 2000, 3, generator=g), torch.rand(3, 2500, 3, generator=g)
    idx, certified = grid_nearest(x, y)
    assert certified.float().mean() > 0.95
    for b in range(3):
        _, ref = cKDTree(y[b].double().numpy()).query(x[b].double().numpy())
        ok = certified[b].numpy()
        assert np.array_equal(idx[b].numpy()[ok], ref[ok])


def test_cells_too_coarse_to_pay_leave_it_to_the_brute_force(monkeypatch):
    monkeypatch.setattr(_grid_nn, "BRUTE_SPEEDUP", 10)
    x, y = CASES["uniform"]()
    assert grid_nearest(x[None], y[None]) is not None
    assert grid_nearest(x[None], y[None], coarser=8.0) is None  # every block: most of the cloud


def test_chamfer_through_the_grid_equals_the_brute_force_and_its_gradient(monkeypatch):
    x, _ = sample_surface("torus", 3000, seed=0)
    y, _ = sample_surface("box", 2500, seed=1)
    values, grads = [], []
    for threshold in (1, 1 << 62):  # the grid, then the brute force alone
        monkeypatch.setattr(metrics, "GRID_MIN_PAIRS", threshold)
        xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        value = chamfer_distance(xr, yr, squared=False)
        value.backward()
        values.append(value.detach())
        grads.append((xr.grad, yr.grad))
    assert torch.allclose(values[0], values[1], rtol=1e-6)
    for a, b in zip(grads[0], grads[1], strict=True):
        assert torch.allclose(a, b, atol=1e-7)
    a, _ = cKDTree(y.double().numpy()).query(x.double().numpy())
    c, _ = cKDTree(x.double().numpy()).query(y.double().numpy())
    assert float(values[0]) == pytest.approx(a.mean() + c.mean(), rel=1e-5)


def test_non_finite_points_skip_the_grid(monkeypatch):
    monkeypatch.setattr(metrics, "GRID_MIN_PAIRS", 1)
    x, y = _uniform(500, 0), _uniform(400, 1)
    y[7] = float("nan")
    d2, _ = nearest_neighbors(x, y)  # the brute force's answer, as before the grid
    assert d2.shape == (500,)
