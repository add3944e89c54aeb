"""The SGD variants in NumPy: SGD, Momentum, Nesterov, AdaGrad, RMSProp and Adam.

    opt = Adam(lr=1e-3)
    opt.step(params, grads)    # dicts of arrays by the same keys; params change in place
    opt.lr = 1e-4              # schedules set it between steps

Each optimiser keeps its state per key (velocities, running averages, step counts), so the same
key must name the same parameter at every step. `weight_decay` adds the L2 term
``weight_decay * p`` to the gradient before the update, as torch's SGD, Adagrad, RMSprop and Adam
do (not AdamW's decoupled decay).

Where ε goes. The reference post divides by ``sqrt(n + ε)``; PyTorch (and the Adam paper) by
``sqrt(n) + ε``. `eps_inside_sqrt=False` (the default) is PyTorch's form; True is the post's. The
two differ most while ``n`` is tiny: inside the root, ε = 1e-8 caps a step at lr·g/1e-4, outside
at lr·g/1e-8.

Momentum and Nesterov keep the learning rate in the velocity, as the reference post and CS231n do
(``v = μv - lr·g``). With a constant lr this is exactly torch's SGD(momentum=μ), whose buffer
holds gradients and is multiplied by lr at each step; after an lr change the two differ: here the
past steps keep the lr they were taken with, in torch the new lr rescales the whole buffer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from striate.checks import boolean, number, positive_number, probability
from striate.errors import InputError

__all__ = ["SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "Optimizer", "RMSProp"]


class Optimizer:
    """The shared part: the learning rate, weight decay, and a loop over the parameters."""

    def __init__(self, lr: float, weight_decay: float = 0.0) -> None:
        owner = type(self).__name__
        self.lr = number(owner, "lr", lr, low=0)
        self.weight_decay = number(owner, "weight_decay", weight_decay, low=0)
        self.state: dict[str, dict[str, Any]] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every array in `params` in place from the gradient of the same key."""
        for key, p in params.items():
            g = grads[key]
            if g.shape != p.shape:
                raise InputError(
                    f"{type(self).__name__}: the gradient of {key} has shape {g.shape}, the "
                    f"parameter {p.shape}"
                )
            if self.weight_decay:
                g = g + self.weight_decay * p
            self.update(p, g, self.state.setdefault(key, {}))

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        """Change `p` in place from its gradient `g`; `state` is this parameter's memory."""
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p - lr·g."""

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        p -= self.lr * g


class Momentum(Optimizer):
    """Classical (Polyak) momentum: v ← μv - lr·g; p ← p + v (Polyak 1964; Qian 1999)."""

    def __init__(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(lr, weight_decay)
        self.momentum = probability(type(self).__name__, "momentum", momentum, high_open=True)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        v = state.setdefault("velocity", np.zeros_like(p))
        v *= self.momentum
        v -= self.lr * g
        p += v


class Nesterov(Momentum):
    """Nesterov momentum in the form of CS231n (Sutskever et al. 2013, eq. 3-4, rewritten for the
    look-ahead point), which needs only the gradient at the current parameters:

        v_prev = v;  v ← μv - lr·g;  p ← p - μ·v_prev + (1 + μ)·v

    Sutskever's form evaluates the gradient at p + μv; this one stores p + μv as the parameters
    instead, so no second gradient evaluation is needed (the reference post's code re-evaluates).
    With a constant lr it is torch's SGD(momentum=μ, nesterov=True).
    """

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        v = state.setdefault("velocity", np.zeros_like(p))
        p -= self.momentum * v
        v *= self.momentum
        v -= self.lr * g
        p += (1 + self.momentum) * v


class _Adaptive(Optimizer):
    """An optimiser that divides by the root of a running sum or average of g² (plus ε)."""

    def __init__(
        self, lr: float, eps: float, eps_inside_sqrt: bool, weight_decay: float = 0.0
    ) -> None:
        super().__init__(lr, weight_decay)
        self.eps = positive_number(type(self).__name__, "eps", eps)
        self.eps_inside_sqrt = boolean(type(self).__name__, "eps_inside_sqrt", eps_inside_sqrt)

    def denominator(self, n: np.ndarray) -> np.ndarray:
        """sqrt(n + ε) (the post's) or sqrt(n) + ε (PyTorch's)."""
        return np.sqrt(n + self.eps) if self.eps_inside_sqrt else np.sqrt(n) + self.eps


class AdaGrad(_Adaptive):
    """n ← n + g²; p ← p - lr·g / (sqrt(n) + ε) (Duchi, Hazan & Singer 2011). torch's defaults:
    ε = 1e-10, no lr decay, accumulator starting at 0."""

    def __init__(
        self,
        lr: float = 0.01,
        eps: float = 1e-10,
        eps_inside_sqrt: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, eps, eps_inside_sqrt, weight_decay)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        n = state.setdefault("sum_sq", np.zeros_like(p))
        n += g * g
        p -= self.lr * g / self.denominator(n)


class RMSProp(_Adaptive):
    """n ← ρn + (1 - ρ)g²; p ← p - lr·g / (sqrt(n) + ε) (Hinton, Coursera lecture 6e, 2012).
    ρ = 0.99 as torch's `alpha` (the post suggests 0.9)."""

    def __init__(
        self,
        lr: float = 0.01,
        rho: float = 0.99,
        eps: float = 1e-8,
        eps_inside_sqrt: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, eps, eps_inside_sqrt, weight_decay)
        self.rho = probability(type(self).__name__, "rho", rho, high_open=True)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        n = state.setdefault("mean_sq", np.zeros_like(p))
        n *= self.rho
        n += (1 - self.rho) * g * g
        p -= self.lr * g / self.denominator(n)


class Adam(_Adaptive):
    """Adam (Kingma & Ba 2015, algorithm 1): m ← β₁m + (1 - β₁)g; n ← β₂n + (1 - β₂)g²;
    p ← p - lr·m̂ / (sqrt(n̂) + ε) with m̂ = m / (1 - β₁ᵗ), n̂ = n / (1 - β₂ᵗ)."""

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        eps_inside_sqrt: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr, eps, eps_inside_sqrt, weight_decay)
        owner = type(self).__name__
        self.beta1 = probability(owner, "betas[0]", betas[0], high_open=True)
        self.beta2 = probability(owner, "betas[1]", betas[1], high_open=True)

    def update(self, p: np.ndarray, g: np.ndarray, state: dict[str, Any]) -> None:
        m = state.setdefault("mean", np.zeros_like(p))
        n = state.setdefault("mean_sq", np.zeros_like(p))
        t = state["t"] = state.get("t", 0) + 1
        m *= self.beta1
        m += (1 - self.beta1) * g
        n *= self.beta2
        n += (1 - self.beta2) * g * g
        m_hat = m / (1 - self.beta1**t)
        n_hat = n / (1 - self.beta2**t)
        p -= self.lr * m_hat / self.denominator(n_hat)
