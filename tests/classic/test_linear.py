"""LinearClassifier (multiclass SVM / softmax by minibatch SGD) against independent references:
naive per-sample loops (CS231n's svm_loss_naive / softmax_loss_naive), torch's cross_entropy and
autograd, centred differences, scikit-learn's LinearSVC / LogisticRegression, and its
estimator checks."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC
from sklearn.utils.estimator_checks import parametrize_with_checks

from striate import load_dataset
from striate.classic.linear import (
    LinearClassifier,
    SearchTable,
    linear_loss_and_grad,
    plot_templates,
    random_search,
)
from striate.errors import InputError, StriateError
from striate.gradcheck import gradcheck

LOSSES = ["svm", "softmax"]
PENALTIES = ["l2", "l1", "elasticnet", None]


def problem(n=40, d=7, k=5, seed=0, dtype=torch.float64):
    """Random features, labels and weights (bias as the last row of W)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=dtype)
    y = torch.randint(0, k, (n,), generator=g)
    W = torch.randn(d + 1, k, generator=g, dtype=dtype) * 0.5
    return W, X, y


# --------------------------------------------------------------------------- naive references


def svm_loss_naive(W, X, y, reg, margin=1.0):
    """CS231n's svm_loss_naive with the bias trick (a column of ones) and an unpenalised bias."""
    W, X, y = W.numpy(), X.numpy(), y.numpy()
    X1 = np.hstack([X, np.ones((len(X), 1))])
    dW = np.zeros_like(W)
    loss = 0.0
    for i in range(len(X1)):
        scores = X1[i] @ W
        correct = scores[y[i]]
        for j in range(W.shape[1]):
            if j == y[i]:
                continue
            m = scores[j] - correct + margin
            if m > 0:
                loss += m
                dW[:, j] += X1[i]
                dW[:, y[i]] -= X1[i]
    loss /= len(X1)
    dW /= len(X1)
    loss += reg * np.sum(W[:-1] ** 2)
    dW[:-1] += 2 * reg * W[:-1]
    return loss, dW


def softmax_loss_naive(W, X, y, reg):
    """CS231n's softmax_loss_naive (max shift per sample), bias trick, unpenalised bias."""
    W, X, y = W.numpy(), X.numpy(), y.numpy()
    X1 = np.hstack([X, np.ones((len(X), 1))])
    dW = np.zeros_like(W)
    loss = 0.0
    for i in range(len(X1)):
        scores = X1[i] @ W
        scores = scores - scores.max()
        p = np.exp(scores) / np.sum(np.exp(scores))
        loss += -np.log(p[y[i]])
        for j in range(W.shape[1]):
            dW[:, j] += (p[j] - (j == y[i])) * X1[i]
    loss /= len(X1)
    dW /= len(X1)
    loss += reg * np.sum(W[:-1] ** 2)
    dW[:-1] += 2 * reg * W[:-1]
    return loss, dW


def autograd_loss(W, X, y, loss, reg, penalty, l1_ratio, margin=1.0):
    """The same objective written with plain torch ops, differentiated by autograd."""
    W = W.detach().clone().requires_grad_(True)
    scores = X @ W[:-1] + W[-1]
    if loss == "svm":
        correct = scores[torch.arange(len(X)), y].unsqueeze(1)
        terms = torch.relu(scores - correct + margin)
        mask = torch.ones_like(terms)
        mask[torch.arange(len(X)), y] = 0
        value = (terms * mask).sum() / len(X)
    else:
        value = F.cross_entropy(scores, y)
    Wd = W[:-1]
    l1 = {"l1": reg, "elasticnet": reg * l1_ratio}.get(penalty, 0.0)
    l2 = {"l2": reg, "elasticnet": reg * (1 - l1_ratio)}.get(penalty, 0.0)
    value = value + l1 * Wd.abs().sum() + l2 * (Wd**2).sum()
    value.backward()
    return value.detach(), W.grad


# --------------------------------------------------------------------------- losses and gradients


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_svm_loss_and_grad_match_the_naive_loop(reg):
    W, X, y = problem()
    loss, grad = linear_loss_and_grad(W, X, y, loss="svm", reg=reg)
    ref_loss, ref_grad = svm_loss_naive(W, X, y, reg)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reg", [0.0, 0.3])
def test_softmax_loss_and_grad_match_the_naive_loop_and_cross_entropy(reg):
    W, X, y = problem(seed=1)
    loss, grad = linear_loss_and_grad(W, X, y, loss="softmax", reg=reg)
    ref_loss, ref_grad = softmax_loss_naive(W, X, y, reg)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=1e-10, atol=1e-12)
    data_loss = F.cross_entropy(X @ W[:-1] + W[-1], y) + reg * (W[:-1] ** 2).sum()
    assert float(loss) == pytest.approx(float(data_loss), rel=1e-12)


def test_svm_margin_and_known_values():
    """One sample, scores (3, 1, 2), label 0: Σ_{j≠0} max(0, s_j - 3 + Δ) is 0 for Δ=1, 1 + 2 for
    Δ=3 (the lecture's worked example has the same structure)."""
    X = torch.zeros(1, 1, dtype=torch.float64)
    W = torch.tensor([[0.0, 0.0, 0.0], [3.0, 1.0, 2.0]], dtype=torch.float64)  # bias row only
    y = torch.tensor([0])
    assert float(linear_loss_and_grad(W, X, y, loss="svm")[0]) == 0.0
    assert float(linear_loss_and_grad(W, X, y, loss="svm", margin=3.0)[0]) == pytest.approx(3.0)
    expected = -3.0 + math.log(math.exp(3) + math.exp(1) + math.exp(2))
    assert float(linear_loss_and_grad(W, X, y, loss="softmax")[0]) == pytest.approx(expected)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("penalty", PENALTIES)
def test_analytic_gradient_passes_gradcheck_and_matches_autograd(loss, penalty):
    W, X, y = problem(seed=2)
    clf = LinearClassifier(loss=loss, penalty=penalty, reg=0.2, l1_ratio=0.3, margin=1.5)
    value, grad = clf.loss_and_grad(W, X, y)
    assert grad.dtype == torch.float64 and grad.shape == W.shape

    ref_value, ref_grad = autograd_loss(W, X, y, loss, 0.2, penalty, 0.3, margin=1.5)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), ref_grad.numpy(), rtol=1e-10, atol=1e-12)

    result = gradcheck(lambda w: clf.loss_and_grad(w, X, y), W, grad, num_checks=20, h=1e-6)
    # hinge and |w| have kinks (the lectures' threshold 1e-4 applies); softmax + L2 is smooth
    threshold = 1e-7 if (loss, penalty) in (("softmax", "l2"), ("softmax", None)) else 1e-4
    assert result.passed(threshold), str(result)


def test_gradcheck_catches_a_wrong_svm_gradient():
    """The check can fail: drop the -count term of the correct class from the SVM gradient."""
    W, X, y = problem(seed=3)
    clf = LinearClassifier(loss="svm", reg=0.0)
    _, grad = clf.loss_and_grad(W, X, y)
    X1 = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)
    scores = X1 @ W
    margins = scores - scores[torch.arange(len(X)), y].unsqueeze(1) + 1
    margins[torch.arange(len(X)), y] = 0
    wrong = X1.T @ (margins > 0).double() / len(X)  # forgot the correct-class column
    assert gradcheck(lambda w: clf.loss_and_grad(w, X, y), W, wrong).max_rel_error > 1e-2
    assert gradcheck(lambda w: clf.loss_and_grad(w, X, y), W, grad).max_rel_error < 1e-4


def test_loss_and_grad_takes_numpy_and_float32():
    W, X, y = problem(seed=4)
    clf = LinearClassifier(loss="softmax", reg=0.1)
    value, grad = clf.loss_and_grad(W.numpy(), X.numpy(), y.numpy())
    assert isinstance(value, float) and isinstance(grad, np.ndarray)
    ref_value, ref_grad = clf.loss_and_grad(W, X, y)
    assert value == pytest.approx(float(ref_value))
    np.testing.assert_allclose(grad, ref_grad.numpy())
    v32, g32 = clf.loss_and_grad(W.float(), X, y)
    assert g32.dtype == torch.float32
    np.testing.assert_allclose(g32.numpy(), ref_grad.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(InputError, match="D \\+ 1"):
        clf.loss_and_grad(W, X[:, :-1], y)
    with pytest.raises(InputError, match="label indices"):
        clf.loss_and_grad(W, X, y + 10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_is_stable_for_huge_scores(dtype):
    """Scores of 1e4: exp would overflow without the max shift; the loss is exactly the gap."""
    X = torch.zeros(2, 1, dtype=dtype)
    W = torch.tensor([[0.0, 0.0, 0.0], [1e4, 0.0, -1e4]], dtype=dtype)
    y = torch.tensor([1, 0])
    loss, grad = linear_loss_and_grad(W, X, y, loss="softmax")
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert float(loss) == pytest.approx((1e4 + 0.0) / 2, rel=1e-6)  # sample 0 loses 1e4, 1 none
    ref = F.cross_entropy(X @ W[:-1] + W[-1], y)
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    svm_loss, _ = linear_loss_and_grad(W, X, y, loss="svm")
    assert float(svm_loss) == pytest.approx((1e4 + 1 + 0.0) / 2, rel=1e-6)


def test_softmax_gradient_has_no_subnormal_numbers():
    """A shift of -100 makes exp subnormal in float32 (CPU arithmetic on those is ~50× slower);
    it is clamped for the gradient, while the loss keeps the true score of the label."""
    X = torch.ones(1, 1)
    W = torch.tensor([[0.0, 0.0], [0.0, -100.0]])
    tiny = torch.finfo(torch.float32).tiny
    loss, grad = linear_loss_and_grad(W, X, torch.tensor([0]), loss="softmax")
    assert float(loss) < 1e-6 and grad[0, 1] > 0  # a tiny positive gradient, not a subnormal
    assert not ((grad != 0) & (grad.abs() < tiny)).any()
    loss, grad = linear_loss_and_grad(W, X, torch.tensor([1]), loss="softmax")
    assert float(loss) == pytest.approx(100.0, rel=1e-6)
    assert not ((grad != 0) & (grad.abs() < tiny)).any()


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_training_loop_is_the_documented_update(momentum):
    """Full-batch steps replayed by hand: W ← W + v, v ← μ·v - lr_t·∇L(W), cosine lr_t, W₀ = 0."""
    W, X, y = problem(n=30, d=4, k=3, seed=5, dtype=torch.float32)
    clf = LinearClassifier(
        loss="softmax", reg=0.01, learning_rate=0.05, batch_size=100, max_iter=3, momentum=momentum
    ).fit(X.numpy(), y.numpy())
    Wr = torch.zeros(5, 3)
    v = torch.zeros_like(Wr)
    for t in range(3):
        _, g = clf.loss_and_grad(Wr, X, y)
        lr = 0.05 * 0.5 * (1 + math.cos(math.pi * t / 3))
        v = momentum * v - lr * g
        Wr = Wr + v
    np.testing.assert_allclose(clf.coef_, Wr[:-1].T.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(clf.intercept_, Wr[-1].numpy(), rtol=1e-5, atol=1e-7)
    assert clf.n_iter_ == 3 and clf.loss_history_.shape == (3,)


def test_exponential_schedule_and_auto_learning_rate():
    X = np.random.default_rng(0).normal(size=(50, 3)) * 10
    y = np.arange(50) % 2
    clf = LinearClassifier(
        loss="svm", reg=0.5, momentum=0.0, learning_rate="auto", max_iter=4, batch_size=25
    ).fit(X, y)
    sq_norm = (X**2).sum(1).mean() + 1  # mean ‖[x 1]‖²
    assert clf.learning_rate_ == pytest.approx(1 / (sq_norm + 2 * 0.5), rel=1e-5)
    soft = LinearClassifier(loss="softmax", reg=0.5, penalty="elasticnet", l1_ratio=0.2)
    soft.set_params(max_iter=1).fit(X, y)
    assert soft.learning_rate_ == pytest.approx(1 / (sq_norm / 2 + 2 * 0.5 * 0.8), rel=1e-5)
    exp = LinearClassifier(schedule="exponential", lr_decay=0.5, momentum=0.0, max_iter=4)
    const = LinearClassifier(schedule="constant", momentum=0.0, max_iter=4)
    # two steps per epoch: exponential's steps are lr, lr, lr/2, lr/2; from the same start the
    # first epoch agrees with the constant schedule and the second does not
    for n_steps in (2, 4):
        a = exp.set_params(max_iter=n_steps, batch_size=25).fit(X, y).coef_
        b = const.set_params(max_iter=n_steps, batch_size=25).fit(X, y).coef_
        assert np.allclose(a, b) == (n_steps == 2)


def test_early_stopping_with_tol():
    X, y = separable(seed=1)
    full = LinearClassifier(max_iter=400, tol=None).fit(X, y)
    early = LinearClassifier(max_iter=400, tol=1e-3, n_iter_no_change=3).fit(X, y)
    assert full.n_iter_ == 400
    assert early.n_iter_ < 400 and len(early.loss_history_) == early.n_iter_


def separable(n=200, d=5, k=4, seed=0):
    """k well-separated Gaussian blobs: a linear classifier can get every point right."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 6
    y = np.arange(n) % k
    X = centres[y] + rng.normal(size=(n, d))
    return X.astype(np.float32), y


@pytest.mark.parametrize("loss", LOSSES)
def test_separable_problem_reaches_full_training_accuracy(loss):
    X, y = separable()
    labels = np.array(["ant", "bee", "cat", "dog"])[y]  # string labels come back as given
    clf = LinearClassifier(loss=loss, max_iter=500).fit(X, labels)
    assert clf.score(X, labels) == 1.0
    assert list(clf.classes_) == ["ant", "bee", "cat", "dog"]
    assert clf.loss_history_[-20:].mean() < clf.loss_history_[:5].mean() / 10
    scores = clf.decision_function(X)
    np.testing.assert_allclose(scores, X @ clf.coef_.T + clf.intercept_, rtol=1e-5, atol=1e-4)
    assert clf.coef_.shape == (4, 5) and clf.intercept_.shape == (4,)


def test_predict_proba_only_for_softmax():
    X, y = separable(seed=2)
    svm = LinearClassifier(loss="svm", max_iter=100).fit(X, y)
    assert not hasattr(svm, "predict_proba")
    with pytest.raises(AttributeError):
        svm.predict_proba(X)
    soft = LinearClassifier(loss="softmax", max_iter=100).fit(X, y)
    proba = soft.predict_proba(X)
    ref = torch.softmax(torch.from_numpy(soft.decision_function(X)).double(), 1).numpy()
    np.testing.assert_allclose(proba, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.exp(soft.predict_log_proba(X)), proba, rtol=1e-5, atol=1e-6)
    assert (soft.classes_[proba.argmax(1)] == soft.predict(X)).all()


def test_binary_problem_follows_the_sklearn_contract():
    X, y = separable(k=2, seed=3)
    clf = LinearClassifier(loss="softmax", max_iter=200).fit(X, y)
    scores = clf.decision_function(X)
    assert scores.shape == (len(X),) and clf.coef_.shape == (2, 5)
    assert ((scores > 0).astype(int) == clf.predict(X)).all()
    np.testing.assert_allclose(
        scores, X @ (clf.coef_[1] - clf.coef_[0]) + clf.intercept_[1] - clf.intercept_[0], atol=1e-4
    )


def test_deterministic_for_a_random_state():
    X, y = separable(n=300, seed=4)
    kw = {"loss": "svm", "max_iter": 60, "batch_size": 32}
    a = LinearClassifier(random_state=3, **kw).fit(X, y)
    b = LinearClassifier(random_state=3, **kw).fit(X, y)
    c = LinearClassifier(random_state=4, **kw).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.loss_history_, b.loss_history_)
    assert not np.array_equal(a.coef_, c.coef_)


def test_imageset_and_tensor_input():
    train = load_dataset("digits", "train")
    a = LinearClassifier(max_iter=50).fit(train)  # labels from the ImageSet
    X = train.images.flatten(1).float() / 255
    b = LinearClassifier(max_iter=50).fit(X, train.labels)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-6)
    assert a.score(train) == b.score(X, train.labels.numpy())


@pytest.fixture(scope="module")
def digits():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")

    def features(ds):
        return ds.images.flatten(1).numpy().astype(np.float32) / 255, ds.labels.numpy()

    return (*features(train), *features(test))


@pytest.mark.parametrize(
    ("loss", "reference"),
    [("svm", LinearSVC(C=1.0)), ("softmax", LogisticRegression(C=1.0, max_iter=2000))],
)
def test_digits_accuracy_is_close_to_sklearn(digits, loss, reference):
    X_train, y_train, X_test, y_test = digits
    ours = LinearClassifier(loss=loss).fit(X_train, y_train).score(X_test, y_test)
    theirs = reference.fit(X_train, y_train).score(X_test, y_test)
    assert theirs > 0.93  # the reference itself is sane
    assert ours >= theirs - 0.03, (ours, theirs)


def test_random_search_returns_the_best_model(digits):
    X_train, y_train, X_val, y_val = digits
    table, best = random_search(
        X_train,
        y_train,
        X_val,
        y_val,
        lr_range=(1e-4, 1.0),
        reg_range=(1e-5, 1e-1),
        trials=5,
        loss="softmax",
        max_iter=100,
    )
    assert isinstance(table, SearchTable) and len(table) == 5
    vals = [r["val_acc"] for r in table.rows]
    assert table.best["val_acc"] == max(vals)
    assert best.score(X_val, y_val) == pytest.approx(max(vals))
    assert best.learning_rate == table.best["lr"] and best.reg == table.best["reg"]
    assert best.loss == "softmax" and best.max_iter == 100
    assert all(1e-4 <= r["lr"] <= 1.0 and 1e-5 <= r["reg"] <= 1e-1 for r in table.rows)
    assert len({r["lr"] for r in table.rows}) == 5  # sampled, not a fixed grid
    md = table.to_markdown()
    assert md.count("\n") == 6 and "val acc" in md
    again, _ = random_search(
        X_train, y_train, X_val, y_val, (1e-4, 1.0), (1e-5, 1e-1), 5, "softmax", max_iter=100
    )
    assert again.rows[0]["lr"] == table.rows[0]["lr"]  # seeded
    with pytest.raises(InputError, match="lr_range"):
        random_search(X_train, y_train, X_val, y_val, (0.0, 1.0), (1e-3, 1e-2), 2)
    with pytest.raises(InputError, match="searched"):
        random_search(X_train, y_train, X_val, y_val, (1e-3, 1.0), (1e-3, 1e-2), 2, reg=1.0)


def test_plot_templates(digits):
    from matplotlib.figure import Figure

    from striate.classic.linear import _template_images

    X_train, y_train, _, _ = digits
    clf = LinearClassifier(loss="softmax", max_iter=200).fit(X_train, y_train)
    fig = plot_templates(clf, (1, 8, 8), classes=[f"digit {c}" for c in clf.classes_])
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    assert len(axes) == 10 and axes[3].get_title() == "digit 3"
    images = _template_images(clf.coef_, (1, 8, 8))
    w = clf.coef_[3]
    expected = np.round(255 * (w - w.min()) / (w.max() - w.min())).reshape(8, 8)
    np.testing.assert_array_equal(images[3], expected.astype(np.uint8))
    assert images[3].min() == 0 and images[3].max() == 255
    np.testing.assert_array_equal(axes[3].get_images()[0].get_array(), images[3])
    rgb = _template_images(np.arange(2 * 12, dtype=float).reshape(2, 12), (3, 2, 2))
    assert rgb[0].shape == (2, 2, 3) and rgb[0][0, 0, 0] == 0 and rgb[0][1, 1, 2] == 255
    with pytest.raises(InputError, match="image_shape"):
        plot_templates(clf, (3, 8, 8))
    with pytest.raises(InputError, match="not fitted"):
        plot_templates(LinearClassifier(), (1, 8, 8))


# --------------------------------------------------------------------------- contract and errors

# max_iter=300: the checks test the API contract on small toy sets, not the training length.
CHECKED = [
    LinearClassifier(loss="svm", max_iter=300, device="cpu"),
    LinearClassifier(loss="softmax", max_iter=300, device="cpu"),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_pickle_round_trip():
    X, y = separable(seed=5)
    clf = LinearClassifier(max_iter=50).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"loss": "hinge"}, "loss must be 'svm' or 'softmax'"),
        ({"penalty": "l3"}, "penalty"),
        ({"reg": -1.0}, "reg"),
        ({"reg": float("nan")}, "reg"),
        ({"l1_ratio": 1.5}, "l1_ratio"),
        ({"margin": 0.0}, "margin"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"max_iter": 0}, "max_iter"),
        ({"schedule": "step"}, "schedule"),
        ({"lr_decay": 0.0}, "lr_decay"),
        ({"momentum": 1.0}, "momentum"),
        ({"tol": -1.0}, "tol"),
        ({"n_iter_no_change": 0}, "n_iter_no_change"),
        ({"random_state": -1}, "random_state"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters_raise_input_error_in_fit(params, match):
    X, y = separable(n=20, seed=6)
    clf = LinearClassifier(**params)  # __init__ only stores them
    with pytest.raises(InputError, match=match):
        clf.fit(X, y)


def test_bad_input_raises_input_error():
    X, y = separable(n=40, seed=7)
    clf = LinearClassifier(max_iter=20).fit(X, y)
    with pytest.raises(InputError, match="features"):
        clf.predict(X[:, :3])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        LinearClassifier().fit(bad, y)
    bad[3, 1] = np.inf
    with pytest.raises(InputError, match="infinity"):
        clf.predict(bad)
    with pytest.raises(InputError, match="one class"):
        LinearClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(InputError, match="0 sample"):
        LinearClassifier().fit(X[:0], y[:0])
    with pytest.raises(InputError, match="requires y"):
        LinearClassifier().fit(X)
    with pytest.raises(InputError, match="Reshape your data"):
        clf.predict(X[0])
    with pytest.raises(InputError, match="inconsistent numbers of samples"):
        LinearClassifier().fit(X, y[:-1])
    err = pytest.raises(StriateError, LinearClassifier(learning_rate=1e30, max_iter=5).fit, X, y)
    assert "diverged" in str(err.value) and isinstance(err.value, InputError)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("loss", LOSSES)
def test_cuda_matches_cpu(loss, digits):
    X_train, y_train, X_test, y_test = digits
    kw = {"loss": loss, "max_iter": 300, "random_state": 1}
    cpu = LinearClassifier(device="cpu", **kw).fit(X_train, y_train)
    gpu = LinearClassifier(device="cuda", **kw).fit(X_train, y_train)
    # the same minibatches (drawn on the CPU); only float rounding (reduction order) differs
    assert gpu.learning_rate_ == pytest.approx(cpu.learning_rate_, rel=1e-4)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-3, atol=1e-4)
    agree = (gpu.predict(X_test) == cpu.predict(X_test)).mean()
    assert agree > 0.99
    # a CUDA tensor as input stays on the device and gives the same predictions
    Xt = torch.from_numpy(X_test).cuda()
    np.testing.assert_array_equal(gpu.predict(Xt), gpu.predict(X_test))
