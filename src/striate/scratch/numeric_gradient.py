"""Centred finite differences, the independent reference that every backward pass is tested
against (CS231n, "Neural Networks Part 3": gradient checks).

Use float64: in float32 the rounding of f, divided by 2h, swamps the difference. Near a kink
(ReLU at 0, ties in a max) the two sides may fall on different pieces; keep inputs away from them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from striate.checks import positive_number
from striate.errors import InputError

__all__ = ["numeric_gradient", "relative_error"]


def numeric_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """df/dx entry by entry, (f(x + h e_i) - f(x - h e_i)) / 2h (error O(h²)).

    Each entry of `x` is perturbed in place and restored, so `f` may read x through another name
    too: `numeric_gradient(lambda _: loss(), layer.params["W"])` checks a parameter's gradient.
    """
    h = positive_number("numeric_gradient", "h", h)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        kind = x.dtype if isinstance(x, np.ndarray) else type(x).__name__
        raise InputError(f"numeric_gradient: x must be a floating-point NumPy array, got {kind}")
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    if not np.shares_memory(flat, x):
        raise InputError("numeric_gradient: x must be contiguous, so that it can be perturbed")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = _scalar(f(x))
        flat[i] = old - h
        down = _scalar(f(x))
        flat[i] = old
        grad.reshape(-1)[i] = (up - down) / (2 * h)
    return grad


def relative_error(a: np.ndarray, b: np.ndarray, tiny: float = 1e-300) -> float:
    """max |a - b| / max(max(|a| + |b|), tiny): one number for two arrays of the same shape,
    scaled by their largest entries so that entries near 0 do not inflate it."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"relative_error: shapes differ, {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a) + np.abs(b))), tiny))


def _scalar(v: object) -> float:
    value = np.asarray(v)
    if value.size != 1:
        raise InputError(f"numeric_gradient: f must return a scalar, got shape {value.shape}")
    return float(value.reshape(()))
