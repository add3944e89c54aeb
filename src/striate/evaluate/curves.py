"""Training curves: per-epoch loss and accuracy (or a task's metrics), per-step learning rate,
momentum and loss.

The training engine hands over plain Python data at the end of a run (a list of per-epoch dicts, a
dict of per-step lists); every function here returns a matplotlib ``Figure`` (no pyplot state) that
the caller saves or embeds.

Per-step losses are noisy, so they are drawn after a bias-corrected exponential moving average, the
smoothing of the LR finder (S. Gugger, "How do you find a good learning rate", 2018; the same
bias correction as Adam's moments, Kingma & Ba 2015, arXiv:1412.6980)::

    avg_i      = beta * avg_{i-1} + (1 - beta) * x_i,   avg_{-1} = 0
    smoothed_i = avg_i / (1 - beta ** (i + 1))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.signal import lfilter

from striate.checks import number
from striate.errors import ConfigError

__all__ = ["plot_history", "plot_losses", "plot_steps", "smooth"]

STEP_KEYS = ("step", "lr", "momentum", "loss", "grad_norm")
MARKERS_UP_TO = 30  # epochs or points; beyond this, markers would only blur the line


def _series(values: Any, name: str) -> np.ndarray:
    """`values` as a 1-D float64 array (None becomes NaN), or a ConfigError naming `name`."""
    try:
        arr = np.asarray(
            [np.nan if v is None else v for v in values]
            if isinstance(values, (list, tuple))
            else values,
            dtype=np.float64,
        )
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of numbers, got {values!r:.80}") from None
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a flat list of numbers (1-D), got shape {arr.shape}")
    return arr


def smooth(values: Sequence[float] | np.ndarray, beta: float = 0.98) -> np.ndarray:
    """Bias-corrected exponential moving average of `values` (formula in the module docstring).

    ``beta=0`` returns the values unchanged; a NaN or inf propagates to every later value, as a
    diverged loss should.
    """
    number("smooth", "beta", beta, low=0, high=1, high_open=True, hint="e.g. 0.98")
    x = _series(values, "values")
    if len(x) == 0:
        return x
    # avg_i = beta*avg_{i-1} + (1-beta)*x_i is the IIR filter b=[1-beta], a=[1, -beta].
    avg = lfilter([1.0 - beta], [1.0, -beta], x)
    return avg / (1.0 - beta ** np.arange(1, len(x) + 1))


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _log_if_wide(ax, values: np.ndarray, decades: float = 2.0) -> None:
    """Log y-axis when the positive finite values span more than `decades` powers of ten."""
    pos = values[np.isfinite(values) & (values > 0)]
    if len(pos) and pos.max() / pos.min() > 10.0**decades:
        ax.set_yscale("log")


def plot_history(
    history: Sequence[Mapping[str, Any]], metrics: Sequence[str] = ("loss", "acc")
) -> Figure:
    """One panel per metric per epoch, train and validation: by default loss and accuracy (in
    %), a classifier's; a task gives its own (`metrics=("loss", "psnr")`).

    `history` holds one dict per epoch with ``"epoch"`` and any of ``"train_<metric>"``,
    ``"val_<metric>"`` (accuracies as fractions in [0, 1]). A key missing or NaN in some epochs
    leaves a gap that the line bridges; other keys are ignored.
    """
    if isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence):
        raise ConfigError(
            f"history must be a list with one dict per epoch, got {type(history).__name__}"
        )
    for i, row in enumerate(history):
        if not isinstance(row, Mapping):
            raise ConfigError(
                f"history[{i}] must be a dict such as {{'epoch': 1, 'train_loss': 0.5}}, "
                f"got {type(row).__name__}"
            )
    epochs = _series([row.get("epoch", i + 1) for i, row in enumerate(history)], "epoch")
    keys = [f"{split}_{m}" for m in metrics for split in ("train", "val")]
    cols = {k: _series([row.get(k) for row in history], k) for k in keys}

    fig = Figure(figsize=(5 * len(metrics), 4))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    marker = "o" if len(history) <= MARKERS_UP_TO else None
    for ax, kind in zip(axes, metrics, strict=True):
        percent = kind == "acc" or (kind.startswith("top") and kind[3:].isdigit())
        scale, label = (100.0, "%") if percent else (1.0, kind)
        title = "accuracy" if kind == "acc" else kind
        drawn = False
        for split, style in (("train", "-"), ("val", "--")):
            y = cols[f"{split}_{kind}"] * scale
            ok = np.isfinite(y)
            if ok.any():
                name = "train" if split == "train" else "validation"
                ax.plot(epochs[ok], y[ok], style, marker=marker, ms=4, label=name)
                drawn = True
        ax.set_title(title, fontsize=10)
        if drawn:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        else:
            _no_data(ax, f"no {title} recorded")
        best = cols[f"val_{kind}"]
        if percent and np.isfinite(best).any():
            i = int(np.nanargmax(best))
            ax.set_title(
                f"{title} (best validation {best[i]:.2%} at epoch {epochs[i]:g})", fontsize=10
            )
    fig.tight_layout()
    return fig


def plot_steps(steps: Mapping[str, Sequence[float]], beta: float = 0.98) -> Figure:
    """Per-step panels: learning rate (log y when it spans more than two decades), momentum when
    given, the training loss smoothed with `smooth` (raw values faint behind) when given, and the
    gradient norm (log y when wide) when given.

    `steps` has ``"step"`` (optional, default 0, 1, ...), ``"lr"``, and optionally ``"momentum"``,
    ``"loss"`` and ``"grad_norm"`` (`GradientNormLogger`), all lists of the same length.
    """
    if not isinstance(steps, Mapping):
        raise ConfigError(
            f"steps must be a dict of per-step lists (keys {', '.join(STEP_KEYS)}), "
            f"got {type(steps).__name__}"
        )
    unknown = sorted(set(steps) - set(STEP_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in steps; the valid keys are {', '.join(STEP_KEYS)}"
        )
    cols = {k: _series(v, k) for k, v in steps.items()}
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"every list in steps needs one value per step; got lengths {lengths}")
    n = next(iter(lengths.values()), 0)
    x = cols.get("step", np.arange(n, dtype=np.float64))
    shown = ("lr", "momentum", "loss", "grad_norm")
    panels = [k for k in shown if k in cols and np.isfinite(cols[k]).any()]

    fig = Figure(figsize=(4.2 * max(len(panels), 1) + 0.8, 3.6))
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    if not panels:
        _no_data(axes[0], "no per-step values recorded")
    marker = "o" if n <= MARKERS_UP_TO else None
    for ax, key in zip(axes, panels, strict=False):
        y = cols[key]
        if key == "loss":
            ax.plot(x, y, color="C0", alpha=0.25, lw=0.8, label="raw")
            ax.plot(x, smooth(y, beta), color="C0", label=f"smoothed (β={beta:g})")
            ax.legend(fontsize=8)
            ax.set_title("training loss", fontsize=10)
        else:
            ok = np.isfinite(y)  # a resumed run's steps from before the norm was logged: NaN
            colour = {"lr": "C1", "momentum": "C2", "grad_norm": "C3"}[key]
            ax.plot(x[ok], y[ok], color=colour, marker=marker, ms=3)
            titles = {"lr": "learning rate", "momentum": "momentum", "grad_norm": "gradient norm"}
            ax.set_title(titles[key], fontsize=10)
            if key in ("lr", "grad_norm"):
                _log_if_wide(ax, y[ok])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_losses(
    curves: Mapping[str, Sequence[float]], beta: float = 0.98, title: str = "training loss"
) -> Figure:
    """Several training-loss curves (e.g. one per optimiser), each smoothed with `smooth`, in one
    plot against the step number (0, 1, ...)."""
    if not isinstance(curves, Mapping) or not curves:
        raise ConfigError(
            "curves must be a non-empty dict {name: per-step losses}, e.g. {'sgd': [...]}"
        )
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for name, values in curves.items():
        y = smooth(_series(values, f"curves[{name!r}]"), beta)
        ax.plot(np.arange(len(y)), y, label=str(name).replace("$", r"\$"))
    ax.set_xlabel("step")
    ax.set_ylabel(f"smoothed loss (β={beta:g})")
    ax.set_title(title, fontsize=10, parse_math=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
