"""The scratch layers and losses against centred finite differences and torch autograd (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.errors import ConfigError, InputError
from striate.scratch import (
    BatchNorm,
    Dropout,
    Flatten,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
    accuracy,
    numeric_gradient,
    relative_error,
    softmax_cross_entropy,
)

F64 = np.float64


def t(a: np.ndarray, grad: bool = True) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def assert_grads_match_finite_differences(layer, x, train=True, tol=1e-7, make=None):
    """dL/dx and dL/dparams from `backward` against centred differences of L = Σ y ⊙ g.

    `make`, when given, builds a fresh layer per evaluation (for layers that draw at random)."""
    g = np.random.default_rng(1).standard_normal(layer.forward(x, train).shape)

    def loss(_):
        return np.sum((make() if make else layer).forward(x, train) * g)

    if make:
        layer = make()
    layer.forward(x, train)
    dx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert relative_error(dx, numeric_gradient(loss, x)) < tol
    assert grads.keys() == layer.params.keys()
    for name, p in layer.params.items():
        assert grads[name].shape == p.shape
        assert relative_error(grads[name], numeric_gradient(loss, p)) < tol, name


def torch_check(layer, x, torch_fn, train=True, params=()):
    """Forward and backward of `layer` against torch autograd of `torch_fn(x, *params)`."""
    y = layer.forward(x, train)
    g = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(g)
    xt = t(x)
    pt = [t(layer.params[name]) for name in params]
    yt = torch_fn(xt, *pt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in zip(params, pt, strict=True):
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.fixture
def x():
    # Away from 0 by at least 0.1, so that ReLU's kink is never within h of an input.
    rng = np.random.default_rng(0)
    v = rng.uniform(0.1, 2.0, (4, 5)) * rng.choice([-1.0, 1.0], (4, 5))
    return v


@pytest.mark.parametrize("init", ["he", "torch"])
def test_linear_gradients(x, init):
    layer = Linear(5, 3, rng=0, init=init, dtype=F64)
    assert layer.params["W"].shape == (5, 3) and layer.params["b"].shape == (3,)
    assert_grads_match_finite_differences(layer, x)


def test_linear_against_torch(x):
    layer = Linear(5, 3, rng=0, init="torch", dtype=F64)
    torch_check(layer, x, lambda x, w, b: F.linear(x, w.T, b), params=("W", "b"))


def test_linear_initialisation_scales():
    he = Linear(400, 300, rng=0, dtype=F64).params
    assert he["W"].std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert not he["b"].any()
    uniform = Linear(400, 300, rng=0, init="torch", dtype=F64).params
    bound = 1 / np.sqrt(400)
    assert np.abs(uniform["W"]).max() <= bound and np.abs(uniform["W"]).max() > 0.99 * bound
    assert Linear(3, 2).params["W"].dtype == np.float32


@pytest.mark.parametrize("make", [ReLU, Sigmoid, Tanh, Softmax, Flatten])
def test_parameterless_layer_gradients(x, make):
    assert_grads_match_finite_differences(make(), x)


@pytest.mark.parametrize(
    "make, fn",
    [
        (ReLU, torch.relu),
        (Sigmoid, torch.sigmoid),
        (Tanh, torch.tanh),
        (Softmax, lambda x: F.softmax(x, dim=-1)),
        (lambda: Softmax(axis=0), lambda x: F.softmax(x, dim=0)),
        (Flatten, lambda x: x.flatten(1)),
    ],
)
def test_parameterless_layer_against_torch(x, make, fn):
    torch_check(make(), x, fn)


def test_flatten_of_images_and_softmax_on_an_inner_axis():
    x = np.random.default_rng(3).standard_normal((2, 3, 2, 2))
    assert Flatten().forward(x).shape == (2, 12)
    assert_grads_match_finite_differences(Flatten(), x)
    assert_grads_match_finite_differences(Softmax(axis=1), x)
    torch_check(Softmax(axis=1), x, lambda x: F.softmax(x, dim=1))


def test_softmax_and_sigmoid_are_stable_for_huge_inputs():
    logits = np.array([[1000.0, 1000.0, 999.0], [-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = Softmax().forward(logits)
        sig = Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
        loss, grad = softmax_cross_entropy(logits, np.array([2, 0]))
    expected = F.softmax(torch.tensor(logits), dim=1).numpy()
    np.testing.assert_allclose(s, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sig, [0.0, 0.5, 1.0])
    ce = F.cross_entropy(torch.tensor(logits), torch.tensor([2, 0])).item()
    assert np.isfinite(loss) and loss == pytest.approx(ce, rel=1e-12)
    assert np.isfinite(grad).all()


def test_dropout_gradients_with_a_fixed_mask(x):
    assert_grads_match_finite_differences(Dropout(0.3, rng=7), x, make=lambda: Dropout(0.3, rng=7))


def test_dropout_against_torch_with_the_same_mask(x):
    layer = Dropout(0.4, rng=5)
    y = layer.forward(x)
    keep = layer.mask != 0
    np.testing.assert_allclose(layer.mask[keep], 1 / 0.6)
    # torch's dropout scales the same way (inverted dropout): recover its mask from its output.
    xt = t(np.abs(x) + 1, grad=False)
    torch.manual_seed(0)
    torch_keep = F.dropout(xt, 0.4, training=True) != 0
    np.testing.assert_allclose(F.dropout(xt, 0.4, training=False).numpy(), xt.numpy())
    torch.manual_seed(0)
    np.testing.assert_allclose(
        F.dropout(xt, 0.4, training=True).numpy(), (xt * torch_keep / 0.6).numpy(), rtol=1e-15
    )
    # ... and with our mask, torch autograd of x · keep / (1 - p) is our forward and backward.
    torch_check(layer, x, lambda x: x * torch.tensor(layer.mask != 0) / 0.6)
    assert ((y == 0) == ~keep).all()


def test_dropout_rate_and_evaluation_mode():
    x = np.ones((200, 100))
    layer = Dropout(0.25, rng=0)
    y = layer.forward(x)
    assert (y == 0).mean() == pytest.approx(0.25, abs=0.01)
    assert y.mean() == pytest.approx(1.0, abs=0.02)
    np.testing.assert_array_equal(layer.forward(x, train=False), x)
    np.testing.assert_array_equal(layer.backward(x), x)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3)])
@pytest.mark.parametrize("train", [True, False])
def test_batchnorm_gradients(shape, train):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape) * 2 + 1
    layer = BatchNorm(4, dtype=F64)
    layer.params["gamma"][:] = rng.uniform(0.5, 1.5, 4)
    layer.params["beta"][:] = rng.standard_normal(4)
    layer.buffers["running_mean"][:] = rng.standard_normal(4)
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2, 4)
    assert_grads_match_finite_differences(layer, x, train=train)


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 2, 3)])
def test_batchnorm_against_torch_in_both_modes(shape):
    rng = np.random.default_rng(5)
    ours = BatchNorm(4, eps=1e-3, momentum=0.2, dtype=F64)
    ours.params["gamma"][:] = rng.uniform(0.5, 1.5, 4)
    ours.params["beta"][:] = rng.standard_normal(4)
    bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        4, eps=1e-3, momentum=0.2, dtype=torch.float64
    )
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(ours.params["gamma"]))
        bn.bias.copy_(torch.tensor(ours.params["beta"]))
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        g = rng.standard_normal(shape)
        y = ours.forward(x, train=True)
        dx = ours.backward(g)
        bn.train()
        bn.zero_grad()
        xt = t(x)
        yt = bn(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours.grads["gamma"], bn.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.grads["beta"], bn.bias.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.buffers["running_mean"], bn.running_mean.numpy())
        np.testing.assert_allclose(ours.buffers["running_var"], bn.running_var.numpy())
    # Evaluation uses the running statistics, and the gradient treats them as constants.
    x = rng.standard_normal(shape)
    bn.eval()
    torch_check(
        ours,
        x,
        lambda x, w, b: F.batch_norm(
            x, bn.running_mean, bn.running_var, w, b, training=False, eps=1e-3
        ),
        train=False,
        params=("gamma", "beta"),
    )
    np.testing.assert_allclose(ours.forward(x, train=False), bn(t(x)).detach().numpy())


def test_batchnorm_keeps_float32_and_needs_two_values_to_train():
    layer = BatchNorm(3)
    y = layer.forward(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    assert y.dtype == np.float32 and layer.backward(np.ones_like(y)).dtype == np.float32
    with pytest.raises(InputError, match="more than one value"):
        layer.forward(np.ones((1, 3), np.float32))
    assert layer.forward(np.ones((1, 3), np.float32), train=False).shape == (1, 3)


def test_layers_keep_the_dtype():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for layer in [Linear(3, 2), ReLU(), Sigmoid(), Tanh(), Softmax(), Dropout(0.5, rng=0)]:
        y = layer.forward(x)
        assert y.dtype == np.float32, layer
        assert layer.backward(np.ones_like(y)).dtype == np.float32, layer
        assert all(g.dtype == np.float32 for g in layer.grads.values()), layer


def test_softmax_cross_entropy_against_torch():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((5, 4)) * 3
    labels = np.array([0, 3, 1, 1, 2])
    loss, grad = softmax_cross_entropy(logits, labels)
    lt = t(logits)
    ce = F.cross_entropy(lt, torch.tensor(labels))
    ce.backward()
    assert loss == pytest.approx(ce.item(), rel=1e-12)
    np.testing.assert_allclose(grad, lt.grad.numpy(), rtol=1e-10, atol=1e-15)

    def f(_):
        return softmax_cross_entropy(logits, labels)[0]

    assert relative_error(grad, numeric_gradient(f, logits)) < 1e-7


def test_accuracy():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "logits, labels, match",
    [
        (np.zeros((3, 4)), np.array([0, 1, 4]), r"in \[0, 3\]"),
        (np.zeros((3, 4)), np.array([0, -1, 2]), r"in \[0, 3\]"),
        (np.zeros((3, 4)), np.array([0, 1]), "3 integers"),
        (np.zeros((3, 4)), np.array([0.0, 1.0, 2.0]), "3 integers"),
        (np.zeros(4), np.array([0]), r"shape \(N, K\)"),
        (np.zeros((3, 4), dtype=int), np.array([0, 1, 2]), r"float array"),
    ],
)
def test_softmax_cross_entropy_rejects_bad_input(logits, labels, match):
    with pytest.raises(InputError, match=match):
        softmax_cross_entropy(logits, labels)


def test_bad_arguments_and_inputs_raise_one_clear_error():
    with pytest.raises(ConfigError, match="Linear: in_features must be a positive integer"):
        Linear(0, 3)
    with pytest.raises(ConfigError, match="init must be one of he, torch"):
        Linear(2, 3, init="xavier")
    with pytest.raises(ConfigError, match="dtype must be a floating-point dtype"):
        Linear(2, 3, dtype=np.int32)
    with pytest.raises(ConfigError, match="rng must be"):
        Linear(2, 3, rng="seed")
    with pytest.raises(ConfigError, match=r"Dropout: p must be a probability in \[0, 1\)"):
        Dropout(1.0)
    with pytest.raises(ConfigError, match="momentum"):
        BatchNorm(3, momentum=1.5)
    layer = Linear(2, 3, dtype=F64)
    with pytest.raises(InputError, match="backward called before forward"):
        layer.backward(np.zeros((1, 3)))
    with pytest.raises(InputError, match="must have 2 features"):
        layer.forward(np.zeros((4, 5)))
    with pytest.raises(InputError, match="floating-point"):
        layer.forward(np.zeros((4, 2), dtype=int))
    layer.forward(np.zeros((4, 2)))
    with pytest.raises(InputError, match=r"output's shape \(4, 3\)"):
        layer.backward(np.zeros((4, 2)))
    with pytest.raises(InputError, match="BatchNorm: input must have 3 features"):
        BatchNorm(3).forward(np.zeros((4, 2)))


def test_numeric_gradient_and_relative_error():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(numeric_gradient(lambda v: np.sum(v**3), x), 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # restored
    assert relative_error(np.array([1.0, 0.0]), np.array([1.0, 1e-3])) == pytest.approx(1e-3 / 2)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(InputError, match="shapes differ"):
        relative_error(np.zeros(3), np.zeros(2))
    with pytest.raises(InputError, match="scalar"):
        numeric_gradient(lambda v: v, x)
    with pytest.raises(InputError, match="contiguous"):
        numeric_gradient(lambda v: v.sum(), x.T)
    with pytest.raises(ConfigError, match="h must be a positive number"):
        numeric_gradient(lambda v: v.sum(), x, h=0)
