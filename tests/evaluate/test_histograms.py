"""Layer statistics and their figures live in evaluate/ (reports draw them without train/)."""

from __future__ import annotations

from matplotlib.figure import Figure

from striate.evaluate.histograms import LayerStats, plot_histograms, plot_layer_stats
from striate.train import activations


def stats() -> list[LayerStats]:
    return [
        LayerStats("fc1", "relu", (4,), 0.5, 0.2, 0.25, dead_frac=0.5, hist=([1, 3], [0, 1, 2])),
        LayerStats("act", "tanh", (4,), 0.0, 0.9, 0.0, saturated_frac=0.1),
    ]


def test_a_dict_round_trip_and_the_figures():
    s = stats()
    assert [LayerStats.from_dict(x.to_dict()) for x in s] == s
    fig = plot_histograms([x.to_dict() for x in s])
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [
        "fc1 (relu)\nmean 0.5, std 0.2, dead 50%",
        "act (tanh)\nmean 0, std 0.9, sat. 10%",
    ]
    assert isinstance(plot_layer_stats(s), Figure) and len(plot_layer_stats(s).axes) == 2
    assert plot_histograms([]).axes[0].texts[0].get_text() == "no layers recorded"


def test_train_activations_keeps_the_names():
    assert activations.LayerStats is LayerStats
    assert activations.plot_histograms is plot_histograms
    assert activations.plot_layer_stats is plot_layer_stats
