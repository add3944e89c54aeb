"""Activation statistics per layer, and the lectures' initialisation experiment.

    stats = activation_stats(model, x)              # one LayerStats per activation layer
    plot_histograms(stats)                          # a matplotlib Figure
    init_experiment("tanh").plot()      # std per layer under 0.01·N(0,1), N(0,1), Xavier, He

What is recorded (CS231n lecture 6, "activation functions" and "weight initialisation"): for
each nonlinearity module (ReLU, tanh, sigmoid, ...; or the Conv/Linear outputs when a model has
none as modules) the mean and standard deviation of its output on a batch, the fraction of
exactly-zero outputs, the fraction of *dead* ReLU units (a unit, i.e. a channel of a conv map or a
neuron of a linear layer, whose output is zero for every example and position of the batch: no
gradient reaches its weights), and for tanh/sigmoid the fraction of *saturated* outputs
(|tanh| > 0.99, sigmoid < 0.01 or > 0.99: there the local gradient is below 0.02 and "kills" the
gradient flowing back).

The initialisation experiment is the lecture's: unit-Gaussian data (1000×500) through 10 fully
connected layers of 500 units without biases, ``H = f(X·W)``, with ``W`` drawn as
``0.01·N(0,1)``, ``N(0,1)``, Xavier ``N(0,1)/√fan_in`` (Glorot & Bengio 2010, in the lecture's
form with gain 1) or He ``N(0,1)/√(fan_in/2)`` (He et al. 2015, arXiv:1502.01852). Its result:
with 0.01 the activations collapse to zero layer by layer; with 1.0 tanh saturates at ±1; Xavier
keeps tanh's std in a usable band and He keeps ReLU's constant, while Xavier under ReLU halves
the variance at every layer (the std shrinks by 1/√2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from striate.errors import ConfigError
from striate.evaluate.histograms import LayerStats, plot_histograms, plot_layer_stats

__all__ = [
    "INITS",
    "InitExperiment",
    "LayerStats",
    "activation_stats",
    "init_experiment",
    "plot_histograms",
    "plot_layer_stats",
]

RELU_LIKE = (nn.ReLU, nn.ReLU6)
SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid)
ACTIVATIONS = (
    RELU_LIKE
    + SATURATING
    + (nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Softplus, nn.Mish, nn.PReLU)
)
WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
SATURATION = 0.99  # |tanh| above this (sigmoid within 0.01 of 0 or 1) counts as saturated
INITS = ("0.01", "1.0", "xavier", "he")
HIST_RANGE = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Tanh | nn.Hardtanh):
        return "tanh"
    if isinstance(m, nn.Sigmoid | nn.Hardsigmoid):
        return "sigmoid"
    if isinstance(m, RELU_LIKE):
        return "relu"
    return type(m).__name__.lower()


def layer_stats(
    name: str, kind: str, y: torch.Tensor, bins: int = 30, value_range: tuple | None = None
) -> LayerStats:
    """The statistics of one output ``y`` (batch first) of a layer of ``kind``."""
    y = y.detach().float()
    flat = y.reshape(-1)
    finite = flat[torch.isfinite(flat)]
    mean = float(finite.mean()) if finite.numel() else math.nan
    std = float(finite.std(unbiased=False)) if finite.numel() else math.nan
    zero = float((flat == 0).float().mean()) if flat.numel() else math.nan
    dead = saturated = None
    if kind == "relu" and y.ndim >= 2:
        units = y.transpose(0, 1).reshape(y.shape[1], -1)  # channel/neuron × (batch · positions)
        dead = float((units == 0).all(dim=1).float().mean())
    elif kind == "tanh":
        saturated = float((flat.abs() > SATURATION).float().mean())
    elif kind == "sigmoid":
        saturated = float(((flat < 1 - SATURATION) | (flat > SATURATION)).float().mean())
    if value_range is None:
        value_range = HIST_RANGE.get(kind)
    if value_range is None and finite.numel():
        lo, hi = float(finite.min()), float(finite.max())
        value_range = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    counts, edges = (
        np.histogram(finite.cpu().numpy(), bins=bins, range=value_range)
        if finite.numel()
        else (np.zeros(0, int), np.zeros(0))
    )
    return LayerStats(
        name=name,
        kind=kind,
        shape=tuple(y.shape[1:]),
        mean=mean,
        std=std,
        zero_frac=zero,
        dead_frac=dead,
        saturated_frac=saturated,
        hist=([int(c) for c in counts], [float(e) for e in edges]),
    )


def watched_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The activation modules of ``model`` in forward-registration order; its Conv/Linear layers
    when it has none as modules (activations applied as functions are invisible to hooks)."""
    acts = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    if acts:
        return acts
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED)]


def activation_stats(
    model: nn.Module,
    x: torch.Tensor,
    *,
    layers: Iterable[tuple[str, nn.Module]] | None = None,
    bins: int = 30,
) -> list[LayerStats]:
    """Forward ``x`` through ``model`` (no gradient, in its current train/eval mode) and return
    the statistics of each watched layer's output, in the order the layers ran."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"activation_stats takes a torch.nn.Module, got {type(model).__name__}")
    watched = list(watched_layers(model) if layers is None else layers)
    found: list[LayerStats] = []
    seen: dict[str, int] = {}

    def hook(name: str, kind: str):
        def record(_m: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                n = seen.get(name, 0)
                seen[name] = n + 1
                label = name if n == 0 else f"{name}#{n + 1}"  # a module used twice
                found.append(layer_stats(label or kind, kind, out, bins))

        return record

    handles = [m.register_forward_hook(hook(n, _kind(m))) for n, m in watched]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


# ------------------------------------------------------------------ the initialisation experiment


@dataclass
class InitExperiment:
    """Per initialisation, the statistics of each hidden layer's output (layer 1 first)."""

    nonlinearity: str
    layers: int
    units: int
    samples: int
    stats: dict[str, list[LayerStats]]

    def stds(self, init: str) -> list[float]:
        return [s.std for s in self.stats[init]]

    def means(self, init: str) -> list[float]:
        return [s.mean for s in self.stats[init]]

    def to_dict(self) -> dict[str, Any]:
        stats = {k: [s.to_dict() for s in v] for k, v in self.stats.items()}
        return {**vars(self), "stats": stats}

    def plot(self) -> Figure:
        """Layer mean and std against depth, one line per initialisation (std on a log axis,
        where collapse and saturation show as a falling line and a flat one near 1)."""
        fig = Figure(figsize=(10, 3.6))
        ax_mean, ax_std = fig.subplots(1, 2)
        x = np.arange(1, self.layers + 1)
        for init in self.stats:
            ax_mean.plot(x, self.means(init), "o-", label=_LABELS.get(init, init))
            ax_std.plot(x, np.maximum(self.stds(init), 1e-30), "o-", label=_LABELS.get(init, init))
        ax_std.set_yscale("log")
        ax_mean.set_title(f"layer mean ({self.nonlinearity})")
        ax_std.set_title(f"layer std ({self.nonlinearity})")
        for ax in (ax_mean, ax_std):
            ax.set_xlabel("hidden layer")
            ax.set_xticks(x)
        ax_std.legend(fontsize=8)
        fig.tight_layout()
        return fig

    def plot_histograms(self) -> Figure:
        """The raw distributions: one row per initialisation, one histogram per layer."""
        inits = list(self.stats)
        fig = Figure(figsize=(1.4 * self.layers, 1.3 * len(inits) + 0.4))
        axes = fig.subplots(len(inits), self.layers, squeeze=False)
        for r, init in enumerate(inits):
            for c, s in enumerate(self.stats[init]):
                ax = axes[r, c]
                counts, edges = s.hist
                if len(counts):
                    ax.stairs(counts, edges, fill=True)
                ax.set_yticks([])
                ax.tick_params(labelsize=6)
                if r == 0:
                    ax.set_title(f"layer {c + 1}", fontsize=7)
                if c == 0:
                    ax.set_ylabel(_LABELS.get(init, init), fontsize=7)
        fig.tight_layout()
        return fig


_LABELS = {
    "0.01": "0.01·N(0,1)",
    "1.0": "N(0,1)",
    "xavier": "Xavier N(0,1)/√fan_in",
    "he": "He N(0,1)/√(fan_in/2)",
}
_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}


def _init_scale(init: str, fan_in: int) -> float:
    key = init.strip().lower()
    if key == "xavier":
        return 1.0 / math.sqrt(fan_in)
    if key in ("he", "kaiming"):
        return math.sqrt(2.0 / fan_in)
    try:
        scale = float(key)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError(
            f"unknown initialisation {init!r}: give xavier, he, or a positive std such as 0.01"
        )
    return scale


def init_experiment(
    nonlinearity: str = "tanh",
    inits: Sequence[str] = INITS,
    layers: int = 10,
    units: int = 500,
    samples: int = 1000,
    seed: int = 0,
    bins: int = 30,
) -> InitExperiment:
    """The lecture's experiment: unit-Gaussian data through ``layers`` fully connected layers of
    ``units`` units (no biases) with ``nonlinearity``, under each initialisation of ``inits``
    ("0.01", "1.0" or any std, "xavier", "he"); every init sees the same data and seed."""
    if nonlinearity not in _NONLINEARITIES:
        raise ConfigError(
            f"unknown nonlinearity {nonlinearity!r}; choose one of {', '.join(_NONLINEARITIES)}"
        )
    for name, v in (("layers", layers), ("units", units), ("samples", samples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"init_experiment: {name} must be a positive integer, got {v!r}")
    if isinstance(inits, str) or not inits:
        raise ConfigError(f"inits must be a non-empty list of names, got {inits!r}")
    for init in inits:
        _init_scale(init, units)  # validate names before any work
    f = _NONLINEARITIES[nonlinearity]
    value_range = HIST_RANGE.get(nonlinearity, (-1.0, 1.0) if nonlinearity != "relu" else None)
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(samples, units, generator=g)
    stats: dict[str, list[LayerStats]] = {}
    for i, init in enumerate(inits):
        gw = torch.Generator().manual_seed(seed * 1000 + 1 + i)
        h = data
        per_layer = []
        for layer in range(layers):
            w = torch.randn(h.shape[1], units, generator=gw) * _init_scale(init, h.shape[1])
            h = f(h @ w)
            rng = value_range if value_range is not None else (0.0, max(float(h.max()), 1e-12))
            per_layer.append(
                layer_stats(f"layer {layer + 1}", nonlinearity, h, bins=bins, value_range=rng)
            )
        stats[str(init)] = per_layer
    return InitExperiment(nonlinearity, layers, units, samples, stats)
