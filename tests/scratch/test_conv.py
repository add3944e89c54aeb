"""im2col, convolution and pooling against a direct loop, finite differences and torch (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.errors import ConfigError, InputError
from striate.scratch import (
    AvgPool2d,
    Conv2d,
    MaxPool2d,
    col2im,
    conv_output_size,
    im2col,
    numeric_gradient,
    relative_error,
)

# (kernel, stride, padding) on a 7x6 input: square and non-square kernels, strides that leave a
# partial window behind, padding.
CONV_CASES = [(3, 1, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (2, 1), (1, 0)), (1, 1, 0), (5, 3, 2)]
POOL_CASES = [(2, None, 0), (2, 1, 0), (3, 2, 1), ((2, 3), (1, 2), (1, 1)), (3, 3, 0)]


def distinct_input(shape, seed=0):
    """Values a random permutation of a spaced grid: no ties in a max, none within h of each
    other, so MaxPool's arg-max does not move under a finite-difference step."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.01


def check_against_finite_differences(layer, x, tol=1e-7):
    g = np.random.default_rng(1).standard_normal(layer.forward(x).shape)

    def loss(_):
        return np.sum(layer.forward(x) * g)

    layer.forward(x)
    dx = layer.backward(g)
    grads = {k: v.copy() for k, v in layer.grads.items()}
    assert relative_error(dx, numeric_gradient(loss, x)) < tol
    assert grads.keys() == layer.params.keys()
    for name, p in layer.params.items():
        assert relative_error(grads[name], numeric_gradient(loss, p)) < tol, name


def check_against_torch(layer, x, torch_fn, params=()):
    y = layer.forward(x)
    g = np.random.default_rng(2).standard_normal(y.shape)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    pt = [torch.tensor(layer.params[name], requires_grad=True) for name in params]
    yt = torch_fn(xt, *pt)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in zip(params, pt, strict=True):
        np.testing.assert_allclose(layer.grads[name], p.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_im2col_matches_a_direct_loop():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    k, s, p = (3, 2), (2, 1), 1
    cols = im2col(x, k, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = conv_output_size(5, 4, k, s, p)
    rows = [
        xp[n, :, i * 2 : i * 2 + 3, j : j + 2].reshape(-1)
        for n in range(2)
        for i in range(oh)
        for j in range(ow)
    ]
    np.testing.assert_array_equal(cols, np.stack(rows))


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_col2im_is_the_adjoint_of_im2col(kernel, stride, padding):
    # <im2col(x), c> = <x, col2im(c)> for all x, c: col2im sums overlaps and drops the padding.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    cols = im2col(x, kernel, stride, padding)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, kernel, stride, padding)
    assert back.shape == x.shape
    assert np.sum(cols * c) == pytest.approx(np.sum(x * back), rel=1e-12)


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES)
def test_conv2d_against_torch(kernel, stride, padding):
    layer = Conv2d(3, 4, kernel, stride, padding, rng=0, init="torch", dtype=np.float64)
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    check_against_torch(
        layer,
        x,
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
        params=("W", "b"),
    )


@pytest.mark.parametrize("kernel, stride, padding", CONV_CASES[:4])
def test_conv2d_gradients(kernel, stride, padding):
    layer = Conv2d(2, 3, kernel, stride, padding, rng=0, dtype=np.float64)
    assert layer.params["W"].shape[:2] == (3, 2) and layer.params["b"].shape == (3,)
    check_against_finite_differences(layer, np.random.default_rng(5).standard_normal((2, 2, 5, 4)))


@pytest.mark.parametrize("kernel, stride, padding", POOL_CASES)
def test_max_pool_against_torch(kernel, stride, padding):
    x = distinct_input((2, 3, 7, 6)) - 1  # negative values too, so -inf padding matters
    check_against_torch(
        MaxPool2d(kernel, stride, padding),
        x,
        lambda x: F.max_pool2d(x, kernel, stride, padding),
    )


@pytest.mark.parametrize("kernel, stride, padding", POOL_CASES)
def test_avg_pool_against_torch(kernel, stride, padding):
    x = np.random.default_rng(6).standard_normal((2, 3, 7, 6))
    check_against_torch(
        AvgPool2d(kernel, stride, padding),
        x,
        lambda x: F.avg_pool2d(x, kernel, stride, padding),
    )


@pytest.mark.parametrize("kernel, stride, padding", POOL_CASES[:4])
def test_pooling_gradients(kernel, stride, padding):
    x = distinct_input((2, 2, 5, 4), seed=7)
    check_against_finite_differences(MaxPool2d(kernel, stride, padding), x)
    check_against_finite_differences(AvgPool2d(kernel, stride, padding), x)


def test_overlapping_max_pool_routes_to_each_windows_maximum():
    # One maximum shared by all four 2x2 windows (stride 1) receives all four gradients.
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    pool = MaxPool2d(2, stride=1)
    np.testing.assert_array_equal(pool.forward(x), np.ones((1, 1, 2, 2)))
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    assert dx[0, 0, 1, 1] == 4 and dx.sum() == 4


def test_conv_and_pool_keep_float32():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    for layer in [Conv2d(3, 2, 3, padding=1), MaxPool2d(2), AvgPool2d(2)]:
        y = layer.forward(x)
        assert y.dtype == np.float32, layer
        assert layer.backward(np.ones_like(y)).dtype == np.float32, layer


def test_bad_arguments_and_inputs_raise_one_clear_error():
    with pytest.raises(ConfigError, match="Conv2d: kernel_size must be a positive integer"):
        Conv2d(3, 4, 0)
    with pytest.raises(ConfigError, match="Conv2d: padding must be a non-negative integer"):
        Conv2d(3, 4, 3, padding=-1)
    with pytest.raises(ConfigError, match="pair of integers"):
        Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(ConfigError, match="MaxPool2d: padding must be at most half"):
        MaxPool2d(2, padding=2)
    with pytest.raises(InputError, match="Conv2d: input must have 3 channels"):
        Conv2d(3, 4, 3).forward(np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(InputError, match=r"Conv2d: input must have shape \(N, C, H, W\)"):
        Conv2d(3, 4, 3).forward(np.zeros((3, 5, 5), np.float32))
    with pytest.raises(InputError, match="kernel does not fit"):
        Conv2d(3, 4, 5).forward(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(InputError, match="col2im: cols must have shape"):
        col2im(np.zeros((3, 3)), (1, 1, 4, 4), 2)
