"""KNNClassifier and select_k against scikit-learn, float64 brute force and the documented tie
rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from sklearn.exceptions import NotFittedError
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import check_estimator

from striate import load_dataset
from striate.classic import _gemm
from striate.classic._base import image_features
from striate.classic._knn_index import Index
from striate.classic.knn import KNNClassifier, KSelection, select_k
from striate.data.imageset import ImageSet
from striate.data.splits import kfold
from striate.errors import ConfigError, InputError, StriateError

SKLEARN_METRIC = {"l2": "euclidean", "l1": "manhattan", "cosine": "cosine"}


def _blobs(n: int, d: int = 12, classes: int = 3, seed: int = 0):
    """Continuous float32 data (no distance ties) with some class structure."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, d)) * 0.4
    X = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


def _brute(X: np.ndarray, Q: np.ndarray, metric: str, exclude_self: bool = False) -> np.ndarray:
    """Float64 distance matrix, computed directly (the independent reference)."""
    X, Q = X.astype(np.float64), Q.astype(np.float64)
    if metric == "l2":
        D = np.sqrt(((Q[:, None, :] - X[None]) ** 2).sum(-1))
    elif metric == "l1":
        D = np.abs(Q[:, None, :] - X[None]).sum(-1)
    else:
        nq = np.linalg.norm(Q, axis=1, keepdims=True)
        nx = np.linalg.norm(X, axis=1, keepdims=True)
        D = 1 - (Q / np.where(nq > 0, nq, 1)) @ (X / np.where(nx > 0, nx, 1)).T
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    return D


def _rank(D: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k smallest per row by (distance, index): a stable sort of the rows."""
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def _rule(labels: np.ndarray, dist: np.ndarray, n_classes: int, weights: str) -> np.ndarray:
    """The documented vote, one query at a time: most votes, then closest nearest member, then
    the lower class index."""
    out = []
    for lab, d in zip(labels, dist, strict=True):
        if weights == "distance":
            w = np.where(d == 0, 1.0, 0.0) if (d == 0).any() else 1 / d
        else:
            w = np.ones_like(d)
        votes = [w[lab == c].sum() for c in range(n_classes)]
        nearest = [d[lab == c].min() if (lab == c).any() else np.inf for c in range(n_classes)]
        out.append(min(range(n_classes), key=lambda c: (-votes[c], nearest[c], c)))
    return np.array(out)


# ---------------------------------------------------------------------- against scikit-learn


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", ["l2", "l1", "cosine"])
def test_matches_sklearn_brute(metric, weights):
    X, y = _blobs(800)
    X, y, Q = X[:600], y[:600], X[600:]
    ours = KNNClassifier(5, metric=metric, weights=weights, batch_size=64, ref_batch_size=128)
    ours.fit(X, y)
    ref = KNeighborsClassifier(5, metric=SKLEARN_METRIC[metric], weights=weights, algorithm="brute")
    ref.fit(X.astype(np.float64), y)
    Q64 = Q.astype(np.float64)

    d, i = ours.kneighbors(Q)
    d_ref, i_ref = ref.kneighbors(Q64)
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-10, atol=1e-12)
    d, i = ours.kneighbors()  # the training points, each excluding itself
    d_ref, i_ref = ref.kneighbors()
    np.testing.assert_array_equal(i, i_ref)
    np.testing.assert_allclose(d, d_ref, rtol=1e-10, atol=1e-12)

    proba = ours.predict_proba(Q)
    np.testing.assert_allclose(proba, ref.predict_proba(Q64), rtol=1e-12, atol=1e-12)
    pred = ours.predict(Q)
    d_ref, i_ref = ref.kneighbors(Q64)
    np.testing.assert_array_equal(pred, _rule(y[i_ref], d_ref, 3, weights))
    untied = (proba == proba.max(1, keepdims=True)).sum(1) == 1
    np.testing.assert_array_equal(pred[untied], ref.predict(Q64)[untied])
    if weights == "uniform":  # 5 votes among 3 classes: 2-2-1 ties must occur and be resolved
        assert 0 < (~untied).sum() < len(Q)
    assert ours.score(Q, pred) == 1.0
    # X=None: the training points, each without its own vote
    proba = ours.predict_proba()
    np.testing.assert_allclose(proba, ref.predict_proba(None), rtol=1e-12, atol=1e-12)
    d_ref, i_ref = ref.kneighbors()
    np.testing.assert_array_equal(ours.predict(), _rule(y[i_ref], d_ref, 3, weights))


def test_mnist_subset_matches_sklearn(shared_data):
    train = load_dataset("mnist", "train", root=shared_data)[:5000]
    test = load_dataset("mnist", "test", root=shared_data)[:1000]
    X, y = image_features(train).numpy(), train.labels.numpy()
    Q, yq = image_features(test).numpy(), test.labels.numpy()
    ours = KNNClassifier(1, device="cpu").fit(X, y)
    pred = ours.predict(Q)
    ref = KNeighborsClassifier(1, algorithm="brute").fit(X, y)
    ref_pred = ref.predict(Q)
    acc, ref_acc = (pred == yq).mean(), (ref_pred == yq).mean()
    assert acc > 0.9  # the lecture's MNIST 1-NN is ~95% on all of it; 5,000 give ~93%
    # pixel data are multiples of 1/255, so exact distance ties between different training
    # images exist; scikit-learn breaks them arbitrarily, we by index. Only there may we differ.
    D = ours.kneighbors(Q, 2)[0]
    tie = D[:, 0] == D[:, 1]
    assert np.array_equal(pred[~tie], ref_pred[~tie])
    assert abs(acc - ref_acc) <= tie.mean()


# ---------------------------------------------------------------------- exactness and chunking


@pytest.mark.parametrize("metric", ["l2", "l1", "cosine"])
def test_chunk_sizes_do_not_change_results(metric):
    X, y = _blobs(300, d=9, seed=2)
    X[150:160] = X[10:20]  # duplicates: exact ties that only the index rule can order
    Q = np.concatenate([_blobs(80, d=9, seed=3)[0], X[5:25]])
    tiny = KNNClassifier(7, metric=metric, batch_size=3, ref_batch_size=11).fit(X, y)
    one = KNNClassifier(7, metric=metric, batch_size=10**6, ref_batch_size=10**6).fit(X, y)
    for query in (Q, None):
        d_tiny, i_tiny = tiny.kneighbors(query)
        d_one, i_one = one.kneighbors(query)
        assert np.array_equal(i_tiny, i_one) and np.array_equal(d_tiny, d_one)
        D = _brute(X, Q if query is not None else X, metric, exclude_self=query is None)
        np.testing.assert_array_equal(i_tiny, _rank(D, 7))
    np.testing.assert_array_equal(tiny.predict_proba(Q), one.predict_proba(Q))


def test_fast_pass_works_in_bounded_blocks(monkeypatch):
    """The largest block of fast distances is batch_size × ref_batch_size, whatever the number of
    references."""
    X, y = _blobs(2000, d=6)
    shapes = []
    real_topk = torch.topk

    def spy(t, *args, **kwargs):
        shapes.append(tuple(t.shape))
        return real_topk(t, *args, **kwargs)

    monkeypatch.setattr(torch, "topk", spy)
    KNNClassifier(3, batch_size=50, ref_batch_size=300).fit(X, y).predict(X[:400])
    assert shapes and max(r for r, _ in shapes) <= 50
    assert max(c for _, c in shapes) <= 300


def test_cancellation_large_common_offset(monkeypatch):
    """Data 10⁴ + N(0, 1): float32 ‖a‖²+‖b‖²−2a·b loses the neighbours; centring + re-ranking
    gives exactly the float64 brute-force answer, certified by the fast pass alone."""
    rng = np.random.default_rng(0)
    X = (1e4 + rng.normal(size=(1500, 32))).astype(np.float32)
    y = rng.integers(0, 2, len(X))
    Q = (1e4 + rng.normal(size=(200, 32))).astype(np.float32)
    truth = _rank(_brute(X, Q, "l2"), 3)

    Xt, Qt = torch.from_numpy(X), torch.from_numpy(Q)
    naive = (Qt * Qt).sum(1, keepdim=True) + (Xt * Xt).sum(1) - 2 * Qt @ Xt.T
    naive_idx = naive.topk(3, largest=False).indices.numpy()
    assert (naive_idx[:, 0] != truth[:, 0]).mean() > 0.5  # the naive formula is badly wrong

    calls = []
    for name in ("_candidates", "_exact_all"):
        real = getattr(Index, name)
        monkeypatch.setattr(
            Index,
            name,
            lambda *a, _real=real, _name=name, **kw: calls.append(_name) or _real(*a, **kw),
        )
    _, idx = KNNClassifier(3, batch_size=64, ref_batch_size=256).fit(X, y).kneighbors(Q)
    np.testing.assert_array_equal(idx, truth)
    assert calls == ["_candidates"]  # centred, every query passed its certificate at once
    # queries far from the training data (only the query is offset) are also exact
    far = Q + np.float32(300)
    _, idx = KNNClassifier(3).fit(X, y).kneighbors(far)
    np.testing.assert_array_equal(idx, _rank(_brute(X, far, "l2"), 3))


@pytest.mark.parametrize("scale", [1e19, 1e37])
@pytest.mark.parametrize("metric", ["l2", "l1", "cosine"])
def test_values_near_the_float32_limit_are_still_exact(metric, scale):
    """Squares of values ~1e19 overflow float32 (to inf, or NaN at ~1e37): the error bound no
    longer holds there, and those queries fall back to float64 search."""
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(60, 3)) * scale).astype(np.float32)
    Q = (rng.normal(size=(10, 3)) * scale).astype(np.float32)
    dist, idx = KNNClassifier(4, metric=metric).fit(X, np.arange(60) % 2).kneighbors(Q)
    D = _brute(X, Q, metric)
    np.testing.assert_array_equal(idx, _rank(D, 4))
    assert np.isfinite(dist).all()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 60),
    d=st.integers(1, 4),
    k=st.integers(1, 25),
    metric=st.sampled_from(["l2", "l1"]),
    batch=st.integers(1, 70),
    ref_batch=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_small_integer_data_equals_stable_brute_force(n, d, k, metric, batch, ref_batch, seed):
    """Values in {0, 1, 2}: many exact ties and duplicates, ordered by the lower index."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n, d)).astype(np.float32)
    Q = rng.integers(0, 3, size=(7, d)).astype(np.float32)
    y = np.arange(n) % 2
    k = min(k, n - 1)  # kneighbors() excludes each point itself
    model = KNNClassifier(k, metric=metric, batch_size=batch, ref_batch_size=ref_batch).fit(X, y)
    dist, idx = model.kneighbors(Q)
    D = _brute(X, Q, metric)
    np.testing.assert_array_equal(idx, _rank(D, k))
    np.testing.assert_allclose(dist, np.take_along_axis(D, idx, 1), rtol=1e-15)
    _, idx = model.kneighbors()
    np.testing.assert_array_equal(idx, _rank(_brute(X, X, metric, exclude_self=True), k))


def test_cosine_zero_vectors_have_distance_one():
    X = np.array([[0, 0], [1, 0], [0, 2], [3, 3]], dtype=np.float32)
    model = KNNClassifier(2, metric="cosine").fit(X, [0, 1, 0, 1])
    d, i = model.kneighbors(np.array([[0, 0], [2, 0]], dtype=np.float32))
    np.testing.assert_array_equal(i, [[0, 1], [1, 3]])  # a zero query ties everything at 1
    np.testing.assert_allclose(d, [[1, 1], [0, 1 - np.sqrt(0.5)]], atol=1e-15)


# ---------------------------------------------------------------------- tie rules


def test_equal_distances_go_to_the_lower_training_index():
    ring = np.array([[1, 0], [0, 1], [-1, 0], [0, -1], [1, 0]], dtype=np.float32)
    for metric in ("l2", "l1"):
        for order in (np.arange(5), np.arange(5)[::-1]):
            X = ring[order]
            model = KNNClassifier(3, metric=metric, ref_batch_size=2).fit(X, [0, 1, 0, 1, 0])
            d, i = model.kneighbors(np.zeros((1, 2), dtype=np.float32), 5)
            np.testing.assert_array_equal(i, [[0, 1, 2, 3, 4]])
            np.testing.assert_array_equal(d, np.ones((1, 5)))


def test_vote_ties_go_to_the_class_with_the_closest_member():
    # query at 0; neighbours at 1 ("b"), 2 ("a"), 3 ("a"), 4 ("b"): 2 votes each
    X = np.array([[2], [1], [3], [4], [9]], dtype=np.float32)
    y = np.array(["a", "b", "a", "b", "a"])
    model = KNNClassifier(4).fit(X, y)
    q = np.zeros((1, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.predict_proba(q), [[0.5, 0.5]])
    assert model.predict(q)[0] == "b"  # b's nearest member (at 1) is closer than a's (at 2)
    # 1/distance weights that tie exactly: "b" at 1 weighs 1, "a" at 2 and -2 weighs 1/2 + 1/2
    X = np.array([[2], [1], [-2], [9]], dtype=np.float32)
    model = KNNClassifier(3, weights="distance").fit(X, ["a", "b", "a", "b"])
    np.testing.assert_array_equal(model.predict_proba(q), [[0.5, 0.5]])
    assert model.predict(q)[0] == "b"  # scikit-learn would say "a", the lower class


def test_vote_ties_with_equally_close_members_go_to_the_lower_class():
    # query at 0; "z" at +1 (training index 0), "a" at -1 (index 1): votes 1-1, both at distance 1
    X = np.array([[1], [-1], [5]], dtype=np.float32)
    model = KNNClassifier(2).fit(X, ["z", "a", "z"])
    assert list(model.classes_) == ["a", "z"]
    assert model.predict(np.zeros((1, 1), dtype=np.float32))[0] == "a"


def test_distance_weights_at_zero_distance_follow_sklearn():
    X, y = _blobs(50, d=4)
    Q = np.concatenate([X[:5], _blobs(5, d=4, seed=9)[0]])
    ours = KNNClassifier(4, weights="distance").fit(X, y)
    ref = KNeighborsClassifier(4, weights="distance", algorithm="brute").fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(Q), ref.predict_proba(Q), atol=1e-12)
    np.testing.assert_array_equal(ours.predict_proba(Q[:5]).argmax(1), y[:5])


# ---------------------------------------------------------------------- select_k


def test_select_k_on_digits_equals_explicit_cross_validation():
    ds = load_dataset("digits", "all")
    X = image_features(ds).numpy()
    X += np.random.default_rng(0).uniform(0, 1e-3, X.shape).astype(np.float32)  # no exact ties
    y = ds.labels.numpy()
    ks = (1, 4, 8, 20, 40)
    result = select_k(X, y, ks=ks, folds=5, random_state=0, device="cpu")
    assert isinstance(result, KSelection)
    assert result.accuracy.shape == (5, len(ks))
    np.testing.assert_array_equal(result.ks, ks)

    expected = np.zeros((5, len(ks)))
    sklearn_acc = np.zeros((5, len(ks)))
    for f, (train, val) in enumerate(kfold(y, k=5, seed=0)):
        train, val = train.numpy(), val.numpy()
        for j, k in enumerate(ks):
            ref = KNeighborsClassifier(k, algorithm="brute").fit(X[train], y[train])
            dist, idx = ref.kneighbors(X[val])
            pred = _rule(y[train][idx], dist, 10, "uniform")
            expected[f, j] = (pred == y[val]).mean()
            sklearn_acc[f, j] = (ref.predict(X[val]) == y[val]).mean()
    np.testing.assert_allclose(result.accuracy, expected, rtol=0, atol=1e-12)
    # scikit-learn gives vote ties to the lower class: a few samples at most differ
    assert np.abs(result.accuracy - sklearn_acc).max() <= 3 / 359
    np.testing.assert_allclose(result.mean, expected.mean(0))
    np.testing.assert_allclose(result.std, expected.std(0))
    best = max(range(len(ks)), key=lambda j: (expected.mean(0)[j], -ks[j]))
    assert result.best_k == ks[best]
    assert 0.95 < result.mean[0] < 1.0  # digits: 1-NN is ~98% accurate

    fig = result.plot()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) >= 5  # one scatter per fold (plus the error bars)
    assert ax.get_xlabel() == "k"


def test_select_k_best_k_ties_go_to_the_smaller_k():
    res = KSelection(ks=np.array([1, 3, 5]), accuracy=np.array([[0.5, 0.9, 0.9], [0.5, 0.8, 0.8]]))
    assert res.best_k == 3


def test_select_k_takes_an_imageset_and_checks_its_arguments():
    ds = load_dataset("digits", "train")
    result = select_k(ds, ks=[5, 1, 3], folds=3, metric="l1", device="cpu")
    np.testing.assert_array_equal(result.ks, [1, 3, 5])
    assert result.accuracy.shape == (3, 3) and (result.accuracy > 0.9).all()
    X, y = image_features(ds).numpy(), ds.labels.numpy()
    with pytest.raises(InputError, match="k=2000 but a training fold has only"):
        select_k(X, y, ks=[1, 2000])
    with pytest.raises(InputError, match="positive integers"):
        select_k(X, y, ks=[])
    with pytest.raises(InputError, match="positive integers"):
        select_k(X, y, ks=[0, 3])
    with pytest.raises(InputError, match="unknown metric"):
        select_k(X, y, metric="l3")
    with pytest.raises(InputError, match="needs labels"):
        select_k(X)
    with pytest.raises(InputError, match="folds"):
        select_k(X[:20], y[:20], folds=5)  # some class has fewer than 5 samples


# ---------------------------------------------------------------------- input checking


def test_bad_input_raises_input_error_with_a_useful_message():
    X, y = _blobs(40, d=5)
    model = KNNClassifier(3).fit(X, y)
    with pytest.raises(InputError, match="4 features, but KNNClassifier is expecting 5"):
        model.predict(X[:, :4])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(InputError, match="NaN"):
        KNNClassifier().fit(bad, y)
    bad[3, 2] = np.inf
    with pytest.raises(InputError, match="infinity"):
        model.predict(bad)
    with pytest.raises(InputError, match="n_neighbors=41 but the training set has only 40"):
        KNNClassifier(41).fit(X, y)
    with pytest.raises(InputError, match="one class"):
        KNNClassifier().fit(X, np.zeros(40))
    with pytest.raises(InputError, match="0 sample"):
        KNNClassifier().fit(X[:0], y[:0])
    with pytest.raises(InputError, match="0 sample"):
        model.predict(X[:0])
    with pytest.raises(InputError, match="requires y"):
        KNNClassifier().fit(X)
    with pytest.raises(InputError, match="n_neighbors=40 but there are only 39 other"):
        model.kneighbors(n_neighbors=40)
    with pytest.raises(InputError, match="n_neighbors=41 but there are only 40"):
        model.kneighbors(X, n_neighbors=41)
    with pytest.raises(InputError, match="Reshape your data"):
        model.predict(X[0])
    assert isinstance(InputError("x"), StriateError) and isinstance(InputError("x"), ValueError)
    with pytest.raises(NotFittedError):
        KNNClassifier().predict(X)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"metric": "euclidean"}, "unknown metric 'euclidean'; use one of l2, l1, cosine"),
        ({"weights": "inverse"}, "unknown weights 'inverse'"),
        ({"n_neighbors": 0}, "n_neighbors must be a positive integer"),
        ({"n_neighbors": 2.5}, "n_neighbors must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"ref_batch_size": True}, "ref_batch_size must be a positive integer"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_parameters_raise_at_fit(params, message):
    model = KNNClassifier(**params)  # __init__ only stores them
    X, y = _blobs(20, d=3)
    with pytest.raises(InputError, match=message):
        model.fit(X, y)


def test_imageset_input():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    model = KNNClassifier(3).fit(train)
    arrays = KNNClassifier(3).fit(image_features(train).numpy(), train.labels.numpy())
    np.testing.assert_array_equal(model.predict(test), arrays.predict(image_features(test).numpy()))
    assert model.score(test) == arrays.score(image_features(test).numpy(), test.labels.numpy())
    assert model.score(test) > 0.95
    assert isinstance(test, ImageSet) and model.n_features_in_ == 64
    # torch tensors work too
    torch_model = KNNClassifier(3).fit(image_features(train), train.labels)
    np.testing.assert_array_equal(torch_model.predict(image_features(test)), model.predict(test))


def test_kneighbors_return_distance_false():
    X, y = _blobs(30, d=3)
    model = KNNClassifier(2).fit(X, y)
    idx = model.kneighbors(X[:4], return_distance=False)
    np.testing.assert_array_equal(idx, model.kneighbors(X[:4])[1])
    assert idx.dtype == np.int64 and idx.shape == (4, 2)
    np.testing.assert_array_equal(idx[:, 0], np.arange(4))  # each point is its own nearest


@pytest.mark.parametrize(
    "estimator",
    [
        KNNClassifier(device="cpu"),
        KNNClassifier(n_neighbors=3, metric="cosine", weights="distance", device="cpu"),
    ],
    ids=["default", "cosine-distance-k3"],
)
def test_check_estimator(estimator):
    check_estimator(estimator)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    X, y = _blobs(3000, d=40)
    X[2000:2010] = X[:10]
    Q = np.concatenate([_blobs(500, d=40, seed=5)[0], X[:20]])
    offset = (1e4 + np.random.default_rng(0).normal(size=(800, 16))).astype(np.float32)
    for metric in ("l2", "l1", "cosine"):
        for data, query in ((X, Q), (offset, offset[:100] + np.float32(0.1))):
            labels = np.arange(len(data)) % 3
            params = dict(n_neighbors=5, metric=metric, batch_size=128, ref_batch_size=700)
            cpu = KNNClassifier(**params, device="cpu").fit(data, labels)
            gpu = KNNClassifier(**params, device="cuda").fit(data, labels)
            assert gpu._index.X.is_cuda
            d_cpu, i_cpu = cpu.kneighbors(query)
            d_gpu, i_gpu = gpu.kneighbors(query)
            np.testing.assert_array_equal(i_gpu, i_cpu)
            np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(gpu.predict(query), cpu.predict(query))
            np.testing.assert_array_equal(gpu.kneighbors()[1], cpu.kneighbors()[1])
            # a CUDA tensor as input stays on the device
            np.testing.assert_array_equal(
                gpu.predict(torch.from_numpy(query).cuda()), cpu.predict(query)
            )


# ---------------------------------------------------------------------- the CPU GEMM's library


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_either_blas_gives_the_same_exact_neighbours(metric, monkeypatch):
    """The fast pass by torch's MKL or numpy's OpenBLAS: identical exact results, equal to the
    float64 brute force."""
    X, y = _blobs(500, d=40, seed=5)
    X[300:310] = X[:10]  # exact ties
    Q = _blobs(120, d=40, seed=6)[0]
    results = {}
    for library in _gemm.BACKENDS:
        monkeypatch.setenv("STRIATE_CPU_GEMM", library)
        knn = KNNClassifier(6, metric=metric, batch_size=50, ref_batch_size=128).fit(X, y)
        results[library] = (knn.kneighbors(Q), knn.kneighbors(), knn.predict(Q))
    (d_t, i_t), (ds_t, is_t), p_t = results["torch"]
    (d_n, i_n), (ds_n, is_n), p_n = results["numpy"]
    assert np.array_equal(i_t, i_n) and np.array_equal(d_t, d_n)
    assert np.array_equal(is_t, is_n) and np.array_equal(ds_t, ds_n)
    assert np.array_equal(p_t, p_n)
    np.testing.assert_array_equal(i_n, _rank(_brute(X, Q, metric), 6))


def test_gemm_libraries_agree_on_transposed_operands():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(33, 70, generator=g), torch.randn(50, 70, generator=g)
    expect = a.double() @ b.double().T
    for library in _gemm.BACKENDS:
        for right in (b.T, b.T.neg().neg()):  # a transposed view and a transposed result
            out = torch.empty(33, 50)
            assert _gemm.gemm(a, right, out, library) is out
            np.testing.assert_allclose(out.double(), expect, rtol=0, atol=1e-4)
    assert _gemm._measured(33, 70, 50, torch.get_num_threads()) in _gemm.BACKENDS


def test_a_bad_gemm_setting_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("STRIATE_CPU_GEMM", "mkl")
    X, y = _blobs(50)
    with pytest.raises(ConfigError, match="STRIATE_CPU_GEMM must be one of torch, numpy"):
        KNNClassifier(1).fit(X, y).kneighbors(X[:3])
