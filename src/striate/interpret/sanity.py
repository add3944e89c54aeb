"""The model-randomisation sanity check: does an attribution map change when the model does?

Adebayo et al. (NeurIPS 2018, "Sanity Checks for Saliency Maps", §3–4.1): re-initialise the
network's weights and compute the method's map again. A map that stays the same when the weights
are random is not explaining the model (it is closer to an edge detector of the input). The
*cascading* randomisation re-initialises the layers one after another from the top (the logits)
down, keeping the earlier ones random, and compares each map with the original one; the
*independent* randomisation re-initialises one layer at a time, the others trained. The measure
is Spearman's rank correlation of the maps, of their absolute values and of their signed values
(the paper's figure 4; its SSIM and HOG similarity are not computed here). The lecture slides
(lecture 13) do not mention the check.

A map N×C×H×W becomes one value per pixel before ranking: Σ_c |a| ("abs") and Σ_c a
("signed"); a map N×1×H×W is taken as it is (|a| for "abs"). Ranks of equal values are averaged,
as ``scipy.stats.spearmanr`` ranks them; a constant map has no rank correlation (NaN).

Re-initialisation calls each module's own ``reset_parameters()`` (torch's initialisation of that
layer, not the paper's truncated normal), on a deep copy of the model: the user's model is never
touched. For BatchNorm this resets the affine weights (γ = 1, β = 0) and the running statistics
(mean 0, variance 1), so a randomised BatchNorm is the identity in eval mode: the paper
re-initialises "the weights", and statistics measured under the trained weights describe
nothing once those weights are random. A unit is a layer with its BatchNorm (see
`randomization_units`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from striate.checks import boolean, fail, integer
from striate.errors import ConfigError, InputError
from striate.interpret.gradients import class_scores, targets_of
from striate.interpret.layers import check_inputs, evaluating, find_layer

__all__ = ["Randomized", "randomization_check", "randomization_units", "ranks", "spearman"]

NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
)
"""Normalisation layers, which `randomization_units` keeps with the layer before them."""


class Randomized(NamedTuple):
    """The maps' rank correlation with the original ones after one randomisation step: one value
    per image (NaN where a map is constant)."""

    layer: str
    spearman_abs: torch.Tensor
    spearman_signed: torch.Tensor


def randomization_units(model: nn.Module) -> dict[str, list[str]]:
    """The units the check randomises by default, top (output) first: the network's children
    that hold parameters, those of a Sequential / ModuleList taken one by one (a ResNet's or an
    EfficientNet's blocks), each normalisation layer together with the unit before it.

    Keys are labels ("_conv_stem+_bn0"), values the module names, as ``named_modules`` names them
    (for an `ImageClassifier`, its network's names)."""
    net = model.net if isinstance(getattr(model, "net", None), nn.Module) else model
    flat: list[tuple[str, nn.Module]] = []
    for name, child in net.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)):
            flat += [(f"{name}.{k}", m) for k, m in child.named_children()]
        else:
            flat.append((name, child))
    units: list[list[str]] = []
    for name, m in flat:
        if not any(True for _ in m.parameters()):
            continue
        if isinstance(m, NORMS) and units:
            units[-1].append(name)
        else:
            units.append([name])
    if not units:
        raise ConfigError("randomization_check: the model has no parameters to randomise")
    return {"+".join(names): names for names in reversed(units)}


Method = Callable[..., torch.Tensor]


def randomization_check(
    model: nn.Module,
    inputs: torch.Tensor,
    method: Method,
    target: Any = None,
    *,
    layers: Sequence[str | Sequence[str]] | Mapping[str, str | Sequence[str]] | None = None,
    cascade: bool = True,
    seed: int = 0,
    attributions: torch.Tensor | None = None,
) -> list[Randomized]:
    """Spearman correlations between `method`'s maps for the model and for copies of it with
    randomised layers, one `Randomized` per unit of `layers` in order (default
    `randomization_units`, top first): cumulative when `cascade` (the paper's cascading
    randomisation), one unit at a time otherwise (its independent randomisation).

    `method` is an attribution function of this package's shape, ``method(model, inputs,
    target)`` (bind its options with functools.partial). The targets are resolved once, on the
    trained model (None: its predicted classes), and used for every copy. `layers` entries are
    module names or groups of them (a mapping gives each group a label). Unit k is re-initialised
    from ``torch.manual_seed(seed + k)`` in either mode, so both modes draw the same weights;
    torch's global random state is restored after. `attributions` are the method's maps for the
    trained model when they have been computed already (with the same targets), to save one call.
    """
    owner = "randomization_check"
    x = check_inputs(owner, inputs, images=False)
    if not callable(method):
        raise fail(owner, "method", "an attribution function such as saliency", method)
    cascade = boolean(owner, "cascade", cascade)
    seed = integer(owner, "seed", seed)
    units = _units(owner, model, layers)
    with evaluating(model), torch.no_grad():
        t = targets_of(model, target, class_scores(owner, model, x))
    if attributions is None:
        original = _maps(owner, method(model, x, t), x)
    else:
        original = _maps(owner, attributions, x, "attributions must be")
    results = []
    work = copy.deepcopy(model) if cascade else None
    for k, (label, names) in enumerate(units.items()):
        if not cascade:
            work = copy.deepcopy(model)
        assert work is not None
        _reinitialise(owner, work, names, seed + k)
        maps = _maps(owner, method(work, x, t), x)
        results.append(
            Randomized(
                label,
                spearman(original[0], maps[0]),
                spearman(original[1], maps[1]),
            )
        )
    return results


def ranks(values: torch.Tensor) -> torch.Tensor:
    """The rank (1…D) of each value in its row of an N×D tensor, ties given their mean rank
    (``scipy.stats.rankdata(method="average")``), float64."""
    if not isinstance(values, torch.Tensor) or values.dim() != 2:
        raise InputError("ranks: values must be a tensor N×D")
    n, d = values.shape
    v, order = values.sort(1)
    new = torch.ones_like(v, dtype=torch.bool)
    new[:, 1:] = v[:, 1:] != v[:, :-1]
    run = new.flatten().cumsum(0) - 1  # one id per run of equal values; no run spans two rows
    pos = torch.arange(d, dtype=torch.float64, device=v.device).repeat(n)
    size = int(run[-1]) + 1 if run.numel() else 0
    first = torch.full((size,), float(d), dtype=torch.float64, device=v.device)
    first = first.scatter_reduce(0, run, pos, "amin")
    last = torch.zeros(size, dtype=torch.float64, device=v.device).scatter_reduce(
        0, run, pos, "amax"
    )
    mean_rank = ((first + last) / 2 + 1)[run].view(n, d)
    return torch.empty_like(mean_rank).scatter_(1, order, mean_rank)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each row of `a` with the same row of `b` (N×… each,
    flattened per row): Pearson's correlation of their average ranks; NaN for a constant row."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        raise InputError("spearman: a and b must be tensors of one shape N×…")
    if a.dim() == 1:
        a, b = a[None], b[None]
    ra, rb = ranks(a.detach().flatten(1)), ranks(b.detach().flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.square().sum(1) * rb.square().sum(1)).sqrt()


# --------------------------------------------------------------------------- helpers


def _units(owner: str, model: nn.Module, layers: Any) -> dict[str, list[str]]:
    """`layers` as labelled groups of module names, each name checked to be a module."""
    if layers is None:
        return randomization_units(model)
    items: list[tuple[str, Any]]
    if isinstance(layers, Mapping):
        items = list(layers.items())
    elif isinstance(layers, (list, tuple)):
        items = [(v if isinstance(v, str) else "+".join(map(str, v)), v) for v in layers]
    else:
        raise fail(owner, "layers", "a list of layer names (or groups of them) or None", layers)
    if not items:
        raise fail(owner, "layers", "a non-empty list of layer names", layers)
    units: dict[str, list[str]] = {}
    for label, names in items:
        group = [names] if isinstance(names, str) else list(names)
        if not group or not all(isinstance(g, str) for g in group):
            raise fail(owner, "layers", "layer names or groups of layer names", names)
        for g in group:
            find_layer(model, g)
        units[str(label)] = group
    return units


def _reinitialise(owner: str, model: nn.Module, names: list[str], seed: int) -> None:
    """Every parameter of the named modules of `model` drawn again by its module's
    ``reset_parameters()`` (BatchNorm's running statistics reset too), from `seed`."""
    modules = [find_layer(model, name) for name in names]
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in modules:
            for m in module.modules():
                reset = getattr(m, "reset_parameters", None) or getattr(
                    m, "_reset_parameters", None
                )
                if callable(reset):
                    reset()
                elif any(True for _ in m.parameters(recurse=False)):
                    raise ConfigError(
                        f"{owner}: {type(m).__name__} in {names[0]!r} has parameters but no "
                        f"reset_parameters() to draw them again; randomise other layers with "
                        f"layers="
                    )


def _maps(
    owner: str, attributions: Any, x: torch.Tensor, what: str = "method must return"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_c |a|, Σ_c a) per pixel, N×H×W (a one-channel map: |a| and a)."""
    if not isinstance(attributions, torch.Tensor) or attributions.dim() < 2:
        got = type(attributions).__name__
        raise ConfigError(f"{owner}: {what} a tensor N×… (a map), got {got}")
    if attributions.shape[0] != x.shape[0]:
        raise ConfigError(
            f"{owner}: {what} one map per input ({x.shape[0]}), got shape "
            f"{tuple(attributions.shape)}"
        )
    a = attributions.detach().double()
    if a.dim() == 4:
        return a.abs().sum(1), a.sum(1)
    return a.abs(), a
