"""Shape metrics against brute-force NumPy and scipy's cKDTree."""

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

from striate.errors import InputError
from striate.geometry import (
    chamfer_distance,
    f_score,
    nearest_neighbors,
    normal_consistency,
    sample_surface,
    voxel_grid,
    voxel_iou,
)


def clouds(b=2, n=300, m=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, 3, generator=g), torch.randn(b, m, 3, generator=g) * 0.8 + 0.2


def brute_nn(x, y):
    """Squared distances to the nearest point of y, from the full distance matrix (float64)."""
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return d2.min(1), d2.argmin(1)


def test_nearest_neighbors_against_ckdtree_chunked():
    x, y = clouds(n=1000, m=700)
    d2, idx = nearest_neighbors(x, y, chunk_bytes=4 * 2 * 700 * 37)  # 37 rows a chunk
    for b in range(2):
        dist, ref = cKDTree(y[b].double().numpy()).query(x[b].double().numpy())
        assert np.array_equal(idx[b].numpy(), ref)
        assert np.allclose(d2[b].sqrt().numpy(), dist, atol=1e-5)


@pytest.mark.parametrize("squared", [True, False])
def test_chamfer_against_numpy(squared):
    x, y = clouds()
    got = chamfer_distance(x, y, squared=squared, chunk_bytes=10_000)
    for b in range(2):
        xb, yb = x[b].double().numpy(), y[b].double().numpy()
        a, _ = brute_nn(xb, yb)
        c, _ = brute_nn(yb, xb)
        if not squared:
            a, c = np.sqrt(a), np.sqrt(c)
        assert float(got[b]) == pytest.approx(a.mean() + c.mean(), rel=1e-5)
    # unbatched clouds give a scalar, the same as their row of the batch
    assert float(chamfer_distance(x[1], y[1], squared=squared)) == pytest.approx(float(got[1]))


def test_chamfer_against_ckdtree_large():
    x, _ = sample_surface("torus", 12000, seed=0)
    y, _ = sample_surface("box", 9000, seed=1)
    got = chamfer_distance(x, y, squared=False, chunk_bytes=2**22)
    a, _ = cKDTree(y.double().numpy()).query(x.double().numpy())
    c, _ = cKDTree(x.double().numpy()).query(y.double().numpy())
    assert float(got) == pytest.approx(a.mean() + c.mean(), rel=1e-4)


def test_chamfer_symmetric_and_zero_on_equal_sets():
    x, y = clouds()
    assert torch.allclose(chamfer_distance(x, y), chamfer_distance(y, x))
    assert torch.equal(chamfer_distance(x, x), torch.zeros(2))
    assert torch.equal(chamfer_distance(x, x.flip(1), squared=False), torch.zeros(2))
    assert bool((chamfer_distance(x, y) > 0).all())


def test_chamfer_gradient_against_finite_differences():
    x, y = clouds(b=1, n=12, m=9)
    x, y = x.double().requires_grad_(True), y.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: chamfer_distance(a, b, squared=False), (x, y))


def test_f_score_against_numpy_and_monotone():
    x, y = clouds()
    previous = None
    for t in (0.05, 0.1, 0.2, 0.4, 1.0, 10.0):
        f1, p, r = f_score(x, y, t)
        for b in range(2):
            xb, yb = x[b].double().numpy(), y[b].double().numpy()
            d_xy = np.sqrt(brute_nn(xb, yb)[0])
            d_yx = np.sqrt(brute_nn(yb, xb)[0])
            pn, rn = (d_xy <= t).mean(), (d_yx <= t).mean()
            fn = 2 * pn * rn / (pn + rn) if pn + rn > 0 else 0.0
            assert (float(p[b]), float(r[b]), float(f1[b])) == pytest.approx((pn, rn, fn))
        if previous is not None:
            assert bool(
                (f1 >= previous[0]).all() & (p >= previous[1]).all() & (r >= previous[2]).all()
            )
        previous = (f1, p, r)
    assert torch.equal(f1, torch.ones(2))  # t = 10 covers everything
    f1s, ps, rs = f_score(y, x, 0.2)
    f1, p, r = f_score(x, y, 0.2)
    assert torch.equal(ps, r) and torch.equal(rs, p) and torch.allclose(f1s, f1)
    assert torch.equal(f_score(x, x, 1e-6)[0], torch.ones(2))


def test_normal_consistency():
    p, n = sample_surface("sphere", 500, seed=0)
    q, m = sample_surface("sphere", 400, seed=1)
    got = float(normal_consistency(p, n, q, m))
    # reference: cKDTree neighbours, NumPy cosines
    pi = cKDTree(q.numpy()).query(p.numpy())[1]
    qi = cKDTree(p.numpy()).query(q.numpy())[1]
    ref = (
        np.abs((n.numpy() * m.numpy()[pi]).sum(1)).mean()
        + np.abs((m.numpy() * n.numpy()[qi]).sum(1)).mean()
    ) / 2
    assert got == pytest.approx(ref, rel=1e-5)
    assert 0.97 < got < 1
    assert float(normal_consistency(p, n, p, -n)) == pytest.approx(1.0)  # orientation-blind
    # normals perpendicular to the true ones: zero
    perp = torch.linalg.cross(n, torch.tensor([0.0, 0.0, 1.0]).expand_as(n))
    assert float(normal_consistency(p, perp, p, n)) == pytest.approx(0.0, abs=1e-6)


def test_voxel_iou_against_numpy():
    a = voxel_grid("sphere", 24)
    b = voxel_grid("box", 24, half=0.8)
    na, nb = a.numpy(), b.numpy()
    ref = (na & nb).sum() / (na | nb).sum()
    assert float(voxel_iou(a, b)) == pytest.approx(ref)
    assert float(voxel_iou(a, a)) == 1.0
    batched = voxel_iou(torch.stack([a, a]), torch.stack([b, a.float()]))
    assert torch.allclose(batched, torch.tensor([ref, 1.0], dtype=torch.float32))
    assert float(voxel_iou(torch.zeros(4, 4, 4, dtype=torch.bool), torch.zeros(4, 4, 4))) == 1.0


def test_bad_arguments():
    x, y = clouds()
    with pytest.raises(InputError, match="same D"):
        chamfer_distance(x, y[0])
    with pytest.raises(InputError, match="t must be"):
        f_score(x, y, 0)
    with pytest.raises(InputError, match="same shape"):
        voxel_iou(torch.zeros(2, 2, 2), torch.zeros(3, 3, 3))


@pytest.mark.slow
def test_chamfer_1e5_points_against_ckdtree():
    # 10^5 points against 2·10^4: 2·10^9 distances, 64 MiB at a time (~40 s on 2 cores)
    x, _ = sample_surface("torus", 100_000, seed=0)
    y, _ = sample_surface("cylinder", 20_000, seed=1)
    got = chamfer_distance(x, y, squared=False)
    a, _ = cKDTree(y.double().numpy()).query(x.double().numpy())
    c, _ = cKDTree(x.double().numpy()).query(y.double().numpy())
    assert float(got) == pytest.approx(a.mean() + c.mean(), rel=1e-4)
