"""The kNN search's principal-subspace first pass: its lower bound holds for every pair, and the
searches it serves equal the float64 brute force and the full-dimension pass, on synthetic data
and on CIFAR-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from striate import load_dataset
from striate.classic import _knn_index
from striate.classic._base import image_features
from striate.classic._knn_index import Index
from striate.classic._knn_projection import Projection, subspace_dim
from striate.classic.knn import KNNClassifier


def _brute_sq(X: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Float64 squared distances, computed directly (in blocks of queries)."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    return np.concatenate(
        [((q[:, None] - X[None]) ** 2).sum(-1) for q in np.array_split(Q, len(Q) // 50 + 1)]
    )


def _rank(D: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def _low_rank(n: int, dim: int = 96, rank: int = 8, offset: float = 0.0, seed: int = 0):
    """Points near one `rank`-dimensional subspace (plus a little noise), around `offset`."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, dim))
    X = rng.normal(size=(n, rank)) * 3 @ basis + rng.normal(size=(n, dim)) * 0.3 + offset
    return X.astype(np.float32)


@pytest.fixture
def projected(monkeypatch):
    """The first pass for any size of data and search, and the number of queries each of its
    rounds saw and certified."""
    monkeypatch.setattr(_knn_index, "_PROJECT_MIN_DIM", 64)
    monkeypatch.setattr(_knn_index, "_PROJECT_PAYS", 0)
    rounds = []
    real = Index._projected

    def spy(self, Q, rows, *args, **kwargs):
        out = real(self, Q, rows, *args, **kwargs)
        rounds.append((len(rows), int(out[2].sum())))
        return out

    monkeypatch.setattr(Index, "_projected", spy)
    return rounds


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_the_floor_never_exceeds_a_pairs_exact_distance(offset):
    """For every (query, reference) pair, the floor computed from that pair's own projected fast
    distance is at most its exact squared distance: the bound the certificate rests on. On data
    near a subspace it is also close to it (not vacuous)."""
    X, Q = np.split(_low_rank(700, offset=offset), [600])
    Q = np.concatenate([Q, X[:20]])
    index = Index(torch.from_numpy(X), "l2")
    proj = Projection.fit(index.X, index.center)
    assert proj.dim == subspace_dim(96) == 12
    q = torch.from_numpy(Q) - index.center
    p = q @ proj.basis
    q_scale = torch.linalg.vector_norm(q, dim=1).double()
    p_scale = torch.linalg.vector_norm(p, dim=1).double()
    fast = torch.addmm(proj.refs_sq, p, proj.refs.T, alpha=-2).double() + p_scale.square()[:, None]
    tol_d, safe = index._tolerance(p_scale, proj.refs_scale, dim=proj.dim)
    assert safe.all()
    grow = 1 + 2 * (96 + 2) * 2.0**-24
    scale = (q_scale + proj.centred_scale) * grow
    floor = proj.floor(fast, tol_d[:, None], scale[:, None], index._unit())
    exact = torch.from_numpy(_brute_sq(X, Q))
    assert (floor <= exact).all()
    far = exact > 1  # leave out each query's copy of itself
    assert float((floor[far] / exact[far]).median()) > 0.9


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_projected_search_equals_brute_force(projected, offset, k, exclude_self):
    """Near a subspace, around the origin and around a large common offset, with duplicate
    training points: the same neighbours and distances as the float64 brute force, and the first
    pass certifies most queries by itself."""
    X, Q = np.split(_low_rank(3300, offset=offset), [3000])
    X[2000:2010] = X[:10]  # exact ties, ordered by the lower index
    Q = np.concatenate([Q, X[5:25]])
    model = KNNClassifier(k, batch_size=128, ref_batch_size=700).fit(X, np.arange(3000) % 3)
    dist, idx = model.kneighbors(None if exclude_self else Q)
    D = _brute_sq(X, X if exclude_self else Q)
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    np.testing.assert_array_equal(idx, _rank(D, k))
    np.testing.assert_allclose(dist, np.sqrt(np.take_along_axis(D, idx, 1)), rtol=1e-12)
    seen, certified = projected[0]
    assert seen == len(D) and certified > 0.8 * seen
    assert model._index._projection is not None


def test_data_far_from_any_subspace_turn_the_first_pass_off(projected):
    """Isotropic noise: the subspace bound certifies few queries, so the index stops using it;
    the answers stay exact."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 96)).astype(np.float32)
    Q = rng.normal(size=(200, 96)).astype(np.float32)
    model = KNNClassifier(3).fit(X, np.arange(3000) % 2)
    _, idx = model.kneighbors(Q)
    np.testing.assert_array_equal(idx, _rank(_brute_sq(X, Q), 3))
    assert len(projected) == 1 and projected[0][1] < 0.5 * 200
    assert not model._index._projection_helps and model._index._projection is None
    model.kneighbors(Q)
    assert len(projected) == 1  # not tried again


def test_reduced_precision_products_skip_it(projected):
    """With TF32/bf16 float32 products allowed, the rounding bound is too loose to rule anything
    out: the search runs the full pass (with its own, wider bound) and stays exact."""
    X, Q = np.split(_low_rank(3300), [3000])
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        model = KNNClassifier(2).fit(X, np.arange(3000) % 2)
        _, idx = model.kneighbors(Q)
    finally:
        torch.set_float32_matmul_precision(before)
    np.testing.assert_array_equal(idx, _rank(_brute_sq(X, Q), 2))
    assert projected == [] and model._index._projection is None
    proj = Projection.fit(model._index.X, model._index.center)
    largest = torch.tensor([5.0, 50.0], dtype=torch.float64)
    floor = proj.floor(largest, torch.zeros(2, dtype=torch.float64), torch.ones(2), 2.0**-6)
    assert torch.equal(floor, torch.zeros(2, dtype=torch.float64))


def test_small_searches_do_not_build_it():
    """At the defaults, a few queries against a small set never pay for the subspace."""
    X = _low_rank(2000, dim=600)
    model = KNNClassifier(1).fit(X, np.arange(2000) % 2)
    model.kneighbors(X[:50])
    assert model._index._projection is None


def test_cifar10_equals_the_full_pass(projected, shared_data, monkeypatch):
    """Real images (3,072 pixels): the first pass certifies nearly every query and the answers
    are those of the search in all dimensions, bit for bit, also excluding each point itself."""
    test = load_dataset(shared_data / "cifar10" / "cifar10-jpeg.zip", "test")
    X = image_features(test[:4000]).numpy()
    Q = image_features(test[4000:4600]).numpy()
    y = test.labels[:4000].numpy()
    fast = KNNClassifier(3, device="cpu").fit(X, y)
    d_fast, i_fast = fast.kneighbors(Q)
    first_self = len(projected)
    ds_fast, is_fast = fast.kneighbors()
    assert fast._index._projection.dim == 256
    for seen, certified in (projected[0], projected[first_self]):
        assert certified > 0.8 * seen
    monkeypatch.setattr(_knn_index, "_PROJECT_MIN_DIM", 10**9)
    full = KNNClassifier(3, device="cpu").fit(X, y)
    d_full, i_full = full.kneighbors(Q)
    assert full._index._projection is None
    assert np.array_equal(i_fast, i_full) and np.array_equal(d_fast, d_full)
    ds_full, is_full = full.kneighbors()
    assert np.array_equal(is_fast, is_full) and np.array_equal(ds_fast, ds_full)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu(projected):
    X, Q = np.split(_low_rank(3300, offset=1e3), [3000])
    params = dict(n_neighbors=5, batch_size=128, ref_batch_size=700)
    cpu = KNNClassifier(**params, device="cpu").fit(X, np.arange(3000) % 3)
    gpu = KNNClassifier(**params, device="cuda").fit(X, np.arange(3000) % 3)
    d_cpu, i_cpu = cpu.kneighbors(Q)
    d_gpu, i_gpu = gpu.kneighbors(Q)
    np.testing.assert_array_equal(i_gpu, i_cpu)
    np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-12, atol=1e-12)
    assert gpu._index._projection.refs.is_cuda
