"""Training curves: the smoothing against the formula written out, the figures' data and axes."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from striate.errors import ConfigError
from striate.evaluate.curves import plot_history, plot_losses, plot_steps, smooth


def _ema_by_hand(values, beta):
    out, avg = [], 0.0
    for i, x in enumerate(values):
        avg = beta * avg + (1 - beta) * x
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def test_smooth_small_example_worked_by_hand():
    # beta = 0.5: avg = 0.5, 1.25, 2.125; divided by 0.5, 0.75, 0.875
    np.testing.assert_allclose(smooth([1.0, 2.0, 3.0], beta=0.5), [1.0, 5 / 3, 17 / 7])


def test_smooth_matches_the_loop_and_keeps_constants():
    x = np.random.default_rng(0).normal(size=300)
    for beta in (0.0, 0.5, 0.9, 0.98):
        np.testing.assert_allclose(smooth(x, beta), _ema_by_hand(x, beta), rtol=1e-10)
    # the bias correction makes a constant series come out unchanged from the first step
    np.testing.assert_allclose(smooth([3.0] * 50), np.full(50, 3.0))
    assert smooth([]).shape == (0,)
    out = smooth([1.0, float("nan"), 1.0], 0.9)
    assert out[0] == 1.0 and np.isnan(out[1:]).all()


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5, "0.9", True, None])
def test_smooth_rejects_bad_beta(beta):
    with pytest.raises(ConfigError, match=r"beta must be a number in \[0, 1\)"):
        smooth([1.0, 2.0], beta)


def test_smooth_rejects_non_numbers_and_2d():
    with pytest.raises(ConfigError, match="1-D"):
        smooth(np.ones((3, 2)))
    with pytest.raises(ConfigError, match="list of numbers"):
        smooth(["a", "b"])


def _lines(ax):
    return {line.get_label(): (line.get_xdata(), line.get_ydata()) for line in ax.lines}


def test_history_panels_hold_the_given_values():
    nan = float("nan")
    history = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 2.5, "train_acc": 0.3, "val_acc": 0.25},
        {"epoch": 2, "train_loss": 1.0, "val_loss": nan, "train_acc": 0.6, "lr": 0.1},
        {"epoch": 3, "train_loss": 0.5, "val_loss": 1.5, "train_acc": 0.8, "val_acc": 0.7},
    ]
    fig = plot_history(history)
    assert isinstance(fig, Figure)
    loss, acc = _lines(fig.axes[0]), _lines(fig.axes[1])
    np.testing.assert_array_equal(loss["train"][0], [1, 2, 3])
    np.testing.assert_array_equal(loss["train"][1], [2.0, 1.0, 0.5])
    # NaN and missing epochs are skipped, so the line bridges them
    np.testing.assert_array_equal(loss["validation"][0], [1, 3])
    np.testing.assert_array_equal(loss["validation"][1], [2.5, 1.5])
    np.testing.assert_allclose(acc["train"][1], [30.0, 60.0, 80.0])  # shown in %
    np.testing.assert_allclose(acc["validation"][1], [25.0, 70.0])
    assert fig.axes[1].get_ylabel() == "%"
    assert "70.00% at epoch 3" in fig.axes[1].get_title()
    assert all(line.get_marker() == "o" for line in fig.axes[0].lines)


def test_history_without_validation_or_accuracy():
    many = [{"epoch": e, "train_loss": 1.0 / e} for e in range(1, 101)]
    fig = plot_history(many)
    assert list(_lines(fig.axes[0])) == ["train"]
    assert fig.axes[0].lines[0].get_marker() in ("None", None, "")  # no markers for 100 epochs
    assert len(fig.axes[1].lines) == 0
    assert "no accuracy recorded" in [t.get_text() for t in fig.axes[1].texts]
    empty = plot_history([])
    assert [t.get_text() for ax in empty.axes for t in ax.texts] == [
        "no loss recorded",
        "no accuracy recorded",
    ]


def test_history_bad_input():
    with pytest.raises(ConfigError, match="one dict per epoch"):
        plot_history({"epoch": 1})
    with pytest.raises(ConfigError, match=r"history\[1\] must be a dict"):
        plot_history([{"epoch": 1}, 0.5])
    with pytest.raises(ConfigError, match="train_loss must be a list of numbers"):
        plot_history([{"epoch": 1, "train_loss": "low"}])


def test_steps_panels_and_log_scale():
    n = 40
    lr = np.geomspace(1e-6, 1.0, n)
    loss = np.linspace(3, 1, n) + np.random.default_rng(1).random(n)
    fig = plot_steps({"step": list(range(n)), "lr": list(lr), "loss": list(loss)})
    assert [ax.get_title() for ax in fig.axes] == ["learning rate", "training loss"]
    assert fig.axes[0].get_yscale() == "log"  # six decades
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), lr)
    smoothed = _lines(fig.axes[1])["smoothed (β=0.98)"][1]
    np.testing.assert_allclose(smoothed, _ema_by_hand(loss, 0.98))

    one_cycle = np.concatenate([np.linspace(0.01, 0.5, n // 2), np.linspace(0.5, 0.01, n // 2)])
    mom = np.concatenate([np.linspace(0.95, 0.85, n // 2), np.linspace(0.85, 0.95, n // 2)])
    fig = plot_steps({"lr": one_cycle.tolist(), "momentum": mom.tolist()})
    assert [ax.get_title() for ax in fig.axes] == ["learning rate", "momentum"]
    assert fig.axes[0].get_yscale() == "linear"  # 50×: under two decades, stays linear
    np.testing.assert_array_equal(fig.axes[1].lines[0].get_xdata(), np.arange(n))
    assert [t.get_text() for t in plot_steps({}).axes[0].texts] == ["no per-step values recorded"]


def test_steps_bad_input():
    with pytest.raises(ConfigError, match="valid keys are step, lr, momentum, loss"):
        plot_steps({"lr": [0.1], "learning_rate": [0.1]})
    with pytest.raises(ConfigError, match="one value per step"):
        plot_steps({"step": [0, 1, 2], "lr": [0.1, 0.1]})
    with pytest.raises(ConfigError, match="dict of per-step lists"):
        plot_steps([0.1, 0.2])


def test_losses_one_smoothed_line_per_curve():
    rng = np.random.default_rng(2)
    curves = {"sgd": rng.random(30).tolist(), "adam": rng.random(50).tolist()}
    fig = plot_losses(curves, beta=0.9, title="optimisers")
    lines = _lines(fig.axes[0])
    assert list(lines) == ["sgd", "adam"]
    for name, values in curves.items():
        np.testing.assert_array_equal(lines[name][0], np.arange(len(values)))
        np.testing.assert_allclose(lines[name][1], _ema_by_hand(values, 0.9))
    assert fig.axes[0].get_title() == "optimisers"
    with pytest.raises(ConfigError, match="non-empty dict"):
        plot_losses({})
    with pytest.raises(ConfigError, match="beta"):
        plot_losses({"sgd": [1.0]}, beta=2)


def test_epoch_ticks_are_whole_epochs():
    history = [{"epoch": e, "train_loss": 1 / e, "val_acc": 0.5 + e / 10} for e in (1, 2, 3)]
    fig = plot_history(history)
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
