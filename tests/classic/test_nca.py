"""NCA against a naive NumPy double loop of Goldberger et al.'s formulas (value and gradient),
torch.autograd.gradcheck, scikit-learn's PCA and NeighborhoodComponentsAnalysis, and the
scikit-learn estimator checks."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import striate.classic.nca as nca_module
from striate import load_dataset
from striate.classic.nca import NCA, nca_log_probs, nca_loss, plot_embedding
from striate.errors import InputError, StriateError


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The problems here are small (batches of ≤ 500 points): one thread is as fast, and two
    threads wait on each other at every operation when the 2-core machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ----------------------------------------------------------------------------- references


def naive_nca(A: np.ndarray, X: np.ndarray, y: np.ndarray, reg: float = 0.0):
    """Loss -(1/M) Σ_i log p_i + reg‖A‖² and its gradient, one pair (i, j) at a time.

    Gradient of f = Σ_i log p_i from Goldberger et al. (2004), eq. 7:
    ∂f/∂A = 2A Σ_i (Σ_k p_ik x_ik x_ikᵀ - Σ_{j∈C_i} p_ij x_ij x_ijᵀ / p_i),  x_ij = x_i - x_j.
    Points without a class-mate are left out (M counts the others).
    """
    n, D = X.shape
    f, M = 0.0, 0
    inner = np.zeros((D, D))
    for i in range(n):
        others = [k for k in range(n) if k != i]
        mates = [j for j in others if y[j] == y[i]]
        if not mates:
            continue
        M += 1
        logits = {k: -float(np.sum((A @ (X[i] - X[k])) ** 2)) for k in others}
        log_z = logsumexp(list(logits.values()))
        p = {k: np.exp(logits[k] - log_z) for k in others}
        log_mates = logsumexp([logits[j] for j in mates])
        f += log_mates - log_z
        for k in others:
            inner += p[k] * np.outer(X[i] - X[k], X[i] - X[k])
        for j in mates:  # p_ij / p_i = exp(logit_ij) / Σ_{j'∈C_i} exp(logit_ij')
            inner -= np.exp(logits[j] - log_mates) * np.outer(X[i] - X[j], X[i] - X[j])
    loss = -f / M + reg * np.sum(A * A)
    grad = -(2 * A @ inner) / M + 2 * reg * A
    return loss, grad


def _small_problem(seed: int = 0, n: int = 14, D: int = 5, d: int = 3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    y = rng.integers(0, 3, n)
    y[-1] = 7  # a class of one: this point has no class-mate and is left out
    A = 0.4 * rng.normal(size=(d, D))
    return A, X, y


def _knn_accuracy(Ztr, ytr, Zte, yte, k: int = 5) -> float:
    return KNeighborsClassifier(k).fit(Ztr, ytr).score(Zte, yte)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


# ----------------------------------------------------------------------------- the objective


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_loss_and_gradient_match_the_naive_double_loop(reg):
    A, X, y = _small_problem()
    want_loss, want_grad = naive_nca(A, X, y, reg)
    At = torch.tensor(A, requires_grad=True)
    loss = nca_loss(At, torch.tensor(X), torch.tensor(y), reg)
    loss.backward()
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-10)
    np.testing.assert_allclose(At.grad.numpy(), want_grad, rtol=1e-8, atol=1e-12)


def test_float32_loss_matches_float64_reference():
    A, X, y = _small_problem(seed=3, n=40)
    want_loss, want_grad = naive_nca(A, X, y)
    At = torch.tensor(A, dtype=torch.float32, requires_grad=True)
    loss = nca_loss(At, torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    loss.backward()
    np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-5)
    np.testing.assert_allclose(At.grad.numpy(), want_grad, rtol=1e-3, atol=1e-5)


def test_gradcheck_of_the_written_out_gradient():
    A, X, y = _small_problem(seed=1)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    At = torch.tensor(A, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: nca_loss(a, Xt, yt, 0.2), (At,))
    # the per-point log p_i with arbitrary output weights (every row of the Jacobian)
    z = torch.tensor(X[:, :3] * 0.7, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: nca_log_probs(z, yt)[0], (z,))


def test_far_apart_points_stay_finite_and_exact():
    # distances of ~1e4: a plain softmax underflows to 0/0; logsumexp per row does not
    A, X, y = _small_problem(seed=2)
    A = A * 60
    want_loss, _ = naive_nca(A, X, y)
    for dtype, rtol in ((torch.float64, 1e-10), (torch.float32, 1e-4)):
        At = torch.tensor(A, dtype=dtype, requires_grad=True)
        loss = nca_loss(At, torch.tensor(X, dtype=dtype), torch.tensor(y))
        loss.backward()
        assert torch.isfinite(At.grad).all()
        np.testing.assert_allclose(loss.item(), want_loss, rtol=rtol)


def test_a_point_never_counts_itself():
    # 1-D points 0, 1, 10, 11 with classes a, b, a, b: every point's nearest other point is of
    # the other class, at distance 1, and its class-mate at distance 10, so
    # log p_i = -100 - log(e^-1 + e^-100 + e^-121) ≈ -99. A point counting itself (p_ii > 0)
    # would be almost surely right: log p_i ≈ 0.
    X = torch.tensor([[0.0], [1.0], [10.0], [11.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1])
    A = torch.ones(1, 1, dtype=torch.float64)
    want = 100 + np.log(np.exp(-1) + np.exp(-100) + np.exp(-121))
    assert nca_loss(A, X, y).item() == pytest.approx(want, rel=1e-12)
    log_p, valid = nca_log_probs(X @ A.T, y)
    assert valid.all()
    np.testing.assert_allclose(log_p.numpy(), -want, rtol=1e-12)


def test_points_without_a_class_mate_are_left_out():
    X = torch.tensor([[0.0], [0.5], [3.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    log_p, valid = nca_log_probs(X, y)
    assert valid.tolist() == [True, True, False]
    assert log_p[2].item() == 0.0
    # the two class-mates see each other (d² = 0.25) and the stranger (d² = 9 and 6.25)
    want0 = -0.25 - np.log(np.exp(-0.25) + np.exp(-9))
    assert log_p[0].item() == pytest.approx(want0, rel=1e-12)
    assert nca_loss(torch.eye(1, dtype=torch.float64), X, y).item() == pytest.approx(
        -(log_p[0] + log_p[1]).item() / 2, rel=1e-12
    )
    with pytest.raises(InputError, match="at least 2 points"):
        nca_log_probs(X[:1], y[:1])


def test_reg_adds_the_l2_penalty():
    A, X, y = _small_problem(seed=4)
    At = torch.tensor(A, requires_grad=True)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    base = nca_loss(At, Xt, yt)
    (g0,) = torch.autograd.grad(base, At)
    pen = nca_loss(At, Xt, yt, reg=0.7)
    (g1,) = torch.autograd.grad(pen, At)
    assert (pen - base).item() == pytest.approx(0.7 * float(np.sum(A * A)), rel=1e-12)
    np.testing.assert_allclose((g1 - g0).numpy(), 1.4 * A, rtol=1e-10)


def test_reg_shrinks_the_learned_map(digits):
    Xtr, _, ytr, _ = digits
    free = NCA(4, device="cpu", max_iter=60).fit(Xtr, ytr)
    tied = NCA(4, device="cpu", max_iter=60, reg=1.0).fit(Xtr, ytr)
    norm = lambda m: np.linalg.norm(m.components_ * m.scale_)  # noqa: E731 - A on std. features
    assert norm(tied) < 0.7 * norm(free)


# ----------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def digits_scores(digits):
    """5-NN test accuracy after PCA, scikit-learn's NCA and striate's NCA, all to 5-D."""
    Xtr, Xte, ytr, yte = digits
    d = 5
    pca = PCA(d).fit(Xtr)
    sk = NeighborhoodComponentsAnalysis(d, random_state=0).fit(Xtr, ytr)
    ours = NCA(d, device="cpu").fit(Xtr, ytr)
    return {
        name: _knn_accuracy(m.transform(Xtr), ytr, m.transform(Xte), yte)
        for name, m in (("pca", pca), ("sklearn", sk), ("nca", ours))
    }


def test_digits_nca_beats_pca(digits_scores):
    assert digits_scores["nca"] > digits_scores["pca"] + 0.02, digits_scores


def test_digits_nca_at_least_as_good_as_sklearn(digits_scores):
    assert digits_scores["nca"] >= digits_scores["sklearn"] - 0.01, digits_scores


def test_mnist_subset_nca_beats_raw_pixels(shared_data):
    train = load_dataset("mnist", "train", root=shared_data)[:3000]
    test = load_dataset("mnist", "test", root=shared_data)[:2000]
    Xtr, ytr = train.images.flatten(1).numpy(), train.labels.numpy()
    Xte, yte = test.images.flatten(1).numpy(), test.labels.numpy()
    raw = _knn_accuracy(Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte)
    model = NCA(32, device="cpu").fit(train)  # an ImageSet: features on the 0–1 scale
    assert model.components_.shape == (32, 784)
    ours = _knn_accuracy(model.transform(train), ytr, model.transform(test), yte)
    assert ours > raw, (ours, raw)


@pytest.mark.parametrize("init", ["pca", "identity", "random"])
def test_each_init_lowers_the_loss(digits, init):
    Xtr, _, ytr, _ = digits
    m = NCA(3, init=init, device="cpu", max_iter=100, tol=0).fit(Xtr, ytr)
    assert m.n_iter_ == 100 == len(m.loss_curve_)
    assert np.mean(m.loss_curve_[-10:]) < 0.8 * np.mean(m.loss_curve_[:10])


@pytest.mark.parametrize("cov_limit", [4096, 10])  # covariance, then Gram matrix of the rows
def test_pca_init_is_the_pca_of_the_data(monkeypatch, cov_limit):
    monkeypatch.setattr(nca_module, "_PCA_COV_MAX_FEATURES", cov_limit)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 20)) * np.linspace(3, 0.5, 20) + 5  # distinct variances
    X = X.astype(np.float32)
    model = NCA(4, device="cpu")
    Xt = torch.from_numpy(X)
    mean, scale = model._moments(Xt)
    A0 = model._initial_map(Xt, mean, scale, 4, torch.Generator().manual_seed(0))
    raw = (A0.double() / scale).numpy()  # the map on the features as given
    axes = PCA(4).fit(X.astype(np.float64)).components_
    cos = np.abs(np.sum(raw * axes, 1)) / np.linalg.norm(raw, axis=1)
    np.testing.assert_allclose(cos, 1, atol=1e-4)


def test_tol_stops_early_and_zero_runs_every_step(digits):
    Xtr, _, ytr, _ = digits
    assert NCA(3, device="cpu", max_iter=300, tol=0.5).fit(Xtr, ytr).n_iter_ < 300
    assert NCA(3, device="cpu", max_iter=30, tol=0).fit(Xtr, ytr).n_iter_ == 30


# ----------------------------------------------------------------------------- the transformer


def test_transform_uses_the_stored_standardisation(digits):
    Xtr, Xte, ytr, _ = digits
    m = NCA(3, device="cpu", max_iter=20).fit(Xtr, ytr)
    np.testing.assert_allclose(m.mean_, Xtr.mean(0), atol=1e-9)
    std = Xtr.std(0)
    np.testing.assert_allclose(m.scale_, np.where(std > 1e-6, std, 1), rtol=1e-9)
    Z = m.transform(Xte)
    np.testing.assert_allclose(Z, (Xte - m.mean_) @ m.components_.T, rtol=1e-10, atol=1e-10)
    # one row at a time gives the same: no statistics are taken from the batch being transformed
    np.testing.assert_allclose(m.transform(Xte[:1]), Z[:1], rtol=1e-10, atol=1e-10)


def test_standardisation_makes_the_fit_blind_to_feature_units(digits):
    # Rescaling and shifting each feature changes nothing after standardisation, so a model
    # fitted on the rescaled data embeds rescaled test points where the first embeds the originals
    # (up to float32 rounding, amplified a little by training); without it the maps differ.
    Xtr, Xte, ytr, _ = digits
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.5, 2, Xtr.shape[1]), rng.uniform(-1, 1, Xtr.shape[1])
    kw = dict(init="random", device="cpu", max_iter=30)
    first = NCA(3, **kw).fit(Xtr, ytr).transform(Xte)
    second = NCA(3, **kw).fit(Xtr * a + b, ytr).transform(Xte * a + b)
    raw = NCA(3, **kw, standardize=False).fit(Xtr * a + b, ytr).transform(Xte * a + b)
    size = np.abs(first).max()
    assert np.abs(second - first).max() < 0.01 * size
    assert np.abs(raw - first).max() > 0.2 * size


def test_pipeline_with_a_knn_classifier(digits):
    Xtr, Xte, ytr, yte = digits
    pipe = Pipeline([("nca", NCA(5, device="cpu")), ("knn", KNeighborsClassifier(5))])
    score = pipe.fit(Xtr, ytr).score(Xte, yte)
    alone = NCA(5, device="cpu").fit(Xtr, ytr)
    assert score == _knn_accuracy(alone.transform(Xtr), ytr, alone.transform(Xte), yte)
    assert score > 0.9
    assert list(pipe[:-1].get_feature_names_out()) == [f"nca{i}" for i in range(5)]
    assert clone(pipe).get_params()["nca__n_components"] == 5


def test_same_seed_same_map_other_seed_other_map(digits):
    Xtr, _, ytr, _ = digits
    kw = dict(init="random", device="cpu", max_iter=40)
    a = NCA(3, random_state=5, **kw).fit(Xtr, ytr)
    b = NCA(3, random_state=5, **kw).fit(Xtr, ytr)
    c = NCA(3, random_state=6, **kw).fit(Xtr, ytr)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert a.loss_curve_ == b.loss_curve_
    assert not np.allclose(a.components_, c.components_)


def test_imageset_and_tensor_inputs():
    train = load_dataset("digits", "train")
    m = NCA(2, device="cpu", max_iter=30).fit(train)  # labels come with the ImageSet
    assert m.n_features_in_ == 64
    np.testing.assert_array_equal(m.classes_, np.arange(10))
    Z = m.transform(train)
    assert isinstance(Z, np.ndarray) and Z.shape == (len(train), 2) and Z.dtype == np.float32
    feats = train.images.flatten(1).float() / 255
    Zt = m.transform(feats)
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float32
    np.testing.assert_allclose(Zt.numpy(), Z, rtol=1e-6, atol=1e-5)
    assert m.transform(feats.double()).dtype == torch.float64


def test_verbose_shows_a_progress_bar(digits, capsys):
    Xtr, _, ytr, _ = digits
    NCA(2, device="cpu", max_iter=20, verbose=True).fit(Xtr, ytr)
    out, err = capsys.readouterr()
    # progress goes to stderr; without a terminal, as one line when the fit ends
    assert out == "" and re.fullmatch(r"NCA: 20 steps in \d+\.\d s\n", err)


def test_plot_embedding():
    rng = np.random.default_rng(0)
    X2, y = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    fig = plot_embedding(X2, y, classes=["zero", "one", "two"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["zero", "one", "two"]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), X2[10:20])
    with pytest.raises(InputError, match="N×2"):
        plot_embedding(rng.normal(size=(30, 3)), y)
    with pytest.raises(InputError, match="one label per point"):
        plot_embedding(X2, y[:5])


# ----------------------------------------------------------------------------- the contract


@parametrize_with_checks([NCA(device="cpu")])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    ("X", "y", "kw", "match"),
    [
        (np.zeros((0, 3)), np.zeros(0), {}, "0 sample"),
        (np.array([[0.0, np.nan], [1, 2], [3, 4]]), [0, 1, 0], {}, "NaN"),
        (np.array([[0.0, np.inf], [1, 2], [3, 4]]), [0, 1, 0], {}, "infinity"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [1] * 5, {}, "one class"),
        (np.ones((4, 3)) * np.arange(4)[:, None], [0, 1, 2, 3], {}, "single sample"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [0, 1, 0, 1, 0], {"n_components": 4}, "≤ 3"),
        (np.ones((5, 3)) * np.arange(5)[:, None], None, {}, "requires y"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [0, 1, 0, 1, 0], {"init": "lda"}, "init"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [0, 1, 0, 1, 0], {"batch_size": 1}, ">= 2"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [0, 1, 0, 1, 0], {"max_iter": 0}, "max_iter"),
        (np.ones((5, 3)) * np.arange(5)[:, None], [0, 1, 0, 1, 0], {"reg": -1}, "reg"),
    ],
)
def test_bad_input_raises_input_error(X, y, kw, match):
    with pytest.raises(InputError, match=match) as info:
        NCA(device="cpu", **kw).fit(X, y)
    assert isinstance(info.value, StriateError) and isinstance(info.value, ValueError)


def test_transform_checks_its_input(digits):
    Xtr, Xte, ytr, _ = digits
    with pytest.raises(NotFittedError):
        NCA(device="cpu").transform(Xte)
    m = NCA(2, device="cpu", max_iter=10).fit(Xtr, ytr)
    with pytest.raises(InputError, match="expecting 64 features"):
        m.transform(Xte[:, :10])
    with pytest.raises(InputError, match="NaN"):
        m.transform(np.where(Xte == 0, np.nan, Xte))
    with pytest.raises(InputError, match="Reshape your data"):
        m.transform(Xte[0])


# ----------------------------------------------------------------------------- the GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(digits):
    A, X, y = _small_problem(seed=5, n=200, D=8)
    losses, grads = [], []
    for dev in ("cpu", "cuda"):
        At = torch.tensor(A, device=dev, requires_grad=True)
        loss = nca_loss(At, torch.tensor(X, device=dev), torch.tensor(y, device=dev), 0.1)
        loss.backward()
        losses.append(loss.item())
        grads.append(At.grad.cpu().numpy())
    assert losses[1] == pytest.approx(losses[0], rel=1e-10)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-8, atol=1e-12)

    Xtr, Xte, ytr, yte = digits
    cpu = NCA(5, device="cpu").fit(Xtr, ytr)
    gpu = NCA(5, device="cuda").fit(Xtr, ytr)
    assert gpu.loss_curve_[0] == pytest.approx(cpu.loss_curve_[0], rel=1e-4)  # same batches
    Zg = gpu.transform(torch.tensor(Xte, device="cuda"))
    assert Zg.device.type == "cuda"
    acc = [_knn_accuracy(m.transform(Xtr), ytr, m.transform(Xte), yte) for m in (cpu, gpu)]
    assert abs(acc[1] - acc[0]) <= 0.02, acc
