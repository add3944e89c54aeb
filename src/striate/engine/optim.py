"""Optimisers by name, and parameter groups that keep weight decay off what it should not touch.

``make_optimizer`` builds one of torch's optimisers after checking its settings at the door.
Their update rules, with gradient ``g``, learning rate ``lr`` and momentum ``μ`` (CS231n
lecture 7; Kingma & Ba 2015, arXiv:1412.6980; Loshchilov & Hutter 2019, arXiv:1711.05101):

- ``"sgd"``: ``v ← μ·v + g``, ``p ← p - lr·v`` (torch's form; with a constant lr it is the
  lectures' ``v ← μ·v - lr·g``, ``p ← p + v`` with the velocity scaled by ``-lr``).
- ``"nesterov"`` (sgd with ``nesterov=True``): ``v ← μ·v + g``, ``p ← p - lr·(g + μ·v)``, the
  look-ahead update written in the variable ``p̃ = p + μ·v`` (Sutskever et al. 2013).
- ``"adagrad"``: ``s ← s + g²``, ``p ← p - lr·g / (√s + ε)`` (Duchi et al. 2011).
- ``"rmsprop"``: ``s ← α·s + (1-α)·g²`` (α = 0.99), ``b ← μ·b + g/(√s + ε)``, ``p ← p - lr·b``
  (Hinton's lecture 6e; ``μ = 0`` is plain RMSProp).
- ``"adam"``: bias-corrected moving averages of ``g`` and ``g²`` (β₁, β₂); weight decay is an
  L2 term added to ``g``, so it is rescaled by the adaptive step.
- ``"adamw"``: Adam with decoupled weight decay ``p ← p - lr·λ·p``, applied as is.
- ``"lbfgs"``: torch's L-BFGS (full batch, deterministic losses; call ``step(closure)``).
- ``"muon"``: the hidden layers' Nesterov momentum orthogonalised by Newton–Schulz, SGD for the
  rest (Jordan et al. 2024; `striate.engine.muon`). Its ``options``: ``aux_lr`` and
  ``aux_momentum`` (the SGD part's), ``ns_steps``, ``normalize``.

Weight decay (an L2 penalty ``λ/2·‖w‖²`` for the SGD family) is meant to shrink the weights
that multiply inputs. Biases and the scale and shift of normalisation layers are few and set
offsets and scales only; decaying them adds no useful regularisation, so ``param_groups`` puts
them, and every 1-D parameter, in a group with no decay ("no bias decay", He et al. 2019,
arXiv:1812.01187 §3.1; timm does the same). ``discriminative_groups`` gives earlier layers
smaller learning rates for fine-tuning (Howard & Ruder 2018, arXiv:1801.06146).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from striate.checks import is_number, number
from striate.engine.muon import Muon, split_hidden
from striate.errors import ConfigError
from striate.registry import Registry

__all__ = [
    "OPTIMIZERS",
    "check_options",
    "discriminative_groups",
    "make_optimizer",
    "muon_groups",
    "param_groups",
]


_NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,  # BatchNorm1d/2d/3d, SyncBatchNorm, lazy variants
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _check_weight_decay(weight_decay: Any, owner: str) -> float:
    return number(owner, "weight_decay", weight_decay, low=0.0, hint="5e-4 is usual for SGD")


def _check_lr(lr: Any, owner: str) -> float:
    return number(owner, "lr", lr, low=0.0, low_open=True, hint="try the LR finder")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Split the trainable parameters of ``model`` into a "decay" and a "no_decay" group.

    Exempt from decay: biases, every parameter of a normalisation layer (BatchNorm*, LayerNorm,
    GroupNorm, InstanceNorm*), every parameter with one dimension or none, and the names a
    model lists in a timm-style ``no_weight_decay()`` method. Frozen parameters are left out,
    and so are empty groups.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"param_groups needs an nn.Module, got {type(model).__name__}; pass the model"
        )
    wd = _check_weight_decay(weight_decay, "param_groups")
    listed = getattr(model, "no_weight_decay", None)
    exempt_names = set(listed()) if callable(listed) else set()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, _NORM_LAYERS)
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:  # frozen, or shared and already placed
                continue
            seen.add(id(p))
            full = f"{module_name}.{name}" if module_name else name
            exempt = is_norm or name == "bias" or p.ndim <= 1 or full in exempt_names
            (no_decay if exempt else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": wd, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]
    return [g for g in groups if g["params"]]


def _listed(item: Any) -> Any:
    """A parameter as it is; a group with its "params" made a list (a generator reads once)."""
    if not isinstance(item, dict):
        return item
    ps = item.get("params", [])
    return {**item, "params": [ps] if isinstance(ps, torch.Tensor) else list(ps)}


def _as_params(params_or_model: Any, weight_decay: float, exempt: bool) -> list[Any]:
    """The optimiser's first argument: groups for a model, the caller's list otherwise."""
    if isinstance(params_or_model, nn.Module):
        if exempt:
            params: list[Any] = param_groups(params_or_model, weight_decay)
        else:
            params = [p for p in params_or_model.parameters() if p.requires_grad]
    elif isinstance(params_or_model, torch.Tensor):
        params = [params_or_model]
    else:
        try:
            params = [_listed(p) for p in params_or_model]
        except TypeError:
            raise ConfigError(
                "make_optimizer: pass a model, an iterable of parameters or a list of parameter "
                f"groups (dicts), got {type(params_or_model).__name__}"
            ) from None
    if not params or all(isinstance(g, dict) and not g["params"] for g in params):
        raise ConfigError(
            "make_optimizer: there are no trainable parameters (all frozen or none given); "
            "unfreeze some layers (requires_grad=True) before building the optimiser"
        )
    return params


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` as a dict, if optimiser ``name`` has each of them (a ConfigError lists those it
    has); their values are checked by the optimiser."""
    entry = OPTIMIZERS.entry(name)
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"an optimiser's options are a table of settings, got {options!r}")
    options = dict(options or {})
    accepted = entry.meta.get("options", ())
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        its = f"its options are: {', '.join(accepted)}" if accepted else "it takes none"
        raise ConfigError(f"optimiser {entry.name!r} has no option {', '.join(unknown)}; {its}")
    return options


def make_optimizer(
    name: str,
    params_or_model: nn.Module | Iterable[Any],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float | None = None,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float | None = None,
    exempt: bool = True,
    options: Mapping[str, Any] | None = None,
) -> torch.optim.Optimizer:
    """A torch optimiser by name, settings checked; a model's norm and bias params get no decay.

    ``momentum`` (None: each optimiser's usual value, 0.9 for SGD and 0 for RMSProp) is used by
    "sgd", "nesterov" and "rmsprop", and given for "adam"/"adamw" it replaces beta1; ``betas`` by
    "adam" and "adamw";
    ``eps`` (None: torch's default for that optimiser) by the adaptive ones. Given a model and
    ``exempt=True`` the parameters are split by :func:`param_groups`; an iterable of parameters
    or of groups is used as it is. ``options`` are the optimiser's own settings (those of
    "muon"; the others have none).
    """
    entry = OPTIMIZERS.entry(name)
    key = entry.name
    options = check_options(key, options)
    lr = _check_lr(lr, f"{key} optimiser")
    wd = _check_weight_decay(weight_decay, f"{key} optimiser")
    hint = "0.9 is usual; 0 turns it off"
    number(key, "momentum", momentum, low=0.0, high=1.0, high_open=True, allow_none=True, hint=hint)
    if (
        not isinstance(betas, Sequence)
        or len(betas) != 2
        or not all(is_number(b) and 0.0 <= b < 1.0 for b in betas)
    ):
        raise ConfigError(
            f"betas must be two numbers in [0, 1) (0.9, 0.999 are usual), got {betas!r}"
        )
    number(key, "eps", eps, low=0.0, low_open=True, allow_none=True)
    if key == "nesterov":
        nesterov = True
    if momentum is None:
        momentum = {"sgd": 0.9, "nesterov": 0.9, "muon": 0.95}.get(key, 0.0)
    elif key in ("adam", "adamw"):
        betas = (momentum, betas[1])
    if key == "muon":
        nesterov = True
    if nesterov and key not in ("sgd", "nesterov", "muon"):
        raise ConfigError(
            f"nesterov applies to SGD only, not to {key}; use the 'nesterov' optimiser or set "
            "nesterov=False"
        )
    if nesterov and momentum == 0:
        raise ConfigError("Nesterov momentum needs momentum > 0 (0.9 is usual)")
    settings = _Settings(lr, wd, momentum, nesterov, tuple(float(b) for b in betas), eps)
    return entry.obj(params_or_model, settings, exempt, **options)


@dataclass(frozen=True)
class _Settings:
    """make_optimizer's checked settings, as its builders read them."""

    lr: float
    weight_decay: float
    momentum: float
    nesterov: bool
    betas: tuple[float, ...]
    eps: float | None

    def eps_kw(self) -> dict[str, float]:
        return {} if self.eps is None else {"eps": float(self.eps)}


def _sgd(params: Any, o: _Settings, exempt: bool) -> torch.optim.Optimizer:
    """SGD with momentum (Nesterov's with optimiser 'nesterov')"""
    groups = _as_params(params, o.weight_decay, exempt)
    return torch.optim.SGD(
        groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
    )


def _adagrad(params: Any, o: _Settings, exempt: bool) -> torch.optim.Optimizer:
    """Adagrad: per-parameter steps scaled by the root of the summed squared gradients"""
    groups = _as_params(params, o.weight_decay, exempt)
    return torch.optim.Adagrad(groups, lr=o.lr, weight_decay=o.weight_decay, **o.eps_kw())


def _rmsprop(params: Any, o: _Settings, exempt: bool) -> torch.optim.Optimizer:
    """RMSProp: steps scaled by a moving average of the squared gradients"""
    groups = _as_params(params, o.weight_decay, exempt)
    return torch.optim.RMSprop(
        groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **o.eps_kw()
    )


def _adam(params: Any, o: _Settings, exempt: bool) -> torch.optim.Optimizer:
    """Adam: moving averages of the gradient and its square, bias-corrected"""
    groups = _as_params(params, o.weight_decay, exempt)
    return torch.optim.Adam(
        groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, **o.eps_kw()
    )


def _adamw(params: Any, o: _Settings, exempt: bool) -> torch.optim.Optimizer:
    """AdamW: Adam with weight decay decoupled from the gradient step"""
    groups = _as_params(params, o.weight_decay, exempt)
    return torch.optim.AdamW(
        groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, **o.eps_kw()
    )


def _lbfgs(params_or_model: Any, o: _Settings, exempt: bool) -> torch.optim.LBFGS:
    """L-BFGS: full-batch quasi-Newton steps; one group, no weight decay (it has no such
    option)"""
    lr, weight_decay = o.lr, o.weight_decay
    advice = (
        "L-BFGS has no weight decay; add an L2 term to the loss instead, or use another "
        "optimiser (sgd, adamw)"
    )
    if weight_decay > 0:
        raise ConfigError(f"weight_decay={weight_decay} given with lbfgs: {advice}")
    params = _as_params(params_or_model, 0.0, exempt=False)
    groups = [g for g in params if isinstance(g, dict)]
    if len(groups) > 1:
        raise ConfigError(
            f"L-BFGS takes a single parameter group, got {len(groups)}; pass the model or a "
            "plain list of parameters"
        )
    if any(g.get("weight_decay", 0) for g in groups):
        raise ConfigError(f"a parameter group asks for weight decay: {advice}")
    return torch.optim.LBFGS(params, lr=lr)


def muon_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """``model``'s trainable parameters in `Muon`'s groups: the hidden weights of two or more
    dimensions (``"muon": True``), and the others split as `param_groups` splits them; the
    output layer and embeddings stay with SGD (`striate.engine.muon.split_hidden`)."""
    return split_hidden(model, param_groups(model, weight_decay))


def _muon(params: Any, o: _Settings, exempt: bool, **options: Any) -> torch.optim.Optimizer:
    """Muon: hidden weights' momentum orthogonalised by Newton-Schulz, SGD for the rest"""
    # a model is always split: Muon takes its hidden weights only
    groups = muon_groups(params, o.weight_decay) if isinstance(params, nn.Module) else params
    groups = _as_params(groups, o.weight_decay, exempt)
    return Muon(groups, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, **options)


def discriminative_groups(
    modules: Sequence[nn.Module],
    lr: float | Sequence[float],
    factor: float = 3.0,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """Parameter groups with a learning rate per layer group, each split into decay/no_decay.

    ``modules`` runs from the input side to the head. ``lr`` is the head's rate, and group
    ``i`` of ``n`` gets ``lr / factor**(n - 1 - i)`` (lr/9, lr/3, lr for three groups and
    factor 3, as in fastai's discriminative fine-tuning), or ``lr`` lists one rate per group.
    Parameters in none of the modules are not trained.
    """
    if isinstance(modules, nn.Module) or not all(isinstance(m, nn.Module) for m in modules):
        raise ConfigError(
            "discriminative_groups needs a list of nn.Modules, from the input side to the head "
            "(e.g. [model.stem, model.layers, model.head])"
        )
    n = len(modules)
    if n == 0:
        raise ConfigError("discriminative_groups: the list of modules is empty")
    if isinstance(lr, Sequence):
        if len(lr) != n:
            raise ConfigError(
                f"discriminative_groups: {len(lr)} learning rates for {n} module groups; "
                "give one per group or a single lr and a factor"
            )
        lrs = [_check_lr(v, "discriminative_groups") for v in lr]
    else:
        top = _check_lr(lr, "discriminative_groups")
        if not (is_number(factor) and math.isfinite(factor)) or factor < 1:
            raise ConfigError(
                f"discriminative_groups: factor must be a number ≥ 1 (3 or 10 are usual; 1 "
                f"gives every group the same lr), got {factor!r}"
            )
        lrs = [top / float(factor) ** (n - 1 - i) for i in range(n)]
    wd = _check_weight_decay(weight_decay, "discriminative_groups")
    groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for i, (module, group_lr) in enumerate(zip(modules, lrs, strict=True)):
        for g in param_groups(module, wd):
            if any(id(p) in seen for p in g["params"]):
                raise ConfigError(
                    f"discriminative_groups: module group {i} shares parameters with an earlier "
                    "one; each parameter must belong to one group"
                )
            seen.update(id(p) for p in g["params"])
            groups.append({**g, "lr": group_lr, "name": f"group{i}/{g['name']}"})
    return groups


OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry(
    "optimiser", normalize=lambda name: name.strip().lower()
)
OPTIMIZERS.add("sgd", _sgd)
OPTIMIZERS.add("nesterov", _sgd, "SGD with Nesterov momentum")
OPTIMIZERS.add("adagrad", _adagrad)
OPTIMIZERS.add("rmsprop", _rmsprop)
OPTIMIZERS.add("adam", _adam)
OPTIMIZERS.add("adamw", _adamw)
OPTIMIZERS.add("lbfgs", _lbfgs)
OPTIMIZERS.add(
    "muon",
    _muon,
    options=("aux_lr", "aux_momentum", "aux_weight_decay", "ns_steps", "ns_precision", "normalize"),
)
