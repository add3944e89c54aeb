"""Layers of the NumPy reference engine: each computes its forward pass and, from the upstream
gradient, the gradients of its parameters and of its input.

The contract every layer keeps (the scratch Model relies on it):

    layer.params   dict of parameter arrays by name ({} for none), updated in place by optimisers
    layer.grads    dL/dparam after `backward`, same keys and shapes as `params`
    layer.buffers  state that is saved but not trained (BatchNorm's running statistics), or {}
    y = layer.forward(x, train=True)   caches what `backward` needs
    dx = layer.backward(dy)            stores `layer.grads`, returns dL/dx

Layers keep the dtype they are given (float64 for gradient checks, float32 for training).
Pure NumPy: nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from striate.checks import integer, number, one_of, positive_int, positive_number, probability
from striate.errors import ConfigError, InputError

__all__ = [
    "BatchNorm",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "as_generator",
    "float_dtype",
    "init_weights",
]

INITS = ("he", "torch")


class Layer:
    """Base class: no parameters, and helpers for the checks every layer makes."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._out_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={v.shape}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"

    def _input(self, x: Any, ndims: tuple[int, ...] = (), what: str = "") -> np.ndarray:
        """`x` if it is a floating-point array with one of `ndims` dimensions (any when empty)."""
        name = type(self).__name__
        if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
            kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
            raise InputError(f"{name}: input must be a floating-point NumPy array, got {kind}")
        if ndims and x.ndim not in ndims:
            raise InputError(f"{name}: input must have shape {what}, got shape {x.shape}")
        return x

    def _remember(self, y: np.ndarray) -> np.ndarray:
        self._out_shape = y.shape
        return y

    def _upstream(self, grad: Any) -> np.ndarray:
        """`grad` if `forward` ran and `grad` has the shape of its output."""
        name = type(self).__name__
        if self._out_shape is None:
            raise InputError(f"{name}: backward called before forward")
        if not isinstance(grad, np.ndarray) or grad.shape != self._out_shape:
            shape = grad.shape if isinstance(grad, np.ndarray) else type(grad).__name__
            raise InputError(
                f"{name}: the gradient must have the output's shape {self._out_shape}, got {shape}"
            )
        return grad


def as_generator(owner: str, rng: Any) -> np.random.Generator:
    """`rng` as a Generator: a Generator as it is, an int seed or None through `default_rng`."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ConfigError(f"{owner}: rng must be a numpy Generator, an int seed or None, got {rng!r}")


def float_dtype(owner: str, dtype: Any) -> np.dtype:
    """`dtype` as a NumPy floating dtype."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        raise ConfigError(f"{owner}: dtype must be a floating-point dtype, got {dtype!r}")
    return dt


def init_weights(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    fan_in: int,
    init: str,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """Weights of `shape` and a bias of `shape[0]` zeros or draws (see `Linear`)."""
    if init == "he":
        # He et al. 2015, "Delving Deep into Rectifiers", eq. 10: std = sqrt(2 / fan_in). The
        # lecture's `randn(fan_in, fan_out) / np.sqrt(2/fan_in)` divides where it should multiply.
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        return w.astype(dtype), np.zeros(shape[0], dtype)
    # torch's nn.Linear / nn.Conv2d default: kaiming_uniform_(a=sqrt(5)) is U(±1/sqrt(fan_in)),
    # and the bias is drawn from the same interval.
    bound = 1.0 / np.sqrt(fan_in)
    w = rng.uniform(-bound, bound, shape)
    b = rng.uniform(-bound, bound, shape[0])
    return w.astype(dtype), b.astype(dtype)


class Linear(Layer):
    """y = x W + b for x of shape (N, in_features); W has shape (in_features, out_features)
    (the transpose of torch's `weight`), b shape (out_features,).

    init "he" (the default) draws W from N(0, 2 / in_features) with b = 0 (He et al. 2015), right
    for ReLU networks; "torch" draws W and b from U(±1 / sqrt(in_features)) as nn.Linear does.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator | int | None = None,
        *,
        init: str = "he",
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        one_of("Linear", "init", init, INITS)
        w, b = init_weights(
            as_generator("Linear", rng),
            (self.out_features, self.in_features),
            self.in_features,
            init,
            float_dtype("Linear", dtype),
        )
        self.params = {"W": np.ascontiguousarray(w.T), "b": b}

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x, (2,), "(N, in_features)")
        if x.shape[1] != self.in_features:
            raise InputError(
                f"Linear: input must have {self.in_features} features, got shape {x.shape}"
            )
        self._x = x
        return self._remember(x @ self.params["W"] + self.params["b"])

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = self._upstream(grad)
        self.grads = {"W": self._x.T @ grad, "b": grad.sum(axis=0)}
        return grad @ self.params["W"].T


class ReLU(Layer):
    """max(0, x); the gradient is passed where x > 0 (0 at the kink, as in torch)."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x)
        self._mask = x > 0
        return self._remember(np.maximum(x, 0))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._upstream(grad) * self._mask


class Sigmoid(Layer):
    """1 / (1 + e^-x), computed without overflow for large |x|; dσ/dx = σ(1 - σ)."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x)
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        self._s = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self._remember(self._s)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._upstream(grad) * self._s * (1 - self._s)


class Tanh(Layer):
    """tanh(x); d tanh/dx = 1 - tanh²."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        self._t = np.tanh(self._input(x))
        return self._remember(self._t)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._upstream(grad) * (1 - self._t**2)


class Softmax(Layer):
    """exp(x) / Σ exp(x) along `axis` (default the last), after subtracting the maximum so that
    logits like 1000 do not overflow. The backward pass is the Jacobian-vector product
    s ⊙ (g - Σ g ⊙ s), never the (K, K) Jacobian itself."""

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = integer("Softmax", "axis", axis)

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x)
        if not -x.ndim <= self.axis < x.ndim:
            raise InputError(f"Softmax: axis {self.axis} is out of range for shape {x.shape}")
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        self._s = e / e.sum(axis=self.axis, keepdims=True)
        return self._remember(self._s)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = self._upstream(grad)
        s = self._s
        return s * (grad - (grad * s).sum(axis=self.axis, keepdims=True))


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014, with the scaling moved to training time): in
    training each unit is zeroed with probability p and the survivors are scaled by 1 / (1 - p),
    so evaluation is the identity. `mask` is the last scaled mask (0 or 1 / (1 - p))."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = probability("Dropout", "p", p, high_open=True, hint="p = 1 drops everything")
        self.rng = as_generator("Dropout", rng)
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x)
        if not train or self.p == 0:
            self.mask = None
            return self._remember(x)
        keep = self.rng.random(x.shape) >= self.p
        self.mask = (keep / (1 - self.p)).astype(x.dtype)
        return self._remember(x * self.mask)

    def backward(self, grad: np.ndarray) -> np.ndarray:
        grad = self._upstream(grad)
        return grad if self.mask is None else grad * self.mask


class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy 2015) over the batch axis of (N, D) inputs, or over
    N, H and W of (N, C, H, W) inputs, with a learned scale `gamma` and shift `beta` per feature.

    Training normalises with the batch's mean and (biased) variance and updates the running
    statistics as torch does: running = (1 - momentum) running + momentum batch, with the unbiased
    variance (× M / (M - 1) for M values per feature). Evaluation normalises with the running
    statistics. `buffers` holds `running_mean` and `running_var`.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = positive_int("BatchNorm", "num_features", num_features)
        self.eps = positive_number("BatchNorm", "eps", eps)
        self.momentum = number("BatchNorm", "momentum", momentum, low=0, high=1)
        dt = float_dtype("BatchNorm", dtype)
        d = self.num_features
        self.params = {"gamma": np.ones(d, dt), "beta": np.zeros(d, dt)}
        self.buffers = {"running_mean": np.zeros(d, dt), "running_var": np.ones(d, dt)}

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x, (2, 4), "(N, D) or (N, C, H, W)")
        if x.shape[1] != self.num_features:
            raise InputError(
                f"BatchNorm: input must have {self.num_features} features on axis 1, "
                f"got shape {x.shape}"
            )
        rows = self._rows(x)
        m = rows.shape[0]
        if train:
            if m < 2:
                raise InputError(
                    f"BatchNorm: training needs more than one value per feature, got shape "
                    f"{x.shape} (use a larger batch or train=False)"
                )
            mean, var = rows.mean(axis=0), rows.var(axis=0)
            running_mean, running_var = self.buffers["running_mean"], self.buffers["running_var"]
            running_mean *= 1 - self.momentum
            running_mean += self.momentum * mean
            running_var *= 1 - self.momentum
            running_var += self.momentum * var * (m / (m - 1))
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        self._train = train
        self._inv_std = 1 / np.sqrt(var + self.eps)
        self._xhat = (rows - mean) * self._inv_std
        out = self._xhat * self.params["gamma"] + self.params["beta"]
        return self._remember(self._unrows(out.astype(x.dtype, copy=False), x.shape))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        g = self._rows(self._upstream(grad))
        xhat = self._xhat
        self.grads = {"gamma": (g * xhat).sum(axis=0), "beta": g.sum(axis=0)}
        dxhat = g * self.params["gamma"]
        if self._train:
            # The compact form of the paper's chain rule through the batch mean and variance.
            m = g.shape[0]
            dx = (self._inv_std / m) * (
                m * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)
            )
        else:
            dx = dxhat * self._inv_std
        return self._unrows(dx, grad.shape)

    @staticmethod
    def _rows(x: np.ndarray) -> np.ndarray:
        """(M, C): one row per value being normalised, one column per feature."""
        return x if x.ndim == 2 else x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])

    @staticmethod
    def _unrows(rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if len(shape) == 2:
            return rows
        n, c, h, w = shape
        return rows.reshape(n, h, w, c).transpose(0, 3, 1, 2)


class Flatten(Layer):
    """(N, ...) → (N, everything else), as the bridge from convolutions to Linear layers."""

    def forward(self, x: np.ndarray, train: bool = True) -> np.ndarray:
        x = self._input(x)
        if x.ndim < 1:
            raise InputError(f"Flatten: input must have a batch axis, got shape {x.shape}")
        self._shape = x.shape
        return self._remember(x.reshape(x.shape[0], -1))

    def backward(self, grad: np.ndarray) -> np.ndarray:
        return self._upstream(grad).reshape(self._shape)
