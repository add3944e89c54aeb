"""Training diagnostics: the lectures' sanity checks and babysitting, run on any model and data.

    report = doctor(models.create("convnet-small", 10, (1, 8, 8)), load_dataset("digits"))
    print(report.table_text())          # or rich: console.print(report.table())
    report.failed                       # True when a check failed
    report.figures()                    # {"doctor_activations.png": Figure, ...}

Each check is a small function on a copy of the model (the model passed in is never changed) and
returns a `Check` with a status, a value and one line of advice. The checks and their thresholds
(CS231n lecture 6, "babysitting the learning process"; CS231n notes "Neural Networks Part 3"):

==================  ===============================================================================
initial_loss        loss of the untrained model against ln C (softmax, scores near 0: every class
                    p = 1/C) or C - 1 (hinge, margin 1). pass within 20 %, fail beyond 50 % (or
                    non-finite), warn in between. Skipped for trained weights (``pretrained``).
regularization      the loss rises when the L2 penalty ½·λ·Σ‖W‖² over the weights the optimiser
                    decays is switched on ("loss went up, good"). warn when nothing is decayed.
overfit             20 examples, regularisation off, the given optimiser and lr, up to 200
                    full-batch steps: training accuracy pass ≥ 95 %, warn ≥ 60 %, else fail.
gradcheck           float64 copy, dropout off, 4 jittered examples: analytic gradients of the input
                    and of a few entries of several parameters against centred differences
                    (`striate.gradcheck`). relative error ≤ 1e-4 pass; > 1e-2 at more than one
                    entry fail (one entry may be a ReLU/max kink: warn); otherwise warn.
update_ratio        ‖Δw‖/‖w‖ per weight tensor over the first 5 steps of the run's schedule (1cycle
                    starts at lr/10), the median of the steps; the verdict is on the typical
                    (median) layer, as the lectures' "about 1e-3" is for the typical weight: pass
                    within 3e-4…2e-2, warn outside, fail above 0.1 (or one layer above 0.5, or
                    non-finite). One layer 100× below the typical warns (little gradient reaches
                    it). A small ratio with the loss near 0 (below 0.1·ln C) is a converged model,
                    not a low lr: pass. The band is calibrated below.
dead_relus          fraction of ReLU units (channels/neurons) that output 0 for the whole batch:
                    warn > 25 %, fail > 50 % in some layer.
saturation          fraction of tanh/sigmoid outputs with |tanh| > 0.99 (sigmoid < 0.01 or > 0.99):
                    warn > 10 %, fail > 50 % in some layer.
activation_scale    std of the watched layers' outputs: fail when one is 0 or non-finite, warn when
                    the smallest is below 1 % of the largest (vanishing or exploding activations).
learning_rate       50 steps up to the peak lr (the given lr): a schedule that starts low (1cycle, a
                    warm-up) rises to it over the first 25, as the run's warm-up does, then stays.
                    Printed and compared: the loss of one fixed batch before → after, and the
                    highest step loss when it rose a quarter above the start. NaN/inf, an end
                    above 1.5× the start, or a peak above 2× without falling below half the start
                    fail ("too high"); a peak above 2× that recovers warns (edge of stability). A
                    loss that falls by under 1 % is flat: converged (pass) when it starts below
                    0.1·ln C; too high (warn) when the weights moved by over half their norm (a
                    collapse to constant outputs); else too low (warn; "loss not going down:
                    learning rate too low"). Near 0, differences count against 0.1·ln C, so noise
                    on a converged loss is neither a rise nor a fall.
fit_gap             train − validation accuracy after a short training (or from a run's history):
                    gap > 10 % warns of overfitting (more regularisation, more data); train accuracy
                    below 80 % with a gap under 5 % warns of underfitting (more capacity, longer).
==================  ===============================================================================

A status is "pass", "warn", "fail", or "skip" (the check does not apply: no ReLU layers, no
validation data, trained weights for the initial-loss check); only "fail" makes `failed` true.
`DoctorReport.add_error_analysis` adds the check "error_analysis" (`striate.train.error_analysis`:
the gaps between human-level, train, train-dev, dev and test errors), which warns at most.

Calibration of the update/weight ratio and of the learning-rate check, on runs of `striate train`'s
defaults (SGD, Nesterov, weight decay 5e-4, batch 64, 1cycle, fp32) at several peak lrs: the
finished run's test accuracy (%), and the typical (median-layer) ratio over its first 5 steps as
the Trainer took them. The doctor's own measurement agrees within 15 % (default lr: 7.3e-3 against
7.0e-3 on digits, 9.9e-3 against 1.0e-2 on MNIST, 1.0e-3 against 9.2e-4 for ResNet-20).

======================================  =====  =====  =====  =====  =====  =====  =====  =====
peak lr                                  1e-3   3e-3   0.01   0.03    0.1    0.3      1      3
======================================  =====  =====  =====  =====  =====  =====  =====  =====
digits, convnet-small, 30 epochs         97.8   98.3   98.6   98.6   98.9   98.6   10.3   10.3
  typical ratio at the start             7e-5   2e-4   7e-4   2e-3   7e-3   2e-2   6e-2   0.45
digits, mlp, 30 epochs                   88.3   94.4   96.7   97.5   96.9   97.2   96.4   10.3
  typical ratio at the start             9e-5   3e-4   9e-4   3e-3   9e-3   3e-2   8e-2   0.19
MNIST (5,000), convnet-small, 5 ep.                    97.7          98.4   97.2   10.3
  typical ratio at the start                           1e-3          1e-2   4e-2   0.37
CIFAR-10 (JPEG, 5,000), convnet, 5 ep.                 61.7          55.7   41.7   10.0
  typical ratio at the start                           9e-4          8e-3   2e-2   0.10
CIFAR-10 (JPEG, 5,000), resnet20, 5 ep.                44.0          54.9          46.0
  typical ratio at the start                           1e-4          9e-4          1e-2
======================================  =====  =====  =====  =====  =====  =====  =====  =====

The lr that trains best starts between 9e-4 (CIFAR-10's convnet at 0.01, ResNet-20 at 0.1) and
1e-2 (MNIST at 0.1) in every setup, so the pass band 3e-4…2e-2 holds each best with a margin of 2×
or more. Outside it runs lose accuracy or diverge: below 3e-4 on digits (0.6 to 9 points
lost), ResNet-20 at 1e-4 (11 points), MNIST at 4e-2 (1.2), CIFAR's convnet at 2e-2 (20; its lr
0.1, at 8e-3, already loses 6 points, which the ratio alone does not catch). Above 0.1 every run
diverged; between 2e-2 and 0.1 some did (convnet-small at 6e-2) and some trained (the MLP at
8e-2): a warning there, a failure above. The learning-rate check passes all five setups at lr
0.1, warns or fails at 0.3 where the run lost accuracy (MNIST fails, CIFAR's convnet warns; the
digits convnet, which kept its accuracy, warns of a jump) and fails every setup at lr 1.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from striate.data import ImageSet, Normalizer
from striate.errors import ConfigError, StriateError
from striate.train.activations import LayerStats, activation_stats, plot_histograms
from striate.train.activations import plot_layer_stats as _plot_layer_stats
from striate.train.error_analysis import ERROR_LABELS, ErrorAnalysis
from striate.train.losses import make_loss
from striate.train.optim import make_optimizer, param_groups
from striate.train.schedules import SCHEDULES, Schedule, Scheduler, schedule_for

__all__ = ["CHECKS", "STATUSES", "Check", "DoctorReport", "doctor", "measure_errors"]

STATUSES = ("pass", "warn", "fail", "skip")
CHECKS = (
    "initial_loss",
    "regularization",
    "overfit",
    "gradcheck",
    "update_ratio",
    "dead_relus",
    "saturation",
    "activation_scale",
    "learning_rate",
    "fit_gap",
)
_GROUPS = {"activations": ("dead_relus", "saturation", "activation_scale")}
DEFAULT_EPOCHS = 30  # TrainConfig's: the run length a schedule assumes when none is given
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}

# thresholds (see the module docstring)
INITIAL_LOSS_PASS, INITIAL_LOSS_FAIL = 0.2, 0.5
OVERFIT_PASS, OVERFIT_WARN = 0.95, 0.6
GRAD_PASS, GRAD_FAIL = 1e-4, 1e-2
RATIO_LOW, RATIO_HIGH, RATIO_FAIL, RATIO_LAYER_FAIL, RATIO_STUCK = 3e-4, 2e-2, 0.1, 0.5, 1e-2
_BAND = f"runs that train well start between {RATIO_LOW:g} and {RATIO_HIGH:g}"
DEAD_WARN, DEAD_FAIL = 0.25, 0.5
SAT_WARN, SAT_FAIL = 0.1, 0.5
SCALE_WARN = 1e-2
LR_FLAT, LR_RISE, LR_SPIKE, LR_CONVERGED, LR_UNTRAINED, LR_MOVED = 0.01, 1.5, 2.0, 0.1, 0.5, 0.5
GAP_OVERFIT, GAP_SMALL, UNDERFIT_ACC = 0.10, 0.05, 0.80


@dataclass
class Check:
    """One diagnostic: `status` is pass/warn/fail/skip, `value` its main number (or None),
    `advice` one line for the user, `detail` the numbers behind it."""

    name: str
    status: str
    value: float | None
    advice: str
    detail: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if value is not None and not math.isfinite(value):
            value = str(value)  # JSON has no NaN/inf
        return {
            "name": self.name,
            "status": self.status,
            "value": value,
            "advice": self.advice,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class DoctorReport:
    """The checks in order, the per-layer activation statistics, and the loss curves recorded."""

    checks: list[Check]
    activations: list[LayerStats] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    layer_ratios: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    error_analysis: ErrorAnalysis | None = None

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; ran {', '.join(c.name for c in self.checks)}")

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (NaN/inf as strings)."""
        return _clean(
            {
                "passed": not self.failed,
                "counts": self.counts(),
                "checks": [c.to_dict() for c in self.checks],
                "activations": [s.to_dict() for s in self.activations],
                "layer_ratios": self.layer_ratios,
                "curves": self.curves,
                "settings": self.settings,
                **(
                    {"error_analysis": self.error_analysis.to_dict()}
                    if self.error_analysis is not None
                    else {}
                ),
            }
        )

    def add_error_analysis(self, analysis: ErrorAnalysis) -> Check:
        """Record an error analysis (`striate.train.error_analysis`) and add its verdict as the
        check "error_analysis": warn when the largest gap stands out of the sampling noise (there
        is something to act on), pass otherwise. Returns that check."""
        self.error_analysis = analysis
        self.checks = [c for c in self.checks if c.name != "error_analysis"]
        errors = ", ".join(f"{ERROR_LABELS[k]} {v:.2%}" for k, v in analysis.errors.items())
        largest = analysis.largest
        if largest is None:
            check = Check("error_analysis", "pass", None, analysis.advice, errors)
        else:
            noise = f" ±{largest.noise:.2%}" if largest.noise is not None else ""
            check = Check(
                "error_analysis",
                "warn" if largest.significant else "pass",
                largest.value,
                analysis.advice,
                f"largest gap: {largest.name} {largest.value:+.2%}{noise} ({errors})",
            )
        self.checks.append(check)
        return check

    def table(self, title: str = "striate doctor"):
        """The checks as a rich Table (status coloured)."""
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=title)
        for col in ("check", "status", "value", "advice"):
            t.add_column(col, overflow="fold")
        for c in self.checks:
            style = _STYLE[c.status]
            t.add_row(
                c.name,
                f"[{style}]{c.status}[/{style}]",
                escape(c.detail or _fmt(c.value)),
                escape(c.advice),
            )
        return t

    def __rich__(self):
        return self.table()

    def table_text(self) -> str:
        """The checks as plain text, one line each."""
        width = max((len(c.name) for c in self.checks), default=5)
        lines = [
            f"{c.name:<{width}}  {c.status:<4}  {c.detail or _fmt(c.value)}  — {c.advice}"
            for c in self.checks
        ]
        return "\n".join(lines)

    __str__ = table_text

    def figures(self) -> dict[str, Figure]:
        """The plots as matplotlib figures, keyed by the PNG name they are saved under."""
        figs: dict[str, Figure] = {}
        if self.activations:
            figs["doctor_activations.png"] = plot_histograms(self.activations)
            figs["doctor_layer_stats.png"] = _plot_layer_stats(self.activations)
        if self.curves:
            figs["doctor_curves.png"] = plot_curves(self.curves)
        return figs


def _clean(obj: Any) -> Any:
    """`obj` with non-finite floats as strings ("nan", "inf") and tuples as lists, for JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}"


def plot_curves(curves: Mapping[str, Sequence[float]]) -> Figure:
    """The loss per step of the short runs (overfit, learning_rate, fit_gap), one panel each."""
    names = [k for k, v in curves.items() if len(v)]
    fig = Figure(figsize=(3.6 * max(1, len(names)), 3.0))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(names)), squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = np.asarray([float(v) for v in curves[name]], dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values)
        ax.set_title(f"{name}: loss per step", fontsize=9)
        ax.set_xlabel("step")
        finite = values[np.isfinite(values)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 50:
            ax.set_yscale("log")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------ input


@dataclass
class _Ctx:
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor | None
    yv: torch.Tensor | None
    num_classes: int
    loss: str
    loss_fn: Callable
    opt: str
    lr: float
    weight_decay: float
    momentum: float | None
    nesterov: bool
    batch_size: int
    schedule: Schedule | None
    schedule_name: str
    seed: int
    device: torch.device
    pretrained: bool
    history: list[dict[str, float]] | None
    budget: dict[str, int]
    report: DoctorReport


def _as_xy(
    data: Any, what: str, normalize: Any, max_samples: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """Float inputs, int64 labels and the number of classes (ImageSet) of `data`."""
    if isinstance(data, ImageSet):
        if len(data) == 0:
            raise ConfigError(f"doctor: the {what} set is empty ({data.source or 'no source'})")
        ds = data
        if max_samples is not None and len(ds) > max_samples:
            from striate.data.splits import stratified_split

            _, keep = stratified_split(ds, max_samples, seed)
            ds = ds[keep]
        return _normalized(ds.images, normalize), ds.labels.clone(), ds.num_classes
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        x, y = data
        if x.ndim < 2 or len(x) == 0:
            raise ConfigError(
                f"doctor: the {what} inputs must be a non-empty batch N×..., got shape "
                f"{tuple(x.shape)}"
            )
        if y.ndim != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise ConfigError(
                f"doctor: the {what} labels must be a 1-D integer tensor of class indices, got "
                f"{y.dtype} of shape {tuple(y.shape)}"
            )
        if len(x) != len(y):
            raise ConfigError(
                f"doctor: {len(x)} {what} inputs but {len(y)} labels; give one label per input"
            )
        if int(y.min()) < 0:
            raise ConfigError(f"doctor: the {what} labels must be ≥ 0, got {int(y.min())}")
        if not (x.is_floating_point() or x.dtype == torch.uint8):
            raise ConfigError(
                f"doctor: the {what} inputs must be a float (or uint8 image) tensor, got {x.dtype}"
            )
        if max_samples is not None and len(x) > max_samples:
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(len(x), generator=g)[:max_samples]
            x, y = x[keep], y[keep]
        if x.dtype == torch.uint8:
            x = _normalized(x, normalize)
        return x.detach().float(), y.long(), None
    raise ConfigError(
        f"doctor: {what} data must be an ImageSet (striate.data.load_dataset) or an (x, y) pair "
        f"of tensors, got {type(data).__name__}"
    )


def _normalized(images: torch.Tensor, normalize: Any) -> torch.Tensor:
    if callable(normalize):
        out = normalize(images)
    elif normalize is False or normalize is None:
        out = images.float() / 255
    else:
        raise ConfigError(f"normalize must be a callable, None or False, got {normalize!r}")
    return out.detach().float()


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):  # e.g. GoogLeNet's auxiliary outputs in train mode
        out = out[0]
    if hasattr(out, "logits"):
        out = out.logits
    return out


def _dropout_off(model: nn.Module) -> nn.Module:
    """Train mode (batch-norm on batch statistics) with every dropout layer switched off."""
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd | nn.AlphaDropout):
            m.eval()
    return model


# ------------------------------------------------------------------------------------ the API


def doctor(
    model: nn.Module,
    data: ImageSet | tuple[torch.Tensor, torch.Tensor],
    *,
    val: ImageSet | tuple[torch.Tensor, torch.Tensor] | None = None,
    checks: Iterable[str] | None = None,
    num_classes: int | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None | str = "auto",
    loss: str = "cross_entropy",
    opt: str = "sgd",
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    momentum: float | None = None,
    nesterov: bool = False,
    batch_size: int = 64,
    schedule: str | Schedule = "constant",
    schedule_options: Mapping[str, Any] | None = None,
    total_steps: int | None = None,
    pretrained: bool = False,
    history: Sequence[Mapping[str, float]] | None = None,
    max_samples: int = 2048,
    overfit_size: int = 20,
    overfit_steps: int = 200,
    lr_steps: int = 50,
    ratio_steps: int = 5,
    gap_epochs: int = 5,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> DoctorReport:
    """Run the diagnostics on a copy of ``model`` with ``data`` and return a DoctorReport.

    ``data`` (and ``val``) are an ImageSet or an ``(x, y)`` pair of tensors (float inputs
    as the model takes them, or uint8 images, and integer labels). ImageSets are normalised by
    ``normalize``: "auto" fits a per-channel Normalizer on ``data``; a callable maps a uint8
    batch to the model's input (e.g. a loaded model's ``prepare``); None divides by 255.
    At most ``max_samples`` examples are used (a stratified subset). Without ``val``, 20 % of
    ``data`` is held out for the fit-gap check. ``opt``, ``lr``, ``weight_decay``, ``momentum``,
    ``nesterov``, ``loss`` are the training settings under test (`make_optimizer`, `make_loss`);
    ``schedule`` (a name of SCHEDULES with ``schedule_options``, or a `Schedule`) is the run's lr
    schedule over ``total_steps`` optimiser steps (default: 30 epochs of ``data`` at
    ``batch_size``): the update-ratio check takes the schedule's first steps (1cycle starts at
    lr/10), the other short runs the peak lr, ``lr``.
    ``checks`` picks check names of CHECKS (and "activations" for the three activation checks);
    ``pretrained`` marks trained weights (the initial-loss check is skipped); ``history`` (one
    dict per epoch with train_acc and val_acc, as a run's metrics.csv) replaces the short
    training of the fit-gap check. The budgets (``overfit_steps``, ``lr_steps``,
    ``ratio_steps``, ``gap_epochs``) keep a small model on CPU to seconds.
    """
    from striate.device import resolve_device

    if not isinstance(model, nn.Module):
        raise ConfigError(f"doctor: model must be a torch.nn.Module, got {type(model).__name__}")
    selected = _select(checks)
    for name, v, low in (
        ("batch_size", batch_size, 1),
        ("max_samples", max_samples, 4),
        ("overfit_size", overfit_size, 1),
        ("overfit_steps", overfit_steps, 1),
        ("lr_steps", lr_steps, 5),
        ("ratio_steps", ratio_steps, 1),
        ("gap_epochs", gap_epochs, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"doctor: {name} must be an integer ≥ {low}, got {v!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ConfigError(f"doctor: lr must be a positive number, got {lr!r}")
    loss_fn = make_loss(loss)
    loss_key = "hinge" if loss.strip().lower() in ("hinge", "svm") else "cross_entropy"
    probe_opt = make_optimizer(
        opt, [torch.zeros(1, requires_grad=True)], lr, weight_decay, momentum, nesterov
    )
    sched, sched_name = _make_schedule(
        schedule,
        schedule_options,
        total_steps,
        _length(data),
        batch_size,
        probe_opt,
    )
    dev = resolve_device(device)

    if isinstance(normalize, str):
        if normalize != "auto":
            raise ConfigError(f"normalize must be 'auto', a callable or None, got {normalize!r}")
        if isinstance(data, ImageSet) and len(data):
            normalize = Normalizer().fit(data)
        elif (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and isinstance(data[0], torch.Tensor)
            and data[0].dtype == torch.uint8
            and data[0].ndim == 4
            and len(data[0])
        ):
            normalize = Normalizer().fit(data[0])
        else:
            normalize = None
    x, y, c_data = _as_xy(data, "training", normalize, max_samples, seed)
    xv = yv = None
    c_val = None
    if val is not None:
        xv, yv, c_val = _as_xy(val, "validation", normalize, max_samples, seed)
        if xv.shape[1:] != x.shape[1:]:
            raise ConfigError(
                f"doctor: validation inputs are {tuple(xv.shape[1:])}, training inputs "
                f"{tuple(x.shape[1:])}; they must have the same shape"
            )
    if len(x) < 4:
        raise ConfigError(f"doctor: needs at least 4 training examples, got {len(x)}")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    x, y = x[order], y[order]
    if val is None:
        n_val = max(1, len(x) // 5)
        xv, yv, x, y = x[:n_val], y[:n_val], x[n_val:], y[n_val:]

    classes = _num_classes(model, x, y, yv, c_data, c_val, num_classes)
    report = DoctorReport(checks=[])
    report.settings = {
        "loss": loss_key,
        "opt": opt,
        "lr": float(lr),
        "weight_decay": float(weight_decay),
        "momentum": momentum,
        "nesterov": nesterov,
        "batch_size": batch_size,
        "schedule": sched_name,
        "num_classes": classes,
        "train_examples": len(x),
        "val_examples": len(xv),
        "pretrained": pretrained,
        "seed": seed,
        "device": str(dev),
    }
    ctx = _Ctx(
        model=model,
        x=x.to(dev),
        y=y.to(dev),
        xv=xv.to(dev),
        yv=yv.to(dev),
        num_classes=classes,
        loss=loss_key,
        loss_fn=loss_fn,
        opt=opt,
        lr=float(lr),
        weight_decay=float(weight_decay),
        momentum=momentum,
        nesterov=nesterov,
        batch_size=batch_size,
        schedule=sched,
        schedule_name=sched_name,
        seed=seed,
        device=dev,
        pretrained=pretrained,
        history=[dict(h) for h in history] if history is not None else None,
        budget={
            "overfit_size": overfit_size,
            "overfit_steps": overfit_steps,
            "lr_steps": lr_steps,
            "ratio_steps": ratio_steps,
            "gap_epochs": gap_epochs,
        },
        report=report,
    )
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        activations_done = False
        for name in selected:
            if name in _GROUPS["activations"]:
                if activations_done:
                    continue
                activations_done = True
                run = [n for n in _GROUPS["activations"] if n in selected]
                start = time.perf_counter()
                found = _check_activations(ctx, run)
            else:
                start = time.perf_counter()
                torch.manual_seed(seed)
                found = [_RUNNERS[name](ctx)]
            spent = (time.perf_counter() - start) / max(1, len(found))
            for c in found:
                c.seconds = spent
            report.checks += found
    return report


def measure_errors(
    model: nn.Module, sets: Mapping[str, ImageSet], *, batch_size: int = 256
) -> tuple[dict[str, float], dict[str, int]]:
    """Top-1 error rate and size of each set for a loaded model (`striate.models.load_model`),
    in evaluation mode and float32 (its `predict_proba`): the numbers do not depend on the
    hardware's bf16 support. A set whose class names are the model's in another order is
    relabelled by name; other class names are an error."""
    classes = tuple(getattr(model, "classes", ()))
    if not classes or not hasattr(model, "predict_proba"):
        raise ConfigError(
            "measure_errors takes a loaded model (striate.models.load_model) that knows its "
            "classes and input preparation"
        )
    errors, sizes = {}, {}
    for name, ds in sets.items():
        if len(ds) == 0:
            raise ConfigError(f"doctor: the {name} set is empty; give one with images")
        labels = ds.labels
        if tuple(ds.classes) != classes:
            if sorted(ds.classes) != sorted(classes):
                raise ConfigError(
                    f"doctor: the {name} set's classes ({', '.join(ds.classes[:5])}…) are not "
                    f"the model's ({', '.join(classes[:5])}…); give data of the same classes"
                )
            index = torch.as_tensor([classes.index(c) for c in ds.classes])
            labels = index[labels]
        pred = model.predict_proba(ds.images, batch_size).argmax(1)
        wrong = int((pred != labels.cpu()).sum())
        errors[name], sizes[name] = wrong / len(ds), len(ds)
    return errors, sizes


def _length(data: Any) -> int:
    """The number of examples in `data` (0 when it is not a recognised kind: checked later)."""
    if isinstance(data, ImageSet):
        return len(data)
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], torch.Tensor):
        return len(data[0]) if data[0].ndim else 0
    return 0


def _make_schedule(
    schedule: str | Schedule,
    options: Mapping[str, Any] | None,
    total_steps: int | None,
    examples: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
) -> tuple[Schedule | None, str]:
    """The run's schedule (None for a constant lr) and its name, built as the Trainer does."""
    if isinstance(schedule, Schedule):
        if options:
            raise ConfigError("doctor: schedule_options go with a schedule name, not a Schedule")
        return schedule, type(schedule).__name__
    if not isinstance(schedule, str):
        raise ConfigError(
            f"doctor: schedule must be a name ({', '.join(SCHEDULES)}) or a Schedule, "
            f"got {type(schedule).__name__}"
        )
    per_epoch = max(1, math.ceil(examples / batch_size))
    if total_steps is None:
        total_steps = DEFAULT_EPOCHS * per_epoch
    elif isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ConfigError(f"doctor: total_steps must be a positive integer, got {total_steps!r}")
    built = schedule_for(optimizer, schedule, total_steps, per_epoch, **(options or {}))
    return (None if schedule == "constant" else built), schedule


def _scheduler(ctx: _Ctx, optimizer: torch.optim.Optimizer) -> Scheduler | None:
    """The run's schedule on `optimizer` (sets the lr and momentum of step 0 at once)."""
    return None if ctx.schedule is None else Scheduler(optimizer, ctx.schedule)


def _lr_range(lrs: Sequence[float]) -> str:
    lo, hi = min(lrs), max(lrs)
    return f"lr {lo:.3g}" if hi <= lo * 1.005 else f"lr {lo:.3g}…{hi:.3g}"


def _schedule_label(ctx: _Ctx, steps: int) -> str:
    if ctx.schedule is None:
        return f"{steps} steps"
    return f"the first {steps} steps of {ctx.schedule_name}"


def _select(checks: Iterable[str] | None) -> list[str]:
    if checks is None:
        return list(CHECKS)
    if isinstance(checks, str):
        checks = [s.strip() for s in checks.split(",") if s.strip()]
    wanted: set[str] = set()
    for name in checks:
        key = str(name).strip().lower().replace("-", "_")
        key = {"regularisation": "regularization", "lr": "learning_rate"}.get(key, key)
        if key in _GROUPS:
            wanted.update(_GROUPS[key])
        elif key in CHECKS:
            wanted.add(key)
        else:
            raise ConfigError(
                f"unknown check {name!r}; choose from {', '.join(CHECKS)} (or 'activations')"
            )
    if not wanted:
        raise ConfigError(f"no checks selected; choose from {', '.join(CHECKS)}")
    return [c for c in CHECKS if c in wanted]


def _num_classes(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    yv: torch.Tensor | None,
    c_data: int | None,
    c_val: int | None,
    given: int | None,
) -> int:
    """The model's number of outputs, checked against the data's classes."""
    probe = copy.deepcopy(model).cpu().eval()
    try:
        with torch.no_grad():
            out = _logits(probe, x[:2].cpu())
    except StriateError:
        raise
    except Exception as e:  # noqa: BLE001 - a shape mismatch surfaces as many kinds of error
        raise ConfigError(
            f"doctor: the model cannot take inputs of shape {tuple(x.shape[1:])} "
            f"({type(e).__name__}: {e}); give data of the model's input shape"
        ) from e
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"doctor: the model must return class scores N×C, got {got}")
    outputs = out.shape[1]
    if given is not None and given != outputs:
        raise ConfigError(
            f"doctor: num_classes={given} but the model has {outputs} outputs; "
            f"build the model for {given} classes"
        )
    for c, what in ((c_data, "training"), (c_val, "validation")):
        if c is not None and c != outputs:
            raise ConfigError(
                f"doctor: the {what} data has {c} classes but the model has {outputs} outputs; "
                f"build the model with num_classes={c}"
            )
    top = int(max(int(y.max()), int(yv.max()) if yv is not None and len(yv) else 0))
    if top >= outputs:
        raise ConfigError(
            f"doctor: labels go up to {top} but the model has {outputs} outputs; "
            f"build the model with num_classes={top + 1}"
        )
    if outputs < 2:
        raise ConfigError(f"doctor: a classifier needs at least 2 outputs, got {outputs}")
    return outputs


# ------------------------------------------------------------------------------------ helpers


def _copy(ctx: _Ctx) -> nn.Module:
    return copy.deepcopy(ctx.model).to(ctx.device)


def _optimizer(ctx: _Ctx, model: nn.Module, weight_decay: float | None = None):
    wd = ctx.weight_decay if weight_decay is None else weight_decay
    return make_optimizer(ctx.opt, model, ctx.lr, wd, ctx.momentum, ctx.nesterov)


def _step(model: nn.Module, optimizer, loss_fn: Callable, xb, yb) -> float:
    def closure():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(_logits(model, xb), yb)
        loss.backward()
        return loss

    if isinstance(optimizer, torch.optim.LBFGS):
        return float(optimizer.step(closure).detach())
    loss = closure().detach()
    if torch.isfinite(loss):
        optimizer.step()
    return float(loss)


def _batches(ctx: _Ctx, steps: int) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """`steps` minibatches of the training subset, reshuffled every pass (seeded)."""
    g = torch.Generator().manual_seed(ctx.seed + 1)
    n, bs = len(ctx.x), min(ctx.batch_size, len(ctx.x))
    done = 0
    while done < steps:
        order = torch.randperm(n, generator=g).to(ctx.device)
        for start in range(0, n - bs + 1, bs):
            idx = order[start : start + bs]
            yield ctx.x[idx], ctx.y[idx]
            done += 1
            if done >= steps:
                return


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bs: int = 512) -> float:
    with torch.no_grad():
        correct = sum(
            int((_logits(model, x[i : i + bs]).argmax(1) == y[i : i + bs]).sum())
            for i in range(0, len(x), bs)
        )
    return correct / max(1, len(x))


def _expected_loss(ctx: _Ctx) -> tuple[float, str]:
    c = ctx.num_classes
    if ctx.loss == "hinge":
        return float(c - 1), f"C - 1 = {c - 1}"
    return math.log(c), f"ln {c} = {math.log(c):.3f}"


def _probe(ctx: _Ctx) -> tuple[torch.Tensor, torch.Tensor]:
    n = min(len(ctx.x), 256)
    return ctx.x[:n], ctx.y[:n]


# ------------------------------------------------------------------------------------ checks


def _check_initial_loss(ctx: _Ctx) -> Check:
    """Loss at initialisation against ln C (CS231n: "double check that the loss is reasonable")."""
    expected, label = _expected_loss(ctx)
    if ctx.pretrained:
        return Check(
            "initial_loss",
            "skip",
            None,
            f"trained weights: the {label} check applies to a freshly initialised model",
        )
    model = _dropout_off(_copy(ctx))
    xb, yb = _probe(ctx)
    with torch.no_grad():
        loss = float(ctx.loss_fn(_logits(model, xb), yb))
    detail = f"{loss:.3f} (expected {label})"
    if not math.isfinite(loss):
        return Check(
            "initial_loss",
            "fail",
            loss,
            "the loss is not finite before training: look for a log of 0, a division by 0 or "
            "huge initial weights",
            detail,
        )
    rel = abs(loss - expected) / expected
    if rel <= INITIAL_LOSS_PASS:
        status = "pass"
        advice = "the scores start near uniform, as they should with small random weights"
    else:
        status = "fail" if rel > INITIAL_LOSS_FAIL else "warn"
        if loss > expected:
            advice = (
                f"initial loss is {loss / expected:.1f}× the expected {label}: the scores start "
                "too large; initialise with a smaller scale (Xavier/He, or shrink the last layer) "
                "and normalise the inputs"
            )
        else:
            advice = (
                f"initial loss is far below {label}: the model is not freshly initialised "
                "(pass pretrained=True for trained weights) or the labels leak into the inputs"
            )
    return Check("initial_loss", status, loss, advice, detail)


def _check_regularization(ctx: _Ctx) -> Check:
    """The loss rises when the L2 penalty is switched on (CS231n: "loss went up, good")."""
    model = _dropout_off(_copy(ctx))
    lam = ctx.weight_decay if ctx.weight_decay > 0 else 5e-4
    groups = param_groups(model, lam)
    decayed = [p for grp in groups if grp.get("weight_decay", 0) > 0 for p in grp["params"]]
    if not decayed:
        return Check(
            "regularization",
            "warn",
            None,
            "the optimiser decays no parameter (no weight tensor is trainable): L2 "
            "regularisation has no effect",
        )
    xb, yb = _probe(ctx)
    with torch.no_grad():
        data_loss = float(ctx.loss_fn(_logits(model, xb), yb))
        penalty = 0.5 * lam * float(sum(p.double().square().sum() for p in decayed))
    total = data_loss + penalty
    detail = f"{data_loss:.4g} → {total:.4g} (λ={lam:g})"
    if not math.isfinite(total):
        return Check("regularization", "fail", total, "the regularised loss is not finite", detail)
    if penalty > 0:
        return Check(
            "regularization",
            "pass",
            total - data_loss,
            f"the loss rises by {penalty:.3g} with L2 on {len(decayed)} weight tensors, as it "
            "should",
            detail,
        )
    return Check(
        "regularization",
        "fail",
        0.0,
        "switching on the L2 penalty does not raise the loss: every decayed weight is zero",
        detail,
    )


def _check_overfit(ctx: _Ctx) -> Check:
    """Overfit a tiny subset with regularisation off (CS231n: "make sure that you can overfit
    a very small portion of the training data")."""
    n = min(ctx.budget["overfit_size"], len(ctx.x))
    steps = ctx.budget["overfit_steps"]
    xs, ys = ctx.x[:n], ctx.y[:n]
    model = _dropout_off(_copy(ctx))
    optimizer = _optimizer(ctx, model, weight_decay=0.0)
    losses: list[float] = []
    acc = 0.0
    for step in range(1, steps + 1):
        losses.append(_step(model, optimizer, ctx.loss_fn, xs, ys))
        if not math.isfinite(losses[-1]):
            break
        if step % 10 == 0 or step == steps:
            acc = _accuracy(model, xs, ys)
            if acc >= 1.0:
                break
    ctx.report.curves["overfit"] = losses
    detail = f"{acc:.0%} of {n} in {len(losses)} steps, loss {losses[0]:.3g} → {losses[-1]:.3g}"
    if not math.isfinite(losses[-1]):
        return Check(
            "overfit",
            "fail",
            acc,
            "the loss became NaN/inf while overfitting a tiny subset: lower the learning rate",
            detail,
        )
    if acc >= OVERFIT_PASS:
        return Check("overfit", "pass", acc, f"the model fits {n} examples: it can learn", detail)
    return Check(
        "overfit",
        "warn" if acc >= OVERFIT_WARN else "fail",
        acc,
        f"cannot overfit {n} examples in {steps} steps: check the lr (try the LR finder), the "
        "loss and labels, and the model's wiring (a gradient that does not flow)",
        detail,
    )


def _check_gradcheck(ctx: _Ctx) -> Check:
    """Backward pass against centred differences in float64 (CS231n notes, gradient checks)."""
    from striate.gradcheck import gradcheck

    model = _dropout_off(copy.deepcopy(ctx.model).cpu().double())
    n = min(4, len(ctx.x))
    g = torch.Generator().manual_seed(ctx.seed + 2)
    x = ctx.x[:n].detach().cpu().double()
    # jitter breaks exact ties (max-pool over constant image regions) that read as kinks
    x = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    y = ctx.y[:n].cpu()
    try:
        with torch.no_grad():
            a = _logits(model, x)
            b = _logits(model, x)
        if not torch.equal(a, b):  # stochastic in train mode beyond dropout: check eval mode
            model.eval()
    except Exception as e:  # noqa: BLE001 - any failure to run in float64 is reported
        return Check(
            "gradcheck",
            "warn",
            None,
            f"could not run the model in float64 ({type(e).__name__}: {e}); check its backward "
            "with striate.gradcheck by hand",
        )

    def loss_at() -> torch.Tensor:
        return ctx.loss_fn(_logits(model, xin), y)

    xin = x.clone().requires_grad_(True)
    params = [(k, p) for k, p in model.named_parameters() if p.requires_grad and p.numel()]
    model.zero_grad(set_to_none=True)
    loss = loss_at()
    loss.backward()
    if xin.grad is None:
        return Check(
            "gradcheck", "fail", None, "no gradient reaches the input: the graph is cut", ""
        )
    errors: list[float] = []
    worst_where = "input"
    worst = -1.0

    def record(res, where: str) -> None:
        nonlocal worst, worst_where
        errors.extend(res.rel_errors.tolist())
        if res.max_rel_error > worst:
            worst, worst_where = res.max_rel_error, where

    with torch.no_grad():
        x_grad = xin.grad.detach().clone()

        def f_input(v):
            return ctx.loss_fn(_logits(model, v), y)

        record(gradcheck(f_input, x.clone(), x_grad, num_checks=8, h=1e-6, seed=ctx.seed), "input")
        pick = np.unique(np.linspace(0, len(params) - 1, min(6, len(params))).round().astype(int))
        for i in pick:
            name, p = params[int(i)]
            if p.grad is None:
                continue
            grad = p.grad.detach().clone()
            saved = p.detach().clone()

            def f_param(v, p=p):
                p.copy_(v)
                return ctx.loss_fn(_logits(model, xin), y)

            try:
                res = gradcheck(f_param, saved.clone(), grad, num_checks=4, h=1e-6, seed=ctx.seed)
            finally:
                p.copy_(saved)
            record(res, name)
    errs = np.asarray(errors)
    bad = int((errs > GRAD_FAIL).sum())
    value = float(errs.max()) if len(errs) else 0.0
    detail = f"max rel. error {value:.2e} ({worst_where}), {bad}/{len(errs)} entries > 1e-2"
    if bad > 1:
        return Check(
            "gradcheck",
            "fail",
            value,
            f"the backward pass disagrees with finite differences (worst at {worst_where}): "
            "a custom layer's backward is wrong",
            detail,
        )
    if value > GRAD_PASS:
        return Check(
            "gradcheck",
            "warn",
            value,
            "one entry or a few disagree mildly: a ReLU/max kink, or a small error; re-run with "
            "another seed",
            detail,
        )
    return Check(
        "gradcheck",
        "pass",
        value,
        "analytic gradients match centred differences in float64",
        detail,
    )


def _check_update_ratio(ctx: _Ctx) -> Check:
    """‖Δw‖/‖w‖ per weight tensor over the first steps of the run's schedule (CS231n: "want this
    to be somewhere around 0.001"); the verdict is on the typical (median) layer, calibrated on
    runs that train well (see the module docstring)."""
    model = _dropout_off(_copy(ctx))
    optimizer = _optimizer(ctx, model)
    scheduler = _scheduler(ctx, optimizer)
    weights = [(k, p) for k, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    if not weights:
        return Check("update_ratio", "skip", None, "the model has no trainable weight matrices")
    # a weight that starts at 0 (a zero-initialised head) has no ratio: its first steps are all
    # "change", whatever the lr
    weights = [(k, p) for k, p in weights if bool(p.detach().any())]
    if not weights:
        return Check("update_ratio", "skip", None, "every weight matrix starts at zero")
    ratios: dict[str, list[float]] = {k: [] for k, _ in weights}
    lrs: list[float] = []
    losses: list[float] = []
    for xb, yb in _batches(ctx, ctx.budget["ratio_steps"]):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        before = [p.detach().clone() for _, p in weights]
        loss = _step(model, optimizer, ctx.loss_fn, xb, yb)
        losses.append(loss)
        if scheduler is not None:
            scheduler.step()
        for (k, p), b in zip(weights, before, strict=True):
            scale = float(b.norm())
            ratios[k].append(float((p.detach() - b).norm()) / scale if scale > 0 else math.inf)
        if not math.isfinite(loss):
            for k in ratios:
                ratios[k].append(math.nan)
            break
    per_layer = {
        k: (math.nan if any(not math.isfinite(v) for v in vs) else float(np.median(vs)))
        for k, vs in ratios.items()
    }
    ctx.report.layer_ratios = per_layer
    values = np.asarray(list(per_layer.values()))
    at = f"{_lr_range(lrs)}, {_schedule_label(ctx, len(lrs))}"
    if not np.isfinite(values).all():
        bad = next(k for k, v in per_layer.items() if not math.isfinite(v))
        return Check(
            "update_ratio",
            "fail",
            math.nan,
            f"the update of {bad} is NaN/inf: the learning rate is far too high",
            f"non-finite in {bad} ({at})",
        )
    typical = float(np.median(values))
    lo_name = min(per_layer, key=per_layer.__getitem__)
    hi_name = max(per_layer, key=per_layer.__getitem__)
    lo, hi = per_layer[lo_name], per_layer[hi_name]
    detail = (
        f"median {typical:.1e} of {len(values)} layers ({lo:.1e} {lo_name} … {hi:.1e} "
        f"{hi_name}) at {at}"
    )
    if typical > RATIO_FAIL or hi > RATIO_LAYER_FAIL:
        what = (
            f"the typical update is {typical:.2g} of the weight"
            if typical > RATIO_FAIL
            else f"{hi_name} changes by {hi:.2g} of its size in one step"
        )
        return Check(
            "update_ratio",
            "fail",
            typical,
            f"{what}: the learning rate is far too high (lower it 10×, or run the LR finder)",
            detail,
        )
    if typical > RATIO_HIGH:
        return Check(
            "update_ratio",
            "warn",
            typical,
            f"the typical update/weight ratio {typical:.1e} is above {RATIO_HIGH:g} ({_BAND}): "
            "the learning rate is probably too high",
            detail,
        )
    expected, label = _expected_loss(ctx)
    mean_loss = float(np.mean(losses))
    if typical < RATIO_LOW and mean_loss < LR_CONVERGED * expected:
        return Check(
            "update_ratio",
            "pass",
            typical,
            f"the updates are small because the loss is near 0 ({mean_loss:.3g}; untrained: "
            f"{label}): the model has converged on these examples, so the ratio says nothing "
            "of the lr",
            f"{detail}, loss {mean_loss:.3g}",
        )
    if typical < RATIO_LOW:
        return Check(
            "update_ratio",
            "warn",
            typical,
            f"the typical update/weight ratio {typical:.1e} is below {RATIO_LOW:g} ({_BAND}): "
            "the learning rate is probably too low",
            detail,
        )
    if lo < typical * RATIO_STUCK:
        return Check(
            "update_ratio",
            "warn",
            typical,
            f"{lo_name} barely moves ({lo:.1e}, over {1 / RATIO_STUCK:.0f}× below the typical "
            "layer): little gradient reaches it (check the wiring, a frozen or dead branch)",
            detail,
        )
    return Check(
        "update_ratio",
        "pass",
        typical,
        f"the typical update/weight ratio is within {RATIO_LOW:g}…{RATIO_HIGH:g}, where runs "
        "that train well start",
        detail,
    )


def _check_activations(ctx: _Ctx, run: Sequence[str]) -> list[Check]:
    """Activation statistics per layer on a batch (CS231n lecture 6, activation statistics)."""
    model = _dropout_off(_copy(ctx))
    xb, _ = _probe(ctx)
    stats = activation_stats(model, xb)
    ctx.report.activations = stats
    out = []
    if "dead_relus" in run:
        out.append(
            _worst_layer(
                "dead_relus",
                stats,
                "dead_frac",
                (DEAD_WARN, DEAD_FAIL),
                "dead",
                "no ReLU layers",
                "ReLU units are alive",
                "units that never fire get no gradient; check the init (He), large negative "
                "biases, or a too high lr; try leaky ReLU",
            )
        )
    if "saturation" in run:
        out.append(
            _worst_layer(
                "saturation",
                stats,
                "saturated_frac",
                (SAT_WARN, SAT_FAIL),
                "saturated",
                "no tanh/sigmoid layers",
                "no layer saturates",
                "saturated units kill the gradient; initialise with Xavier (smaller weights), "
                "normalise the inputs or add batch norm",
            )
        )
    if "activation_scale" in run:
        stds = np.asarray([s.std for s in stats], dtype=float)
        if not len(stds):
            out.append(Check("activation_scale", "skip", None, "no layers to watch"))
        elif not np.isfinite(stds).all() or (stds == 0).any():
            i = int(np.argmin(np.where(np.isfinite(stds), stds, -1.0)))
            out.append(
                Check(
                    "activation_scale",
                    "fail",
                    float(stds[i]),
                    f"{stats[i].name} outputs a constant (or NaN): nothing passes through it",
                    f"std {stds[i]:.3g} in {stats[i].name}",
                )
            )
        else:
            ratio = float(stds.min() / stds.max())
            lo, hi = stats[int(stds.argmin())].name, stats[int(stds.argmax())].name
            detail = f"std {stds.min():.2g} ({lo}) … {stds.max():.2g} ({hi}), ratio {ratio:.2g}"
            if ratio < SCALE_WARN:
                out.append(
                    Check(
                        "activation_scale",
                        "warn",
                        ratio,
                        "activations shrink or grow by over 100× across layers: use Xavier/He "
                        "initialisation or batch norm",
                        detail,
                    )
                )
            else:
                out.append(
                    Check(
                        "activation_scale",
                        "pass",
                        ratio,
                        "activation scales stay within 100× across layers",
                        detail,
                    )
                )
    return out


def _worst_layer(
    name: str,
    stats: Sequence[Any],
    attr: str,
    limits: tuple[float, float],
    what: str,
    none: str,
    healthy: str,
    advice: str,
) -> Check:
    """Check the layer with the largest fraction `attr` against the (warn, fail) `limits`."""
    layers = [st for st in stats if getattr(st, attr) is not None]
    if not layers:
        return Check(name, "skip", None, none)
    worst = max(layers, key=lambda st: getattr(st, attr))
    frac = getattr(worst, attr)
    detail = f"{frac:.0%} {what} in {worst.name} (of {len(layers)} layers)"
    if frac <= limits[0]:
        return Check(name, "pass", frac, healthy, detail)
    return Check(
        name, "fail" if frac > limits[1] else "warn", frac, f"{worst.name}: {advice}", detail
    )


def _check_learning_rate(ctx: _Ctx) -> Check:
    """Symptoms of a short run up to the peak lr (CS231n: "loss not going down: learning rate
    too low; loss exploding: learning rate too high"; "cost: NaN almost always means high
    learning rate").

    A schedule that starts low (1cycle at lr/10, a warm-up) rises to the peak over the first
    half of the steps, as the run's warm-up does in its first epochs; the second half is at the
    peak. The loss before and after is measured on one fixed batch, so the two numbers printed
    are the ones compared. A flat loss is told apart three ways: near 0 it has converged; near
    its untrained value with the weights barely moved the lr is too low; with the weights moved
    a lot it is too high (the network collapsed to constant outputs)."""
    model = _dropout_off(_copy(ctx))
    optimizer = _optimizer(ctx, model)
    xp, yp = _probe(ctx)
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    initial = [p.detach().clone() for p in weights]
    with torch.no_grad():
        before = float(ctx.loss_fn(_logits(model, xp), yp))
    steps = ctx.budget["lr_steps"]
    start = ctx.schedule.factor(0) if ctx.schedule is not None else 1.0
    ramp = steps // 2 if start < 1 else 0
    losses: list[float] = []
    for i, (xb, yb) in enumerate(_batches(ctx, steps)):
        factor = start + (1 - start) * min(1.0, i / ramp) if ramp else 1.0
        for group in optimizer.param_groups:
            group["lr"] = ctx.lr * factor
        losses.append(_step(model, optimizer, ctx.loss_fn, xb, yb))
        if not math.isfinite(losses[-1]):
            break
    ctx.report.curves["learning_rate"] = losses
    how = f"lr {ctx.lr * start:.3g} → {ctx.lr:g} (warm-up of {ramp} steps)" if ramp else ""
    lr = f"lr {ctx.lr:g}"
    where = f"{len(losses)} steps, {how or lr}"
    if not math.isfinite(losses[-1]):
        return Check(
            "learning_rate",
            "fail",
            losses[-1],
            f"{lr}: the loss became NaN/inf at step {len(losses)}: the learning rate is too "
            "high (lower it 10×, or run the LR finder)",
            f"{before:.3g} → {losses[-1]} at step {len(losses)} of {where}",
        )
    with torch.no_grad():
        after = float(ctx.loss_fn(_logits(model, xp), yp))
        w0 = math.sqrt(sum(float(w.double().square().sum()) for w in initial))
        pairs = zip(weights, initial, strict=True)
        dw = math.sqrt(sum(float((p.detach() - w).double().square().sum()) for p, w in pairs))
    moved = dw / w0 if w0 > 0 else 0.0
    expected, label = _expected_loss(ctx)
    peak_at = int(np.argmax(losses))
    peak = losses[peak_at]
    # differences are measured against the loss, or a tenth of the untrained loss when the loss
    # is near 0: 0.0003 → 0.001 on a converged model is noise, not an explosion
    scale = max(before, LR_CONVERGED * expected) if math.isfinite(before) else math.inf
    spiked = peak > before + (LR_SPIKE - 1) * scale
    bumped = peak > before + 0.25 * scale  # worth showing: the peak is printed
    path = (
        f"{before:.3g} → peak {peak:.3g} (step {peak_at + 1}) → " if bumped else f"{before:.3g} → "
    )
    detail = f"{path}{after:.3g} in {where}; ‖Δw‖/‖w‖ {moved:.2g}"
    ratio = after / before if before > 0 else math.inf

    def check(status: str, advice: str) -> Check:
        return Check("learning_rate", status, ratio, f"{lr}: {advice}", detail)

    too_high = "the learning rate is too high (lower it 10×, or run the LR finder)"
    if not math.isfinite(after) or after > before + (LR_RISE - 1) * scale:
        return check("fail", f"the loss ends higher than it started: {too_high}")
    if spiked and after > LR_UNTRAINED * before:
        return check(
            "fail",
            f"the loss explodes to {peak:.3g} ({peak / before:.0f}× its start) and does not come "
            f"back down: {too_high}",
        )
    if spiked:
        return check(
            "warn",
            f"the loss jumps to {peak:.3g} ({peak / before:.1f}× its start) before it falls: "
            "the learning rate is at the edge of stability; lower it 2-3× if training is erratic"
            + ("" if ramp else " (or warm up: the 1cycle schedule starts at lr/10)"),
        )
    if after > before - LR_FLAT * scale:
        if before < LR_CONVERGED * expected:
            return check(
                "pass",
                f"the loss is already near 0 (untrained: {label}): the model has converged on "
                "these examples, and this lr does not disturb it",
            )
        if moved > LR_MOVED:
            return check(
                "warn",
                f"the loss does not fall although the weights moved by {moved:.2g}× their norm: "
                "the steps are too large to descend (the network may collapse to constant "
                "outputs); the learning rate is probably too high (lower it 3-10×)",
            )
        if before >= LR_UNTRAINED * expected:
            return check(
                "warn",
                f"the loss stays near its untrained value ({label}) and the weights barely move: "
                "not learning; the learning rate is probably too low (raise it 10×, or run the LR "
                "finder)",
            )
        return check(
            "warn",
            f"the loss stalls (untrained: {label}): the learning rate is too low for this "
            "stage, or the model fits no better (see overfit and fit_gap)",
        )
    bump = f" (after a bump to {peak:.3g}, under {LR_SPIKE:g}× its start)" if bumped else ""
    return check("pass", f"the loss goes down{bump}")


def _check_fit_gap(ctx: _Ctx) -> Check:
    """Train/validation accuracy gap (CS231n: "big gap = overfitting => increase regularization
    strength; no gap => increase model capacity")."""
    if ctx.history:
        last = ctx.history[-1]
        if "train_acc" not in last or "val_acc" not in last:
            return Check(
                "fit_gap", "skip", None, "the history has no train_acc and val_acc to compare"
            )
        train_acc, val_acc = float(last["train_acc"]), float(last["val_acc"])
        running = " (running, over the epoch)"
        where = f"after {len(ctx.history)} epochs of the run"
    else:
        if ctx.xv is None or not len(ctx.xv):
            return Check("fit_gap", "skip", None, "no validation data")
        model = _dropout_off(_copy(ctx))
        optimizer = _optimizer(ctx, model)
        epochs = ctx.budget["gap_epochs"]
        per_epoch = max(1, len(ctx.x) // min(ctx.batch_size, len(ctx.x)))
        losses = []
        for xb, yb in _batches(ctx, epochs * per_epoch):
            model.train()
            losses.append(_step(model, optimizer, ctx.loss_fn, xb, yb))
            if not math.isfinite(losses[-1]):
                break
        ctx.report.curves["fit_gap"] = losses
        if not math.isfinite(losses[-1]):
            return Check(
                "fit_gap",
                "fail",
                None,
                "the loss became NaN/inf during the short training: lower the learning rate",
            )
        model.eval()
        train_acc, val_acc = _accuracy(model, ctx.x, ctx.y), _accuracy(model, ctx.xv, ctx.yv)
        running = ""
        where = f"after a {epochs}-epoch run on {len(ctx.x)} examples"
    gap = train_acc - val_acc
    detail = f"train {train_acc:.1%}{running}, val {val_acc:.1%} {where}"
    if gap > GAP_OVERFIT:
        return Check(
            "fit_gap",
            "warn",
            gap,
            f"big gap ({gap:.0%}) = overfitting: increase regularisation (weight decay, dropout, "
            "augmentation) or get more data",
            detail,
        )
    if train_acc < UNDERFIT_ACC and gap < GAP_SMALL:
        return Check(
            "fit_gap",
            "warn",
            gap,
            "no gap and low training accuracy = underfitting: increase model capacity or train "
            "longer",
            detail,
        )
    return Check("fit_gap", "pass", gap, "train and validation accuracy are close", detail)


_RUNNERS: dict[str, Callable[[_Ctx], Check]] = {
    "initial_loss": _check_initial_loss,
    "regularization": _check_regularization,
    "overfit": _check_overfit,
    "gradcheck": _check_gradcheck,
    "update_ratio": _check_update_ratio,
    "learning_rate": _check_learning_rate,
    "fit_gap": _check_fit_gap,
}
