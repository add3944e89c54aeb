"""Per-layer activation statistics against hand-computed values, and the lecture's
initialisation experiment reproduced: the asserted layer stds match its qualitative result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from striate.errors import ConfigError
from striate.train.activations import (
    LayerStats,
    activation_stats,
    init_experiment,
    plot_histograms,
    plot_layer_stats,
)


def test_stats_match_the_outputs_computed_by_hand():
    torch.manual_seed(0)
    lin = nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(4))
        lin.bias.copy_(torch.tensor([-100.0, -100.0, 0.0, 0.0]))  # units 0 and 1 never fire
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(4, 3), nn.Tanh())
    x = torch.randn(50, 4)
    stats = activation_stats(model, x)
    assert [s.name for s in stats] == ["1", "3"] and [s.kind for s in stats] == ["relu", "tanh"]
    relu_out = torch.relu(lin(x)).detach()
    tanh_out = model(x).detach()
    assert stats[0].mean == pytest.approx(float(relu_out.mean()), abs=1e-6)
    assert stats[0].std == pytest.approx(float(relu_out.std(unbiased=False)), abs=1e-6)
    assert stats[0].dead_frac == 0.5
    assert stats[0].zero_frac == pytest.approx(float((relu_out == 0).float().mean()))
    assert stats[0].saturated_frac is None and stats[1].dead_frac is None
    assert stats[1].saturated_frac == pytest.approx(float((tanh_out.abs() > 0.99).float().mean()))
    assert sum(stats[1].hist[0]) == tanh_out.numel()  # the histogram covers every value
    assert stats[0].shape == (4,)


def test_dead_units_of_a_conv_layer_are_channels():
    conv = nn.Conv2d(1, 4, 3, padding=1)
    with torch.no_grad():
        conv.bias.copy_(torch.tensor([-1e3, 0.0, 0.0, 0.0]))  # channel 0 is off everywhere
    stats = activation_stats(nn.Sequential(conv, nn.ReLU()), torch.randn(8, 1, 6, 6))
    assert stats[0].dead_frac == 0.25


def test_hooks_are_removed_and_no_gradient_is_kept():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sigmoid())
    activation_stats(model, torch.randn(5, 3))
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_a_model_without_activation_modules_watches_its_weighted_layers():
    stats = activation_stats(nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)), torch.randn(4, 3))
    assert [s.name for s in stats] == ["0", "1"] and stats[1].shape == (2,)


def test_plots_are_figures_and_stats_round_trip_through_dicts():
    stats = activation_stats(
        nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2), nn.Tanh()), torch.randn(9, 3)
    )
    again = [LayerStats.from_dict(s.to_dict()) for s in stats]
    assert again == stats
    assert isinstance(plot_histograms([s.to_dict() for s in stats]), Figure)
    assert isinstance(plot_layer_stats(stats), Figure)


# --------------------------------------------------------------------------- the experiment


@pytest.fixture(scope="module")
def tanh():
    return init_experiment("tanh", samples=500)


@pytest.fixture(scope="module")
def relu():
    return init_experiment("relu", inits=("0.01", "xavier", "he"), samples=500)


def test_tanh_with_0_01_collapses_to_zero(tanh):
    stds = tanh.stds("0.01")
    # the lecture: 0.213, 0.048, 0.011, ...: each layer multiplies the std by about 0.01·√500
    assert stds[0] == pytest.approx(0.01 * math.sqrt(500), rel=0.1)
    assert all(b < 0.3 * a for a, b in zip(stds, stds[1:], strict=False) if a > 1e-30)
    assert stds[-1] < 1e-6


def test_tanh_with_1_0_saturates(tanh):
    stds = tanh.stds("1.0")
    assert all(s > 0.95 for s in stds)  # the lecture: std 0.98 in every layer
    sat = [s.saturated_frac for s in tanh.stats["1.0"]]
    assert min(sat) > 0.8  # almost every neuron at -1 or 1


def test_xavier_keeps_tanh_in_a_healthy_band(tanh):
    stds = tanh.stds("xavier")
    # the lecture: 0.63 at layer 1 shrinking slowly to 0.23 at layer 10
    assert stds[0] == pytest.approx(0.63, abs=0.05)
    assert 0.15 < stds[-1] < 0.35
    assert all(0.7 < b / a < 1.0 for a, b in zip(stds, stds[1:], strict=False))
    assert max(s.saturated_frac for s in tanh.stats["xavier"]) < 0.05


def test_he_keeps_relu_stable_while_xavier_halves_the_variance(relu):
    he, xavier = np.array(relu.stds("he")), np.array(relu.stds("xavier"))
    # He: the lecture's 0.82…0.84 at every depth
    assert he.min() > 0.5 and he.max() < 1.2 and he[-1] / he[0] > 0.7
    # Xavier under ReLU: each layer halves the variance, so the std shrinks by 1/√2
    ratios = xavier[1:] / xavier[:-1]
    assert np.median(ratios) == pytest.approx(1 / math.sqrt(2), abs=0.05)
    assert xavier[-1] < 0.1 * he[-1]
    assert relu.stds("0.01")[-1] < 1e-6


def test_experiment_plots_and_serialises(tanh):
    fig = tanh.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert len(fig.axes[1].get_lines()) == 4  # one std line per initialisation
    hist = tanh.plot_histograms()
    assert len(hist.axes) == 4 * 10
    d = tanh.to_dict()
    assert d["nonlinearity"] == "tanh" and len(d["stats"]["xavier"]) == 10


def test_experiment_rejects_bad_options():
    with pytest.raises(ConfigError, match="nonlinearity"):
        init_experiment("swish")
    with pytest.raises(ConfigError, match="initialisation 'big'"):
        init_experiment(inits=("big",))
    with pytest.raises(ConfigError, match="layers"):
        init_experiment(layers=0)
