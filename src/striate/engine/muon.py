"""Muon: the hidden layers' momentum orthogonalised by Newton–Schulz, SGD for the other weights.

Keller Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"
(kellerjordan.github.io/posts/muon), as ``airbench94_muon.py`` of
github.com/KellerJordan/cifar10-airbench trains CIFAR-10 to 94 % in 8 epochs where airbench94's
SGD needs 9.9. For a hidden layer's weight ``W`` (a conv filter bank taken as the matrix
out × in·k·k) with gradient ``G``, momentum ``μ`` and learning rate ``lr``::

    B ← μ·B + G                         (B starts at 0)
    M = G + μ·B   (Nesterov)            or M = B
    W ← W·√rows / ‖W‖_F                 (``normalize``: airbench's, for layers that a batch
                                          norm follows, whose scale means nothing)
    W ← W·(1 - lr·λ) - lr·NS(M)         (decoupled weight decay λ)

``NS(M)`` (`orthogonalize`) approximates ``U Vᵀ`` of ``M = U S Vᵀ`` with a quintic Newton–Schulz
iteration: ``X₀ = M / ‖M‖_F`` (every singular value ≤ 1), then ``X ← a·X + (b·A + c·A²)·X``
with ``A = X Xᵀ``. Each step maps every singular value ``s`` to ``a·s + b·s³ + c·s⁵`` and keeps
the singular vectors; Jordan's coefficients ``(a, b, c) = (3.4445, -4.7750, 2.0315)`` have the
largest slope at zero that still brings the small singular values up in a few steps, to about
0.7–1.2 rather than exactly 1, which trains as well as ``U Vᵀ`` (a singular value far below
``‖M‖_F`` grows about ``a`` times per step, so those under ``‖M‖_F / aᵏ`` stay small). The
iteration runs in bfloat16 where the device computes it natively, as airbench94_muon and torch's
``Muon`` run it everywhere, and in float32 elsewhere (``ns_precision``): a CPU without native
bf16 emulates its matrix products slowly.

The other parameters (biases, norm layers, the output layer, embeddings) take SGD steps with
Nesterov momentum and L2 weight decay, torch's ``SGD`` rule, with their own lr, momentum and
(``aux_weight_decay``) decay: Muon is for hidden weight matrices only (Jordan).
`striate.engine.optim.muon_groups` makes the split; each group says which rule it takes
(``"muon": True``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from striate.checks import number, one_of, positive_int
from striate.engine.precision import native_bf16
from striate.errors import ConfigError

__all__ = ["NS_COEFFICIENTS", "NS_PRECISIONS", "Muon", "orthogonalize", "split_hidden"]

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def orthogonalize(
    m: torch.Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``U Vᵀ`` of the matrix ``m = U S Vᵀ``, roughly (singular values about 0.7–1.2): ``steps``
    quintic Newton–Schulz iterations in ``dtype`` (module docstring), returned in ``m``'s."""
    if m.ndim != 2:
        raise ConfigError(f"orthogonalize needs a matrix, got a tensor of shape {tuple(m.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = m.to(dtype)
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T  # A = X Xᵀ is then the smaller Gram matrix
    x = x / (torch.linalg.matrix_norm(x) + eps)
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b·A + c·A²
        x = torch.addmm(x, poly, x, beta=a)  # a·X + (b·A + c·A²)·X
    return (x if wide else x.T).to(m.dtype)


def _output_layer_params(model: nn.Module) -> set[int]:
    """The ids of the output layer's parameters: the module owning the last parameter of two or
    more dimensions, in registration order (a classifier's head)."""
    owner = None
    for module in model.modules():
        if any(p.ndim >= 2 for p in module.parameters(recurse=False)):
            owner = module
    return set() if owner is None else {id(p) for p in owner.parameters(recurse=False)}


def split_hidden(model: nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``groups`` (`param_groups` of ``model``) with the hidden weights moved to a first group
    marked ``"muon": True`` (the decay group's weight decay) and the others marked False. Hidden:
    two or more dimensions, in the decay group, not in the output layer (the module holding the
    last parameter of two or more dimensions) nor an embedding, as Jordan advises."""
    output = _output_layer_params(model)
    embeddings = {
        id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    hidden: list[nn.Parameter] = []
    decay = 0.0
    out = []
    for g in groups:
        keep = []
        for p in g["params"]:
            is_hidden = p.ndim >= 2 and id(p) not in output and id(p) not in embeddings
            (hidden if is_hidden and g["name"] == "decay" else keep).append(p)
        if g["name"] == "decay":
            decay = g["weight_decay"]
        out.append({**g, "params": keep, "muon": False})
    muon = {"params": hidden, "muon": True, "weight_decay": decay, "name": "muon"}
    return [g for g in [muon, *out] if g["params"]]


def _ns_dtype(group: dict[str, Any]) -> torch.dtype:
    """The dtype of a Muon group's Newton–Schulz iterations, its "auto" resolved by the device of
    its parameters and kept in the group (a resumed run keeps it). A group saved before the
    setting existed ran them in float32."""
    name = group.setdefault("ns_precision", "fp32")
    if name == "auto":
        name = group["ns_precision"] = "bf16" if native_bf16(group["params"][0].device) else "fp32"
    return NS_PRECISIONS[name]


class Muon(torch.optim.Optimizer):
    """Muon for the groups marked ``"muon": True``, torch's SGD (Nesterov) for the others.

    ``lr``, ``momentum`` and ``weight_decay`` are the defaults of the Muon groups; ``aux_lr``,
    ``aux_momentum`` those of the SGD groups (their group's ``lr``, ``momentum`` and
    ``weight_decay`` when it sets them). ``aux_weight_decay`` is the L2 decay of every SGD group,
    in place of its own: with `muon_groups`, biases and norm layers decay too, as
    airbench94_muon decays them. ``ns_steps`` Newton–Schulz iterations in ``ns_precision``
    ("fp32", "bf16", or "auto": bf16 where the device computes it natively, as
    airbench94_muon and torch's ``Muon`` do, fp32 elsewhere, where bf16 matrix products are
    emulated and slow); ``normalize`` rescales each hidden weight to Frobenius norm √rows before
    its step. A plain list of parameters is all Muon's; `striate.engine.optim.muon_groups`
    splits a model.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.02,
        momentum: float = 0.95,
        weight_decay: float = 0.0,
        nesterov: bool = True,
        ns_steps: int = 5,
        normalize: bool = False,
        aux_lr: float | None = None,
        aux_momentum: float = 0.9,
        aux_weight_decay: float | None = None,
        ns_precision: str = "auto",
    ) -> None:
        owner = "Muon"
        ns_precision = one_of(owner, "ns_precision", ns_precision, ("auto", *NS_PRECISIONS))
        lr = number(owner, "lr", lr, low=0.0, low_open=True, hint="0.02 is usual")
        aux_lr = number(owner, "aux_lr", lr if aux_lr is None else aux_lr, low=0.0, low_open=True)
        for name, mu in (("momentum", momentum), ("aux_momentum", aux_momentum)):
            number(owner, name, mu, low=0.0, high=1.0, high_open=True, hint="0.95 or 0.9")
        weight_decay = number(owner, "weight_decay", weight_decay, low=0.0)
        if aux_weight_decay is not None:
            aux_weight_decay = number(owner, "aux_weight_decay", aux_weight_decay, low=0.0)
        if nesterov and (momentum == 0 or aux_momentum == 0):
            raise ConfigError("Muon: Nesterov momentum needs momentum and aux_momentum > 0")
        for name, flag in (("nesterov", nesterov), ("normalize", normalize)):
            if not isinstance(flag, bool):
                raise ConfigError(f"Muon: {name} must be true or false, got {flag!r}")
        self.aux_defaults = {"lr": aux_lr, "momentum": float(aux_momentum)}
        self.aux_weight_decay = aux_weight_decay
        if isinstance(params, nn.Module):
            raise ConfigError(
                "Muon takes parameters or groups, not a model: pass muon_groups(model, "
                "weight_decay) (striate.engine.optim), or use make_optimizer('muon', model, lr)"
            )
        params = list(params)
        if all(isinstance(p, torch.Tensor) for p in params):
            params = [{"params": params}]
        defaults = {
            "lr": lr,
            "momentum": float(momentum),
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "ns_steps": positive_int(owner, "ns_steps", ns_steps),
            "normalize": normalize,
            "ns_precision": ns_precision,
        }
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, with the group marked Muon's unless it says ``"muon": False``; such a group
        takes the SGD defaults (``aux_*``), a Muon group its ``ns_precision`` resolved."""
        group = dict(param_group)
        ps = group.get("params", [])
        group["params"] = [ps] if isinstance(ps, torch.Tensor) else list(ps)
        group.setdefault("muon", True)
        if group["muon"] and any(p.ndim < 2 for p in group["params"]):
            raise ConfigError(
                "Muon: a group marked muon holds a parameter of fewer than two dimensions; "
                "biases and norm layers go in a group with muon=False (muon_groups does it)"
            )
        if not group["muon"]:
            for key, value in self.aux_defaults.items():
                group.setdefault(key, value)
            if self.aux_weight_decay is not None:
                group["weight_decay"] = self.aux_weight_decay
        super().add_param_group(group)
        if group["muon"] and group["params"]:
            _ns_dtype(self.param_groups[-1])  # "auto" resolved now, and saved so in the state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            update = self._muon_step if group["muon"] else self._sgd_step
            for p in group["params"]:
                if p.grad is not None:
                    update(p, group)
        return loss

    def _momentum(self, p: torch.Tensor, g: torch.Tensor, group: dict) -> torch.Tensor:
        """``B ← μ·B + g`` (B = g at the first step); returns ``g + μ·B`` (Nesterov) or ``B``."""
        mu = group["momentum"]
        if mu == 0:
            return g
        state = self.state[p]
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.detach().clone()
        else:
            buf.mul_(mu).add_(g)
        return g.add(buf, alpha=mu) if group["nesterov"] else buf

    def _muon_step(self, p: torch.Tensor, group: dict) -> None:
        m = self._momentum(p, p.grad, group)
        lr = group["lr"]
        if group["normalize"]:
            norm = torch.linalg.vector_norm(p)
            p.mul_(torch.where(norm > 0, math.sqrt(p.shape[0]) / norm, 1.0))
        if group["weight_decay"]:
            p.mul_(1 - lr * group["weight_decay"])
        o = orthogonalize(m.reshape(m.shape[0], -1), group["ns_steps"], dtype=_ns_dtype(group))
        p.add_(o.view_as(p), alpha=-lr)

    def _sgd_step(self, p: torch.Tensor, group: dict) -> None:
        g = p.grad
        if group["weight_decay"]:
            g = g.add(p, alpha=group["weight_decay"])
        p.add_(self._momentum(p, g, group), alpha=-group["lr"])
