"""Convolution and pooling in NumPy through im2col: every receptive field becomes a row of a
matrix, so a convolution is one matrix product and pooling a reduction along the rows.

Arrays are (N, C, H, W) and a convolution's weight is (out_channels, in_channels, kh, kw), as in
torch. The loops run over kernel offsets (kh·kw of them), never over pixels or samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from striate.checks import integer, one_of
from striate.errors import ConfigError, InputError
from striate.scratch.layers import INITS, Layer, as_generator, float_dtype, init_weights

__all__ = ["AvgPool2d", "Conv2d", "MaxPool2d", "col2im", "conv_output_size", "im2col"]

Pair = int | tuple[int, int]


def _pair(owner: str, name: str, v: Any, low: int) -> tuple[int, int]:
    """An int, or a pair of ints, each >= low, as a pair."""
    if isinstance(v, (tuple, list)) and len(v) == 2:
        return integer(owner, name, v[0], low=low), integer(owner, name, v[1], low=low)
    if isinstance(v, (tuple, list)):
        raise ConfigError(f"{owner}: {name} must be an integer or a pair of integers, got {v!r}")
    n = integer(owner, name, v, low=low)
    return n, n


def conv_output_size(
    height: int, width: int, kernel_size: Pair, stride: Pair = 1, padding: Pair = 0
) -> tuple[int, int]:
    """(OH, OW) = ((H + 2p - k) // s + 1, ...), torch's output size (the last partial window is
    dropped). An InputError when the kernel does not fit the padded input."""
    kh, kw = _pair("conv_output_size", "kernel_size", kernel_size, 1)
    sh, sw = _pair("conv_output_size", "stride", stride, 1)
    ph, pw = _pair("conv_output_size", "padding", padding, 0)
    if height + 2 * ph < kh or width + 2 * pw < kw:
        raise InputError(
            f"the {kh}x{kw} kernel does not fit the {height}x{width} input padded by ({ph}, {pw})"
        )
    return (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1


def im2col(
    x: np.ndarray,
    kernel_size: Pair,
    stride: Pair = 1,
    padding: Pair = 0,
    pad_value: float = 0.0,
) -> np.ndarray:
    """The receptive fields of x (N, C, H, W) as rows: shape (N·OH·OW, C·kh·kw), rows ordered by
    (n, oh, ow) and columns by (c, i, j), so `cols @ weight.reshape(out, -1).T` is a convolution."""
    kh, kw = _pair("im2col", "kernel_size", kernel_size, 1)
    sh, sw = _pair("im2col", "stride", stride, 1)
    ph, pw = _pair("im2col", "padding", padding, 0)
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = np.empty((n, c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
    return cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * oh * ow, c * kh * kw)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel_size: Pair,
    stride: Pair = 1,
    padding: Pair = 0,
) -> np.ndarray:
    """The adjoint of `im2col`: each row's values are added back to the pixels they were copied
    from (overlapping windows sum), and the padding is cut off. Used for the gradient of x.

    Within one kernel offset (i, j) the strided windows touch distinct pixels, so a sliced `+=`
    is exact and `np.add.at` is not needed; the loop over offsets sums the overlaps."""
    kh, kw = _pair("col2im", "kernel_size", kernel_size, 1)
    sh, sw = _pair("col2im", "stride", stride, 1)
    ph, pw = _pair("col2im", "padding", padding, 0)
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, w, (kh, kw), (sh, sw), (ph, pw))
    if cols.shape != (n * oh * ow, c * kh * kw):
        raise InputError(
            f"col2im: cols must have shape {(n * oh * ow, c * kh * kw)} for input shape "
            f"{tuple(x_shape)}, got {cols.shape}"
        )
    fields = cols.reshape(n, oh, ow, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += fields[:, :, i, j]
    return xp[:, :, ph : ph + h, pw : pw + w]


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in torch) of x (N, C, H, W) with W (out_channels,
    in_channels, kh, kw) and b (out_channels,). `init` as for `Linear`, with fan_in = C·kh·kw."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Pair,
        stride: Pair = 1,
        padding: Pair = 0,
        rng: np.random.Generator | int | None = None,
        *,
        init: str = "he",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = integer("Conv2d", "in_channels", in_channels, low=1)
        self.out_channels = integer("Conv2d", "out_channels", out_channels, low=1)
        self.kernel_size = _pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = _pair("Conv2d", "stride", stride, 1)
        self.padding = _pair("Conv2d", "padding", padding, 0)
        one_of("Conv2d", "init", init, INITS)
        kh, kw = self.kernel_size
        w, b = init_weights(
            as_generator("Conv2d", rng),
            (self.out_channels, self.in_channels, kh, kw),
            self.in_channels * kh * kw,
            init,
            float_dtype("Conv2d", dtype),
        )
        self.params = {"W": w, "b": b}

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x, (4,), "(N, C, H, W)")
        if x.shape[1] != self.in_channels:
            raise InputError(
                f"Conv2d: input must have {self.in_channels} channels, got shape {x.shape}"
            )
        n = x.shape[0]
        oh, ow = _output_size("Conv2d", x.shape, self.kernel_size, self.stride, self.padding)
        self._x_shape = x.shape
        self._cols = im2col(x, self.kernel_size, self.stride, self.padding)
        weight = self.params["W"].reshape(self.out_channels, -1)
        out = self._cols @ weight.T + self.params["b"]
        return self._remember(out.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        g = self._upstream(grad).transpose(0, 2, 3, 1).reshape(-1, self.out_channels)
        weight = self.params["W"].reshape(self.out_channels, -1)
        self.grads = {"W": (g.T @ self._cols).reshape(self.params["W"].shape), "b": g.sum(axis=0)}
        return col2im(g @ weight, self._x_shape, self.kernel_size, self.stride, self.padding)


class _Pool2d(Layer):
    """Pooling over each channel's kh×kw windows; `stride` defaults to the kernel, as in torch."""

    def __init__(self, kernel_size: Pair, stride: Pair | None = None, padding: Pair = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(name, "kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else _pair(name, "stride", stride, 1)
        self.padding = _pair(name, "padding", padding, 0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size, strict=True)):
            # torch's rule too: it keeps a real pixel in every window, so no max is -inf.
            raise ConfigError(
                f"{name}: padding must be at most half the kernel size, got padding "
                f"{self.padding} for kernel {self.kernel_size}"
            )

    def _fields(self, x: np.ndarray, pad_value: float) -> np.ndarray:
        """(N·C·OH·OW, kh·kw): one row per output value."""
        x = self._input(x, (4,), "(N, C, H, W)")
        n, c, h, w = x.shape
        oh, ow = _output_size(
            type(self).__name__, x.shape, self.kernel_size, self.stride, self.padding
        )
        self._x_shape = x.shape
        self._pooled_shape = (n, c, oh, ow)
        planes = x.reshape(n * c, 1, h, w)
        return im2col(planes, self.kernel_size, self.stride, self.padding, pad_value)

    def _to_input(self, field_grads: np.ndarray) -> np.ndarray:
        n, c, h, w = self._x_shape
        planes = col2im(field_grads, (n * c, 1, h, w), self.kernel_size, self.stride, self.padding)
        return planes.reshape(self._x_shape)


class MaxPool2d(_Pool2d):
    """The maximum of each window (padding counts as -inf); the gradient goes to the arg-max."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        fields = self._fields(x, -np.inf)
        self._argmax = fields.argmax(axis=1)
        self._fields_shape = fields.shape
        out = fields[np.arange(fields.shape[0]), self._argmax]
        return self._remember(out.reshape(self._pooled_shape))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = self._upstream(grad)
        field_grads = np.zeros(self._fields_shape, dtype=grad.dtype)
        field_grads[np.arange(self._fields_shape[0]), self._argmax] = grad.reshape(-1)
        return self._to_input(field_grads)


class AvgPool2d(_Pool2d):
    """The mean of each window, padding counted as zeros (torch's count_include_pad=True)."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        fields = self._fields(x, 0.0)
        self._fields_shape = fields.shape
        return self._remember(fields.mean(axis=1).reshape(self._pooled_shape))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = self._upstream(grad).reshape(-1, 1) / self._fields_shape[1]
        return self._to_input(np.broadcast_to(grad, self._fields_shape))


def _output_size(
    owner: str,
    shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int]:
    try:
        return conv_output_size(shape[2], shape[3], kernel_size, stride, padding)
    except InputError as e:
        raise InputError(f"{owner}: {e} (input shape {shape})") from None
