"""Projective and thin-plate-spline grids: the identity at zero parameters, and NumPy references
(the homography applied point by point; Bookstein's system solved per sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.errors import ConfigError
from striate.spatial.distorted import homography_from_points
from striate.spatial.grid import IDENTITY_PROJECTIVE, base_grid, projective_grid
from striate.spatial.tps import TPSGrid


def centres(n: int, align_corners: bool) -> np.ndarray:
    i = np.arange(n)
    return 2 * i / (n - 1) - 1 if align_corners else (2 * i + 1) / n - 1


@pytest.mark.parametrize("align_corners", [True, False])
def test_projective_identity_is_the_identity_grid(align_corners):
    params = torch.tensor([IDENTITY_PROJECTIVE], dtype=torch.float64)
    grid = projective_grid(params, (5, 6), align_corners)
    theta = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=torch.float64)
    torch.testing.assert_close(grid, F.affine_grid(theta, (1, 1, 5, 6), align_corners))


@pytest.mark.parametrize("align_corners", [True, False])
def test_projective_grid_equals_the_homography_point_by_point(align_corners):
    hom = np.array([[0.9, 0.2, 0.1], [-0.1, 1.1, 0.05], [0.15, -0.2, 1.0]])
    grid = projective_grid(torch.from_numpy(hom)[None], (4, 7), align_corners)[0].numpy()
    for i, y in enumerate(centres(4, align_corners)):
        for j, x in enumerate(centres(7, align_corners)):
            u, v, w = hom @ np.array([x, y, 1.0])
            np.testing.assert_allclose(grid[i, j], [u / w, v / w], atol=1e-12)


def test_the_homography_of_four_points_maps_them():
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.uniform(-1, 1, (3, 4, 2)))
    source = torch.from_numpy(rng.uniform(-1, 1, (3, 4, 2)))
    hom = homography_from_points(target, source)
    ones = torch.ones(3, 4, 1, dtype=torch.float64)
    uvw = torch.cat([target, ones], -1) @ hom.transpose(1, 2)
    torch.testing.assert_close(uvw[..., :2] / uvw[..., 2:], source)


def tps_reference(points: np.ndarray, moved: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bookstein's thin-plate spline through `points` -> `moved`, solved with NumPy and
    evaluated at `xy` point by point."""
    k = len(points)

    def u(r2):
        return 0.0 if r2 == 0 else r2 * np.log(r2)

    system = np.zeros((k + 3, k + 3))
    for i in range(k):
        for j in range(k):
            system[i, j] = u(np.sum((points[i] - points[j]) ** 2))
        system[i, k:] = [1, *points[i]]
        system[k:, i] = [1, *points[i]]
    rhs = np.zeros((k + 3, 2))
    rhs[:k] = moved
    coef = np.linalg.solve(system, rhs)
    out = []
    for p in xy:
        basis = [u(np.sum((p - q) ** 2)) for q in points] + [1, *p]
        out.append(np.array(basis) @ coef)
    return np.array(out)


@pytest.mark.parametrize("align_corners", [True, False])
def test_tps_is_the_identity_at_zero_and_matches_bookstein(align_corners):
    tps = TPSGrid((5, 6), points_per_side=3, align_corners=align_corners).double()
    zero = tps(torch.zeros(2, 18, dtype=torch.float64))
    identity = base_grid(5, 6, align_corners, dtype=torch.float64)[..., :2]
    torch.testing.assert_close(zero, identity.expand(2, 5, 6, 2))
    d = torch.from_numpy(np.random.default_rng(1).normal(0, 0.2, (1, 9, 2)))
    grid = tps(d)[0].reshape(-1, 2).numpy()
    points = tps.points.numpy()
    expected = tps_reference(points, points + d[0].numpy(), identity.reshape(-1, 2).numpy())
    np.testing.assert_allclose(grid, expected, atol=1e-9)


def test_tps_reproduces_an_affine_map_exactly():
    tps = TPSGrid((4, 4), points_per_side=4).double()
    a = torch.tensor([[1.1, 0.2], [-0.1, 0.9]], dtype=torch.float64)
    b = torch.tensor([0.05, -0.1], dtype=torch.float64)
    d = tps.points @ a.T + b - tps.points
    torch.testing.assert_close(tps(d[None])[0], tps.identity @ a.T + b)


def test_grid_errors_are_one_line():
    with pytest.raises(ConfigError, match="N×3×3"):
        projective_grid(torch.zeros(1, 7), (3, 3))
    with pytest.raises(ConfigError, match="points_per_side"):
        TPSGrid((4, 4), points_per_side=1)
    with pytest.raises(ConfigError, match="N×16×2"):
        TPSGrid((4, 4))(torch.zeros(1, 8))
