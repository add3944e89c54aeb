"""Gradient checking: compare an analytic gradient with centred finite differences.

The numeric gradient of a scalar function ``f`` at ``x`` is, entry by entry,
``(f(x + h·e_i) - f(x - h·e_i)) / 2h`` (centred differences: error O(h²), against O(h) for the
one-sided formula). A gradient check samples a few entries and reports, per entry, the relative
error

    |a - n| / max(|a| + |n|, tiny)

of the analytic value ``a`` against the numeric value ``n`` (CS231n's ``grad_check_sparse``). How
to read it (CS231n, "Neural Networks Part 3", gradient checks):

==================  ==========================================================================
relative error      meaning
==================  ==========================================================================
> 1e-2              the gradient is probably wrong
1e-2 … 1e-4         uncomfortable: look closer
< 1e-4              usually fine for objectives with kinks (hinge, ReLU, L1); too high for smooth
                    ones (softmax, tanh), which should reach ~1e-7
< 1e-7              good
==================  ==========================================================================

Check in float64: in float32 the rounding of ``f`` (~1e-7 relative), divided by ``2h``, swamps
the difference, and a correct gradient may show errors of 1e-2. Near a kink (``max(0, ·)``,
``|·|``) the two sides of the difference may fall on different pieces: an occasional large error
there is the kink, not a bug (a smaller ``h`` moves it away). Where the true gradient is 0 the
analytic value is often a rounding residue (1e-17) and the numeric one 0, a relative error of 1
that means nothing: below the rounding noise of a centred difference, ``eps·|f(x)| / h``, the two
cannot be told apart. So ``tiny`` defaults to 64 times that noise (float64 ``eps``), and the
first ``slack`` = 4 times that noise of ``|a - n|`` is not counted: a numeric gradient of one or
two ulps of ``f`` over ``2h`` where the true one is 0 is rounding, whichever way the machine's
BLAS happens to sum.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from striate.checks import positive_int, positive_number
from striate.errors import InputError

__all__ = ["GradcheckResult", "gradcheck", "numerical_gradient", "relative_error"]

ArrayLike = np.ndarray | torch.Tensor


def relative_error(a: Any, n: Any, tiny: float = 1e-300, slack: float = 0.0) -> np.ndarray:
    """Elementwise ``max(|a - n| - slack, 0) / max(|a| + |n|, tiny)`` as a float64 NumPy array
    (``slack`` 0: CS231n's formula)."""
    a = _as_float64(a)
    n = _as_float64(n)
    return np.maximum(np.abs(a - n) - slack, 0.0) / np.maximum(np.abs(a) + np.abs(n), tiny)


def numerical_gradient(f: Callable[[Any], Any], x: ArrayLike, h: float = 1e-5) -> ArrayLike:
    """The centred-difference gradient of scalar ``f`` at ``x``, over every entry.

    ``f`` is called with a perturbed copy of ``x`` (so ``x`` itself is never modified) and returns
    a scalar (a float, a 1-element array or tensor, or a tuple whose first item is one, so a
    ``loss_and_grad`` function can be passed as is). Costs ``2·x.size`` calls of ``f``; for large
    ``x`` use :func:`gradcheck`, which samples entries. The result has the type, dtype and device
    of ``x``.
    """
    work = _working_copy(x, h)
    grad = torch.zeros_like(work) if isinstance(work, torch.Tensor) else np.zeros_like(work)
    for i in range(_numel(work)):
        _flat(grad)[i] = _central_difference(f, work, i, h)
    return grad


@dataclass
class GradcheckResult:
    """The outcome of :func:`gradcheck`: per sampled entry, both values and their relative error."""

    indices: list[tuple[int, ...]]
    analytic: np.ndarray
    numeric: np.ndarray
    rel_errors: np.ndarray
    h: float
    tiny: float
    slack: float = 0.0

    @property
    def max_rel_error(self) -> float:
        """The largest relative error over the sampled entries (0 when none were sampled)."""
        return float(self.rel_errors.max()) if len(self.rel_errors) else 0.0

    def passed(self, threshold: float = 1e-7) -> bool:
        """True when every sampled entry's relative error is at most ``threshold``.

        1e-7 suits smooth functions in float64; use ~1e-4 for functions with kinks (see the module
        docstring for the scale).
        """
        return self.max_rel_error <= threshold

    def __str__(self) -> str:
        lines = [
            f"{str(i):>14}  numeric {n: .6e}  analytic {a: .6e}  relative error {e:.3e}"
            for i, n, a, e in zip(
                self.indices, self.numeric, self.analytic, self.rel_errors, strict=True
            )
        ]
        lines.append(
            f"max relative error {self.max_rel_error:.3e} (h={self.h:g}, tiny={self.tiny:.1e}, "
            f"slack={self.slack:.1e})"
        )
        return "\n".join(lines)


def gradcheck(
    f: Callable[[Any], Any],
    x: ArrayLike,
    analytic: ArrayLike | Callable[[Any], Any],
    num_checks: int = 10,
    h: float = 1e-5,
    seed: int = 0,
    tiny: float | None = None,
) -> GradcheckResult:
    """Compare ``analytic`` (the gradient of ``f`` at ``x``) with centred differences at
    ``num_checks`` entries sampled without replacement (all entries if there are fewer).

    ``analytic`` is an array or tensor of ``x``'s shape, or a callable giving it from ``x``.
    ``f`` is called on a perturbed copy of ``x`` as in :func:`numerical_gradient`. ``tiny``
    floors the denominator of the relative error; None takes 64·eps·|f(x)| / h, 64 times the
    rounding noise of a centred difference, and forgives differences up to 4 times that noise
    (see the module docstring); an explicit ``tiny`` forgives nothing. Use float64: float32
    input gives a warning because its rounding swamps the differences.
    """
    if callable(analytic):
        analytic = analytic(x)
    grad = _as_float64(_first(analytic))
    if tuple(grad.shape) != tuple(x.shape):
        raise InputError(
            f"gradcheck: the analytic gradient has shape {tuple(grad.shape)}, but x has shape "
            f"{tuple(x.shape)}; they must match"
        )
    num_checks = positive_int("gradcheck", "num_checks", num_checks, error=InputError)
    work = _working_copy(x, h)
    slack = 0.0
    if tiny is None:
        noise = np.finfo(np.float64).eps * abs(_scalar(f(work))) / h
        tiny = max(64 * noise, np.finfo(np.float64).tiny)
        slack = 4 * noise
    size = _numel(work)
    rng = np.random.default_rng(seed)
    flat_idx = np.sort(rng.choice(size, size=min(num_checks, size), replace=False))
    numeric = np.array([_central_difference(f, work, int(i), h) for i in flat_idx])
    analytic_vals = grad.reshape(-1)[flat_idx]
    shape = tuple(x.shape)
    indices = [tuple(int(v) for v in np.unravel_index(int(i), shape)) for i in flat_idx]
    return GradcheckResult(
        indices=indices,
        analytic=analytic_vals,
        numeric=numeric,
        rel_errors=relative_error(analytic_vals, numeric, tiny, slack),
        h=h,
        tiny=tiny,
        slack=slack,
    )


# --------------------------------------------------------------------------- helpers


def _working_copy(x: ArrayLike, h: float) -> ArrayLike:
    positive_number("gradient check", "h", h, error=InputError)
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise InputError(
                f"gradient check: x must be a floating-point tensor, got {x.dtype}; "
                f"convert it with x.double()"
            )
        work = x.detach().clone().contiguous()
        low = x.dtype != torch.float64
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise InputError(
                f"gradient check: x must be a floating-point array, got {x.dtype}; "
                f"convert it with x.astype(np.float64)"
            )
        work = np.array(x, copy=True, order="C")
        low = x.dtype != np.float64
    else:
        raise InputError(
            f"gradient check: x must be a NumPy array or a torch tensor, got {type(x).__name__}"
        )
    if low:
        warnings.warn(
            f"gradient check in {x.dtype}: rounding swamps finite differences below float64, "
            f"so relative errors of 1e-3 or more can come from a correct gradient; use float64",
            stacklevel=3,
        )
    return work


def _numel(x: ArrayLike) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else x.size


def _flat(x: ArrayLike) -> ArrayLike:
    return x.view(-1) if isinstance(x, torch.Tensor) else x.reshape(-1)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _scalar(value: Any) -> float:
    value = _first(value)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InputError(
                f"gradient check: f must return a scalar, got shape {tuple(value.shape)}"
            )
        return float(value.detach().double().item())
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise InputError(f"gradient check: f must return a scalar, got shape {arr.shape}")
    return float(arr.reshape(()))


def _central_difference(f: Callable[[Any], Any], work: ArrayLike, i: int, h: float) -> float:
    """(f(x + h e_i) - f(x - h e_i)) / 2h, restoring entry i exactly afterwards."""
    flat = _flat(work)
    old = flat[i].item()
    flat[i] = old + h
    plus = _scalar(f(work))
    flat[i] = old - h
    minus = _scalar(f(work))
    flat[i] = old
    return (plus - minus) / (2 * h)


def _as_float64(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)
