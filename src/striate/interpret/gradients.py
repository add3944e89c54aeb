"""Attribution by gradients: saliency, guided backprop, SmoothGrad and integrated gradients.

Each method has captum's shape, ``method(model, inputs, target=None, …) → tensor of the inputs'
shape``: the gradient of one class score per image (the predicted class when `target` is None; an
index, a class name when the model has ``.classes``, or one per image) with respect to the input
pixels, in the model's own input space. The score is the class's logit, never its softmax
probability: Simonyan et al. (2014) take the unnormalised score because the softmax's gradient
also moves with the other classes' scores (lecture 13: "gradient of (unnormalized) class score").

The model is put in eval mode for the call and each module's mode restored after; hooks are
removed in ``finally``; the model's parameters and their ``.grad`` are left as they were. The
helpers above the methods (`evaluating`, `check_inputs`, …) are shared with `cam` and
`perturbation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from striate import allocator
from striate.checks import boolean, fail, integer, is_number, number, one_of, positive_int
from striate.errors import ConfigError, InputError
from striate.interpret.layers import check_inputs, evaluating, resolve_targets

__all__ = [
    "IG_METHODS",
    "RECTIFIERS",
    "channel_max",
    "guided_backprop",
    "integrated_gradients",
    "saliency",
    "smooth_grad",
]

DEFAULT_BATCH = 64
"""Perturbed or scaled copies evaluated per forward pass when `internal_batch_size` is None."""

RECTIFIERS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6)
"""The modules guided backprop guides by default. ReLU6 is a rectifier too (EfficientNet-Lite
and MobileNet use it); LeakyReLU, ELU and SiLU pass negative inputs and are not guided unless
asked for."""

IG_METHODS = (
    "gausslegendre",
    "riemann_trapezoid",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
)

# --------------------------------------------------------------------------- shared helpers


def check_batch(owner: str, internal_batch_size: Any) -> int:
    """The internal batch size as an int (`DEFAULT_BATCH` for None)."""
    size = positive_int(owner, "internal_batch_size", internal_batch_size, allow_none=True)
    return DEFAULT_BATCH if size is None else size


def as_fill(owner: str, name: str, value: Any, like: torch.Tensor) -> torch.Tensor:
    """A number or a tensor broadcastable to `like` as a tensor of `like`'s shape (a view)."""
    if is_number(value):
        value = torch.tensor(number(owner, name, value), dtype=like.dtype, device=like.device)
    if not isinstance(value, torch.Tensor):
        raise fail(owner, name, "a number or a tensor broadcastable to the inputs", value)
    try:
        shape = torch.broadcast_shapes(value.shape, like.shape)
    except RuntimeError:
        shape = None
    if shape != like.shape:
        raise InputError(
            f"{owner}: {name} must be a number or a tensor broadcastable to the inputs' shape "
            f"{tuple(like.shape)}, got shape {tuple(value.shape)}"
        )
    return value.detach().to(like.device, like.dtype).expand_as(like)


def class_scores(owner: str, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`model(x)`, checked to be class scores N×K."""
    out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{owner}: the model must return class scores N×K for N inputs, got {got}; wrap it "
            f"so that it does"
        )
    return out


def targets_of(model: nn.Module, target: Any, outputs: torch.Tensor) -> torch.Tensor:
    """One class index per row of `outputs`, by `resolve_targets` with the model's classes."""
    return resolve_targets(target, outputs, getattr(model, "classes", None))


def pick(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """outputs[i, targets[i]] for every row i."""
    return outputs.gather(1, targets.to(outputs.device)[:, None])[:, 0]


def input_gradient(
    owner: str, model: nn.Module, x: torch.Tensor, target: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂ score_target / ∂ x, the targets): one forward and one backward pass over `x`."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = class_scores(owner, model, x)
        t = targets_of(model, target, out)
        (grad,) = torch.autograd.grad(pick(out, t).sum(), x)
    return grad, t


# --------------------------------------------------------------------------- saliency


def saliency(
    model: nn.Module, inputs: torch.Tensor, target: Any = None, *, abs: bool = True
) -> torch.Tensor:
    """The gradient of the target's logit with respect to the inputs (Simonyan et al. 2014),
    its absolute value when `abs` (captum's ``Saliency(abs=True)``). `channel_max` turns it into
    the paper's one-channel map."""
    x = check_inputs("saliency", inputs, images=False)
    boolean("saliency", "abs", abs)
    with evaluating(model):
        grad, _ = input_gradient("saliency", model, x, target)
    return grad.abs() if abs else grad


def channel_max(attributions: torch.Tensor) -> torch.Tensor:
    """max over channels of |attributions|, N×1×H×W: the saliency map as Simonyan et al. draw
    it (lecture 13: "take absolute value and max over RGB channels")."""
    a = check_inputs("channel_max", attributions, "attributions")
    return a.abs().amax(1, keepdim=True)


# --------------------------------------------------------------------------- guided backprop


class _Guided(torch.autograd.Function):
    """Identity forward on a rectifier's output; backward passes only positive gradients where
    that output was positive (the rectifier's own backward then applies its derivative).

    The output is a copy, so that in-place operations after the rectifier (``nn.ReLU(inplace=
    True)`` followed by another in-place op) never touch the tensors autograd saved.
    """

    @staticmethod
    def forward(ctx: Any, out: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(out > 0)
        return out.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (positive,) = ctx.saved_tensors
        return grad.clamp(min=0) * positive


def _guide(_module: nn.Module, _inputs: Any, out: Any) -> Any:
    if isinstance(out, torch.Tensor) and out.requires_grad:
        return _Guided.apply(out)
    return None


def guided_backprop(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    rectifiers: Sequence[type[nn.Module]] = RECTIFIERS,
) -> torch.Tensor:
    """The gradient of the target's logit where every rectifier lets only positive gradients
    through, and only where its forward output was positive (Springenberg et al. 2015, eq. for
    R^l_i: R = (f^l > 0)·(R^{l+1} > 0)·R^{l+1}).

    Guided are the modules that are instances of `rectifiers` (default ReLU and ReLU6; captum
    guides nn.ReLU alone). A forward hook on each replaces the module's output by an autograd
    Function that is the identity forward: in-place ReLUs work, and no backward hooks on modules
    are used (they break on in-place operations). A relu called as a function (``F.relu``) in a
    model's forward cannot be hooked: a model with no guided module is an error, not a plain
    gradient under another name.
    """
    x = check_inputs("guided_backprop", inputs, images=False)
    kinds = tuple(rectifiers) if isinstance(rectifiers, (list, tuple)) else (rectifiers,)
    if not kinds or not all(isinstance(k, type) and issubclass(k, nn.Module) for k in kinds):
        raise fail(
            "guided_backprop", "rectifiers", "a tuple of module classes (nn.ReLU, …)", rectifiers
        )
    guided = [m for m in model.modules() if isinstance(m, kinds)]
    if not guided:
        names = ", ".join(k.__name__ for k in kinds)
        raise ConfigError(
            f"guided_backprop: the model has no rectifier modules ({names}) to guide; a relu "
            f"called as a function (F.relu) cannot be guided: use nn.ReLU modules, or name the "
            f"model's rectifier classes with rectifiers="
        )
    handles = []
    try:
        handles = [m.register_forward_hook(_guide) for m in guided]
        with evaluating(model):
            grad, _ = input_gradient("guided_backprop", model, x, target)
    finally:
        for h in handles:
            h.remove()
    return grad


# --------------------------------------------------------------------------- integrated gradients


def _quadrature(method: str, steps: int) -> tuple[list[float], list[float]]:
    """(α_k, w_k): points in [0, 1] and weights of the rule ∫₀¹ f ≈ Σ w_k f(α_k).

    Gauss–Legendre and the left/right/middle Riemann sums are captum's. The trapezoid rule has
    weights 1/(n−1) (halved at the ends) so that they sum to 1: captum's "riemann_trapezoid"
    uses 1/n (halved at the ends) at the same points, which sums to (n−1)/n and scales every
    attribution by that factor (a completeness error of 1/n, e.g. 2 % at 50 steps).
    """
    n = steps
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return (0.5 * (1 + x)).tolist(), (0.5 * w).tolist()
    if method == "riemann_trapezoid":
        return [k / (n - 1) for k in range(n)], [
            (0.5 if k in (0, n - 1) else 1.0) / (n - 1) for k in range(n)
        ]
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return [(k + offset) / n for k in range(n)], [1 / n] * n


def integrated_gradients(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    baselines: float | torch.Tensor = 0.0,
    steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
    return_delta: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """(x − b) · ∫₀¹ ∂F(b + α(x − b))/∂x dα for F the target's logit (Sundararajan et al. 2017,
    eq. 1), the integral by the quadrature `method` with `steps` points.

    `baselines` is a number or a tensor broadcastable to the inputs (0 = black for images on the
    0–1 scale). The steps × N scaled inputs are evaluated `internal_batch_size` at a time (default
    64). With `return_delta`, also the completeness error per image, Σ attributions −
    (F(x) − F(b)), as captum's ``return_convergence_delta`` computes it: it shrinks as steps grow.
    """
    owner = "integrated_gradients"
    x = check_inputs(owner, inputs, images=False)
    steps = positive_int(owner, "steps", steps)
    method = one_of(owner, "method", method, IG_METHODS)
    if method == "riemann_trapezoid" and steps < 2:
        raise fail(owner, "steps", "at least 2 for the trapezoid rule", steps)
    batch = check_batch(owner, internal_batch_size)
    boolean(owner, "return_delta", return_delta)
    base = as_fill(owner, "baselines", baselines, x)
    alphas, weights = _quadrature(method, steps)
    n = x.shape[0]
    diff = x - base
    with evaluating(model), allocator.reusing_freed_memory(x.device.type == "cpu"):
        with torch.no_grad():
            out = class_scores(owner, model, x)
        t = targets_of(model, target, out)
        total = torch.zeros_like(x)
        alpha = torch.tensor(alphas, dtype=x.dtype, device=x.device)
        weight = torch.tensor(weights, dtype=x.dtype, device=x.device)
        shape = (-1,) + (1,) * (x.dim() - 1)
        for start in range(0, steps * n, batch):  # row r: step r // n of image r % n
            rows = torch.arange(start, min(start + batch, steps * n), device=x.device)
            k, i = rows // n, rows % n
            scaled = base[i] + alpha[k].view(shape) * diff[i]
            grad, _ = input_gradient(owner, model, scaled, t[i])
            total.index_add_(0, i, grad * weight[k].view(shape))
        attributions = total * diff
        if not return_delta:
            return attributions
        with torch.no_grad():
            f_base = pick(class_scores(owner, model, base.contiguous()), t)
        delta = attributions.flatten(1).sum(1) - (pick(out, t) - f_base)
    return attributions, delta


# --------------------------------------------------------------------------- SmoothGrad

Method = Callable[..., torch.Tensor]


def smooth_grad(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    method: Method = saliency,
    samples: int = 50,
    noise: float = 0.15,
    seed: int = 0,
    internal_batch_size: int | None = None,
    squared: bool = False,
) -> torch.Tensor:
    """The mean of `method`'s attributions over `samples` noisy copies of each input, x + N(0, σ²)
    with σ = noise · (max(x) − min(x)) per image (Smilkov et al. 2017, eq. 3 and §3.1: 10–20 %
    noise works best); the mean of their squares when `squared` (captum's ``smoothgrad_sq``).

    `method` is any attribution function of this package's shape (`saliency` by default, or
    `guided_backprop`, `integrated_gradients`, `grad_cam`; bind its options with
    functools.partial). The noise is drawn on the CPU from ``torch.Generator().manual_seed(seed)``,
    one N×C×H×W draw per sample in sample order (as captum's NoiseTunnel draws with
    ``nt_samples_batch_size=1``), so the result does not depend on `internal_batch_size` or the
    device. The target is resolved once, on the clean inputs.
    """
    owner = "smooth_grad"
    x = check_inputs(owner, inputs, images=False)
    if not callable(method):
        raise fail(owner, "method", "an attribution function such as saliency", method)
    samples = positive_int(owner, "samples", samples)
    noise = number(owner, "noise", noise, low=0)
    seed = integer(owner, "seed", seed)
    batch = check_batch(owner, internal_batch_size)
    squared = boolean(owner, "squared", squared)
    n = x.shape[0]
    flat = x.flatten(1)
    sigma = (noise * (flat.amax(1) - flat.amin(1))).view((-1,) + (1,) * (x.dim() - 1))
    with evaluating(model), torch.no_grad():
        t = targets_of(model, target, class_scores(owner, model, x))
    g = torch.Generator().manual_seed(seed)
    total: torch.Tensor | None = None
    pending: list[torch.Tensor] = []  # noisy copies drawn, not yet evaluated, in row order
    count = done = 0  # rows pending, rows evaluated

    def flush(rows: torch.Tensor) -> None:
        nonlocal total, done
        i = torch.arange(done, done + len(rows), device=x.device) % n
        a = method(model, rows, t[i])
        a = a * a if squared else a
        if total is None:
            total = torch.zeros((n,) + tuple(a.shape[1:]), dtype=a.dtype, device=a.device)
        total.index_add_(0, i, a.detach())
        done += len(rows)

    with evaluating(model), allocator.reusing_freed_memory(x.device.type == "cpu"):
        for s in range(samples):
            draw = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
            pending.append(x + sigma * draw)
            count += n
            while count >= batch or (s == samples - 1 and count):
                rows = torch.cat(pending)
                flush(rows[:batch])
                pending = [rows[batch:]] if len(rows) > batch else []
                count = max(len(rows) - batch, 0)
    assert total is not None
    return total / samples
