"""The two experiments of Kevin Zakka's post "Learning What to Learn and When to Learn It"
(reference 000) that motivate loss-based sampling (SGD-S):

- `correlation_experiment`: train (1 epoch) recording every sample's loss and the norm of the
  gradient of its own loss, both before the step that sees it; Pearson r (the post: ≈ 0.83).
- `persistence_experiment`: train (5 epochs) twice from the same initialisation, with shuffling
  and without, recording every epoch's losses; the share of each loss decile that stays in it
  across all epochs, all but the first, and the last two (the post, top decile ≈ 30 / 60 / 85 %,
  bottom decile ≈ 30 / 50 / 70 %).

Both train with the post's recipe by default (`recipe`): MNIST, SGD lr 0.01 momentum 0.5, batch
64, constant lr, no weight decay, no augmentation, fp32 (numbers that do not depend on the CPU
having bf16). The post's network is PyTorch's MNIST example; here `mnist_cnn` (STN paper
baseline, no dropout or batch norm) by default. `write_correlation` / `write_persistence` write
the results and the figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from striate._atomic import atomic_write, save_figure, write_json
from striate.data import BatchLoader
from striate.engine.loss_sampling import LossRecorder
from striate.engine.sampling import LossTable, decile_persistence, loss_gradnorm_correlation
from striate.errors import ConfigError
from striate.models.registry import builder
from striate.train.assembly import RunData, load_run_data, prepare
from striate.train.config import TrainConfig

__all__ = [
    "POST_CORRELATION",
    "POST_PERSISTENCE",
    "CorrelationResult",
    "PersistenceResult",
    "correlation_experiment",
    "epoch_ranges",
    "persistence_experiment",
    "plot_correlation",
    "plot_persistence",
    "recipe",
    "write_correlation",
    "write_persistence",
]

POST_CORRELATION = 0.83
# the post's percent match for 5 epochs: (all, epochs 1-4, last two) in its 0-based numbering
POST_PERSISTENCE = {"top": (0.30, 0.60, 0.85), "bottom": (0.30, 0.50, 0.70)}


def recipe(
    *,
    data: str = "mnist",
    root: str | Path | None = None,
    model: str = "mnist_cnn",
    epochs: int = 1,
    batch_size: int = 64,
    lr: float = 0.01,
    seed: int = 0,
    train_size: int | None = None,
    device: str = "auto",
) -> TrainConfig:
    """The post's training recipe as a TrainConfig (SGD momentum 0.5, constant lr, no weight
    decay, no augmentation, no validation split, fp32), with the options the experiments take;
    an unknown model is refused here, before any data is read."""
    config = TrainConfig(
        data=data,
        root=None if root is None else str(root),
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        opt="sgd",
        lr=lr,
        momentum=0.5,
        nesterov=False,
        weight_decay=0.0,
        schedule="constant",
        precision="fp32",
        augment="none",
        val_size=0,
        train_size=train_size,
        seed=seed,
        device=device,
    )
    builder(config.model)  # the registry's did-you-mean error
    return config


@dataclass
class CorrelationResult:
    """Each training sample's loss and gradient norm (dataset order, from the last epoch) and
    their Pearson r."""

    config: TrainConfig
    losses: np.ndarray
    grad_norms: np.ndarray
    labels: np.ndarray
    r: float
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": "loss / gradient-norm correlation",
            "r": self.r,
            "post_r": POST_CORRELATION,
            "samples": len(self.losses),
            "epochs": self.config.epochs,
            "loss": _stats(self.losses),
            "grad_norm": _stats(self.grad_norms),
            "seconds": round(self.seconds, 1),
            "config": _recipe_dict(self.config),
        }


@dataclass
class PersistenceResult:
    """The loss history ((epochs, N), dataset order) of the shuffled and the unshuffled run, and
    per mode, per epoch range, per decile (0 = lowest loss … 9 = highest) the share that stays."""

    config: TrainConfig
    histories: dict[str, np.ndarray]  # "shuffled", "not shuffled"
    ranges: dict[str, slice]
    table: dict[str, dict[str, dict[int, float]]]  # mode → range → decile → share
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": "loss-decile persistence across epochs",
            "samples": int(next(iter(self.histories.values())).shape[1]),
            "epochs": self.config.epochs,
            "ranges": {name: _range_epochs(s) for name, s in self.ranges.items()},
            "deciles": "0 = lowest loss ... 9 = highest loss",
            "persistence": {
                mode: {name: {str(d): v for d, v in row.items()} for name, row in by_range.items()}
                for mode, by_range in self.table.items()
            },
            "post_5_epochs": {
                "ranges": ["epochs 1-5", "epochs 2-5", "epochs 4-5"],
                "top decile": list(POST_PERSISTENCE["top"]),
                "bottom decile": list(POST_PERSISTENCE["bottom"]),
            },
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
            "config": _recipe_dict(self.config),
        }


def correlation_experiment(
    config: TrainConfig | None = None, *, progress: bool = True, **options: Any
) -> CorrelationResult:
    """Train with `config` (default: `recipe(**options)`, 1 epoch) recording each sample's loss
    and gradient norm (before the step that sees it, as the post does); r by `np.corrcoef`.

    A model with batch norm in training mode has no per-sample gradient: ConfigError."""
    config = config if config is not None else recipe(**options)
    start = time.perf_counter()
    data = load_run_data(config)
    recorder = LossRecorder(LossTable(len(data.train)), grad_norms=True)
    run = prepare(config, progress=progress, data=data, callbacks=[recorder])
    run.trainer.fit(run.model, run.train)
    losses = recorder.table.losses.double().numpy().copy()
    norms = recorder.grad_norms.losses.double().numpy().copy()
    r = loss_gradnorm_correlation(losses, norms)
    labels = data.train.labels.numpy().copy()
    return CorrelationResult(config, losses, norms, labels, r, time.perf_counter() - start)


def epoch_ranges(epochs: int) -> tuple[dict[str, slice], list[str]]:
    """The post's three epoch ranges for `epochs` epochs: all, all but the first, the last two
    (its 5 epochs: 1-5, 2-5, 4-5), each named by its epochs counted from 1; a range of one epoch
    (trivially 100 %) or one equal to an earlier range is left out, and a note says so."""
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ConfigError(
            f"persistence: epochs must be at least 2 (a decile can only persist across "
            f"epochs; the post uses 5), got {epochs!r}"
        )
    wanted = (("all", 0), ("after the first", 1), ("last two", epochs - 2))
    ranges: dict[str, slice] = {}
    labels: dict[str, str] = {}
    notes = []
    for label, first in wanted:
        s = slice(first, epochs)
        name = f"epochs {first + 1}-{epochs}"
        if epochs - first < 2:
            notes.append(f"{label} ({name}) is one epoch: left out")
        elif name in ranges:
            notes.append(f"{label} is {name}, as {labels[name]}: shown once")
        else:
            ranges[name], labels[name] = s, label
    return ranges, notes


def persistence_experiment(
    config: TrainConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> PersistenceResult:
    """Train `config` (default: `recipe(epochs=5, **options)`) twice from the same
    initialisation, with the run's shuffled loader and with one in dataset order, recording
    every epoch's losses (dataset order); `decile_persistence` over `epoch_ranges`."""
    if config is None:
        config = recipe(**{"epochs": 5, **options})
    ranges, notes = epoch_ranges(config.epochs)
    start = time.perf_counter()
    data = load_run_data(config)
    histories: dict[str, np.ndarray] = {}
    for k, mode in enumerate(("shuffled", "not shuffled")):
        if log is not None:
            log(f"run {k + 1}/2: {mode}, {config.epochs} epochs of {len(data.train):,} images")
        histories[mode] = _train_history(
            config, data, shuffle=mode == "shuffled", progress=progress
        )
    table = {
        mode: {name: decile_persistence(h, s) for name, s in ranges.items()}
        for mode, h in histories.items()
    }
    return PersistenceResult(config, histories, ranges, table, notes, time.perf_counter() - start)


def _train_history(config: TrainConfig, data: RunData, *, shuffle: bool, progress: bool):
    recorder = LossRecorder(LossTable(len(data.train)), history=True)
    run = prepare(config, progress=progress, data=data, callbacks=[recorder])
    train = run.train
    if not shuffle:
        train = BatchLoader(
            data.train,
            config.batch_size,
            shuffle=False,
            normalize=data.normalizer,
            device=run.trainer.device,
            seed=config.seed,
        )
    run.trainer.fit(run.model, train)
    return recorder.history.numpy().copy()


# ---- figures -------------------------------------------------------------------------------


def plot_correlation(result: CorrelationResult) -> Figure:
    """Left, the post's plot: the losses re-indexed by sorted gradient norm; right, loss against
    gradient norm with r in the title."""
    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    order = np.argsort(result.grad_norms, kind="stable")
    dense = len(order) > 5000
    small = dict(s=2 if dense else 6, alpha=0.25 if dense else 0.6, linewidths=0, rasterized=True)
    left.scatter(np.arange(len(order)), result.losses[order], **small)
    left.set_xlabel("sample, by increasing gradient norm")
    left.set_ylabel("loss")
    left.set_title("losses re-indexed by sorted gradient norm")
    right.scatter(result.grad_norms, result.losses, **small)
    right.set_xlabel("gradient norm")
    right.set_ylabel("loss")
    right.set_title(f"Pearson r = {result.r:.3f} (post: {POST_CORRELATION})")
    cfg = result.config
    fig.suptitle(
        f"{cfg.data}, {cfg.model}: {len(order):,} samples, {cfg.epochs} epoch"
        f"{'s' if cfg.epochs != 1 else ''}, SGD lr {cfg.lr:g}"
    )
    fig.tight_layout()
    return fig


def plot_persistence(result: PersistenceResult) -> Figure:
    """Per mode (shuffled / not shuffled) a grouped bar chart: x the loss decile, a bar per
    epoch range, height the share of the decile that stays in it."""
    modes = list(result.table)
    fig = Figure(figsize=(6 * len(modes), 4.2))
    axes = np.atleast_1d(fig.subplots(1, len(modes), sharey=True))
    names = list(result.ranges)
    width = 0.8 / len(names)
    x = np.arange(10)
    for ax, mode in zip(axes, modes, strict=True):
        for k, name in enumerate(names):
            row = result.table[mode][name]
            ax.bar(x + (k - (len(names) - 1) / 2) * width, [100 * row[d] for d in x], width,
                   label=name)  # fmt: skip
        ax.set_xticks(x)
        ax.set_xticklabels(["0\nlowest"] + [str(d) for d in x[1:-1]] + ["9\nhighest"])
        ax.set_xlabel("loss decile")
        ax.set_title(mode)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("% of the decile staying in it")
    axes[0].legend(title="across", fontsize="small")
    cfg = result.config
    n = next(iter(result.histories.values())).shape[1]
    fig.suptitle(f"{cfg.data}, {cfg.model}: {n:,} samples, {cfg.epochs} epochs")
    fig.tight_layout()
    return fig


# ---- files ---------------------------------------------------------------------------------


def write_correlation(result: CorrelationResult, out: Path, *, samples: bool = True) -> list[Path]:
    """correlation.json, correlation.png and (with `samples`) samples.csv: index, label, loss,
    grad_norm of every training sample. Returns the paths written."""
    out = Path(out)
    written = [out / "correlation.json", out / "correlation.png"]
    write_json(written[0], result.summary())
    save_figure(plot_correlation(result), written[1], dpi=110)
    if samples:
        written.append(out / "samples.csv")
        n = len(result.losses)
        columns = np.column_stack([np.arange(n), result.labels, result.losses, result.grad_norms])
        with atomic_write(written[-1], "w") as f:
            np.savetxt(
                f, columns, fmt=("%d", "%d", "%.7g", "%.7g"), delimiter=",", comments="",
                header="index,label,loss,grad_norm",
            )  # fmt: skip
    return written


def write_persistence(result: PersistenceResult, out: Path) -> list[Path]:
    """persistence.json and persistence.png; returns the paths written."""
    out = Path(out)
    written = [out / "persistence.json", out / "persistence.png"]
    write_json(written[0], result.summary())
    save_figure(plot_persistence(result), written[1], dpi=110)
    return written


def _stats(v: np.ndarray) -> dict[str, float]:
    return {"mean": float(v.mean()), "median": float(np.median(v)), "max": float(v.max())}


def _range_epochs(s: slice) -> list[int]:
    return list(range(s.start + 1, s.stop + 1))


def _recipe_dict(config: TrainConfig) -> dict[str, Any]:
    keys = (
        "data",
        "model",
        "epochs",
        "batch_size",
        "opt",
        "lr",
        "momentum",
        "nesterov",
        "weight_decay",
        "schedule",
        "precision",
        "augment",
        "train_size",
        "seed",
        "device",
    )
    return {k: getattr(config, k) for k in keys}
