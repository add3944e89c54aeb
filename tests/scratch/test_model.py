"""Model: parameter keys, a backward pass that matches finite differences, batched prediction,
and a small MLP that learns a separable problem."""

import numpy as np
import pytest

from striate.scratch.layers import Linear, ReLU, Tanh
from striate.scratch.losses import softmax_cross_entropy
from striate.scratch.model import Model
from striate.scratch.numeric_gradient import numeric_gradient, relative_error
from striate.scratch.optim import SGD


def mlp(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return Model([Linear(2, 16, rng, dtype=dtype), Tanh(), Linear(16, 3, rng, dtype=dtype)])


def blobs(n=300, seed=0):
    """Three well-separated Gaussian clusters in the plane."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 3.0], [-3.0, -2.0], [3.0, -2.0]])
    return (centres[y] + rng.standard_normal((n, 2))).astype(np.float32), y


def test_parameter_keys_and_dicts():
    model = Model([Linear(4, 5, 0), ReLU(), Linear(5, 2, 1)])
    assert [k for k, _, _ in model.parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    assert model.params()["2.W"] is model.layers[2].params["W"]
    assert all(not g.any() for g in model.grads().values())  # before any backward: zeros


def test_loss_gradients_match_finite_differences():
    model = mlp(dtype=np.float64)
    x, y = blobs(8)
    x = x.astype(np.float64)
    loss = model.loss(x, y)
    assert loss == pytest.approx(softmax_cross_entropy(model.forward(x), y)[0])
    for key, param, grad in model.parameters():
        numeric = numeric_gradient(lambda _: softmax_cross_entropy(model.forward(x), y)[0], param)
        assert relative_error(grad, numeric) < 1e-7, key


def test_backward_returns_the_input_gradient():
    model = mlp(dtype=np.float64)
    x, y = blobs(4)
    x = x.astype(np.float64)
    model.forward(x)
    _, dlogits = softmax_cross_entropy(model.forward(x), y)
    dx = model.backward(dlogits)
    numeric = numeric_gradient(lambda v: softmax_cross_entropy(model.forward(v), y)[0], x)
    assert relative_error(dx, numeric) < 1e-7


def test_predict_in_batches_equals_at_once():
    model = mlp()
    x, _ = blobs(50)
    whole = model.forward(x, train=False).argmax(axis=1)
    np.testing.assert_array_equal(model.predict(x, batch_size=7), whole)
    assert model.predict(x[:0]).shape == (0,)


def test_mlp_learns_separable_blobs():
    model, opt = mlp(), SGD(0.1)
    x, y = blobs()
    assert model.accuracy(x, y) < 0.9
    for _ in range(100):
        model.loss(x, y)
        opt.step(model.params(), model.grads())
    x_test, y_test = blobs(300, seed=1)
    assert model.accuracy(x_test, y_test) > 0.95
