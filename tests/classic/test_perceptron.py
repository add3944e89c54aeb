"""The perceptron against scikit-learn's Perceptron on separable data, its update rule by hand,
the notes' logic gates, and XOR: not separable by one perceptron, computed by two layers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Perceptron as SkPerceptron
from sklearn.utils.estimator_checks import check_estimator

from striate.classic.perceptron import Perceptron, gate, plot_decision_boundary, xor
from striate.errors import InputError

TABLE = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])


@pytest.mark.parametrize("classes", [2, 3])
def test_separates_what_sklearn_separates(classes):
    centers = [[-4, -4], [4, 4], [4, -4]][:classes]
    X, y = make_blobs(300, centers=centers, cluster_std=0.8, random_state=0)
    ours = Perceptron().fit(X[:200], y[:200])
    ref = SkPerceptron(random_state=0).fit(X[:200], y[:200])
    assert ours.score(X[:200], y[:200]) == 1.0 == ref.score(X[:200], y[:200])
    assert ours.n_iter_ < ours.max_iter and ours.mistakes_[-1] == 0
    # well-separated held-out points: both put every one on the same side
    np.testing.assert_array_equal(ours.predict(X[200:]), ref.predict(X[200:]))
    assert ours.coef_.shape == ref.coef_.shape and ours.intercept_.shape == ref.intercept_.shape


def test_one_epoch_is_the_perceptron_trick_on_every_mistake():
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [2.0, -1.0]])
    y = np.array([1, 0, 0])
    model = Perceptron(eta0=0.5, max_iter=1).fit(X, y)  # from w = 0 every point is a mistake
    t = 2 * y - 1
    np.testing.assert_allclose(model.coef_[0], 0.5 * (t[:, None] * X).sum(0))
    np.testing.assert_allclose(model.intercept_[0], 0.5 * t.sum())


def test_logic_gates_and_xor():
    np.testing.assert_array_equal(gate("and", TABLE), [0, 0, 0, 1])
    np.testing.assert_array_equal(gate("or", TABLE), [0, 1, 1, 1])
    np.testing.assert_array_equal(gate("nand", TABLE), [1, 1, 1, 0])
    np.testing.assert_array_equal(gate("not", [[0], [1]]), [1, 0])
    np.testing.assert_array_equal(xor(TABLE), [0, 1, 1, 0])
    # the gates' truth tables are learnable; XOR's is not, by ours or scikit-learn's
    for name in ("and", "or", "nand"):
        assert Perceptron().fit(TABLE, gate(name, TABLE)).score(TABLE, gate(name, TABLE)) == 1.0
    with pytest.warns(ConvergenceWarning, match="not be linearly"):
        ours = Perceptron(max_iter=200).fit(TABLE, xor(TABLE))
    assert ours.score(TABLE, xor(TABLE)) < 1.0
    assert SkPerceptron(max_iter=200, tol=None).fit(TABLE, xor(TABLE)).score(TABLE, xor(TABLE)) < 1


def test_check_estimator():
    check_estimator(Perceptron(device="cpu"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: Perceptron(eta0=0).fit(TABLE, [0, 1, 1, 0]), "eta0 must be a number > 0"),
        (lambda: Perceptron(max_iter=0).fit(TABLE, [0, 1, 1, 0]), "max_iter must be"),
        (lambda: Perceptron().fit(TABLE, [1, 1, 1, 1]), "at least 2 classes"),
        (lambda: gate("xor", TABLE), "and, or, nand, not"),
        (lambda: gate("not", TABLE), "takes 1 input"),
        (
            lambda: plot_decision_boundary(
                Perceptron().fit(TABLE, [0, 1, 1, 1]), np.zeros((4, 3)), [0, 1, 1, 1]
            ),
            "N×2",
        ),  # fmt: skip
    ],
)
def test_bad_input(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_plot_decision_boundary():
    X, y = make_blobs(60, centers=[[-3, 0], [3, 0]], random_state=1)
    assert isinstance(plot_decision_boundary(Perceptron().fit(X, y), X, y), Figure)
