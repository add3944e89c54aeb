"""Primitives against their closed forms: counts, volumes, areas, distances to the surface; the
voxeliser against NumPy's histogramdd."""

import math

import numpy as np
import pytest
import torch

from striate.errors import InputError
from striate.geometry import (
    SHAPES,
    icosphere,
    mesh,
    mesh_edges,
    sample_surface,
    sdf,
    voxel_grid,
    voxelize,
)
from striate.geometry.primitives import TORUS_MINOR

VOLUMES = {
    "sphere": 4 / 3 * math.pi,
    "icosphere": 4 / 3 * math.pi,
    "box": 8.0,
    "cylinder": 2 * math.pi,
    "torus": 2 * math.pi**2 * TORUS_MINOR**2,
}


def signed_volume(v, f):
    a, b, c = v[f].double().unbind(1)
    return float(torch.linalg.det(torch.stack([a, b, c], 1)).sum() / 6)


@pytest.mark.parametrize("s", [0, 1, 2, 3])
def test_icosphere_counts_and_closed_surface(s):
    v, f = icosphere(s)
    assert v.shape == (10 * 4**s + 2, 3) and f.shape == (20 * 4**s, 3)
    assert torch.allclose(v.norm(dim=1), torch.ones(len(v)), atol=1e-6)
    e = mesh_edges(f)
    assert len(v) - len(e) + len(f) == 2  # Euler characteristic of a sphere
    # every directed edge once: a closed, consistently oriented surface
    directed = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(torch.unique(directed, dim=0)) == len(directed) == 2 * len(e)


@pytest.mark.parametrize("shape", SHAPES)
def test_mesh_volume_and_surface(shape):
    v, f = mesh(shape, 4)
    assert signed_volume(v, f) == pytest.approx(VOLUMES[shape], rel=0.02)  # > 0: normals out
    assert float(sdf(shape, v).abs().max()) < 1e-5  # vertices on the surface


@pytest.mark.parametrize("shape", ["sphere", "box", "cylinder", "torus"])
def test_samples_on_surface_with_sdf_gradient_normals(shape):
    p, n = sample_surface(shape, 2000, seed=3)
    assert p.shape == n.shape == (2000, 3)
    assert float(sdf(shape, p).abs().max()) < 1e-5
    q = p.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sdf(shape, q).sum(), q)
    assert torch.allclose(grad, n, atol=1e-3)  # away from edges the SDF's gradient is the normal
    assert torch.equal(sample_surface(shape, 50, seed=1)[0], sample_surface(shape, 50, seed=1)[0])
    assert not torch.equal(
        sample_surface(shape, 50, seed=1)[0], sample_surface(shape, 50, seed=2)[0]
    )


def test_icosphere_samples_on_the_mesh():
    p, n = sample_surface("icosphere", 3000, seed=0, subdivisions=0)
    r = p.norm(dim=1)
    # on the icosahedron: between the face centre's radius and 1, and on a face's plane
    assert float(r.max()) <= 1 + 1e-5 and float(r.min()) > 0.79
    assert torch.allclose(n.norm(dim=1), torch.ones(len(n)), atol=1e-5)
    assert float((p * n).sum(1).std()) < 1e-5  # every face plane is at the same distance


def test_uniform_by_area():
    half = (1.0, 0.5, 0.25)
    p, n = sample_surface("box", 40000, seed=0, half=half)
    area = np.array([half[1] * half[2], half[0] * half[2], half[0] * half[1]])
    frac = np.array([float((n[:, k].abs() == 1).float().mean()) for k in range(3)])
    assert np.allclose(frac, area / area.sum(), atol=0.01)
    p, n = sample_surface("torus", 40000, seed=0)
    outer = float((p[:, :2].norm(dim=1) > 1).float().mean())
    r = TORUS_MINOR
    assert outer == pytest.approx((math.pi + 2 * r) / (2 * math.pi), abs=0.01)
    p, n = sample_surface("cylinder", 40000, seed=0)  # side 4π, caps π each
    assert float((n[:, 2] == 0).float().mean()) == pytest.approx(4 / 6, abs=0.01)


@pytest.mark.parametrize("shape", ["sphere", "box", "cylinder", "torus"])
def test_voxel_grid_volume(shape):
    grid = voxel_grid(shape, 48, bound=1.5)
    assert grid.shape == (48, 48, 48)
    assert float(grid.float().mean()) * 27 == pytest.approx(VOLUMES[shape], rel=0.05)


def test_voxelize_against_histogramdd():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 500, 3, generator=g) * torch.tensor([2.0, 1.0, 0.5]) - 0.3
    grid, lo, hi = voxelize(pts, 8)
    for b in range(2):
        x = pts[b].double().numpy()
        lo_b, hi_b = lo[b].double().numpy(), hi[b].double().numpy()
        assert np.allclose(hi_b - lo_b, (x.max(0) - x.min(0)).max(), atol=1e-6)
        counts, _ = np.histogramdd(x, bins=8, range=list(zip(lo_b, hi_b, strict=True)))
        assert np.array_equal(grid[b].numpy(), counts > 0)
    # a fixed box: points outside are dropped
    one, _, _ = voxelize(
        torch.tensor([[0.1, 0.1, 0.1], [5.0, 0.0, 0.0]]), 4, lo=(0, 0, 0), hi=(1, 1, 1)
    )
    assert int(one.sum()) == 1 and bool(one[0, 0, 0])


def test_bad_arguments():
    with pytest.raises(InputError, match="shape must be one of"):
        sample_surface("cone", 10)
    with pytest.raises(InputError, match="n must be a positive integer"):
        sample_surface("box", 0)
    with pytest.raises(InputError, match="voxelize: points"):
        voxelize(torch.zeros(5, 2))
