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
update_ratio        ‖Δw‖/‖w‖ per weight tensor over 5 optimiser steps (median): ~1e-3 healthy;
                    warn outside 1e-4…1e-2, fail above 0.5 or non-finite.
dead_relus          fraction of ReLU units (channels/neurons) that output 0 for the whole batch:
                    warn > 25 %, fail > 50 % in some layer.
saturation          fraction of tanh/sigmoid outputs with |tanh| > 0.99 (sigmoid < 0.01 or > 0.99):
                    warn > 10 %, fail > 50 % in some layer.
activation_scale    std of the watched layers' outputs: fail when one is 0 or non-finite, warn when
                    the smallest is below 1 % of the largest (vanishing or exploding activations).
learning_rate       50 steps at the given lr: NaN/inf or a rising loss (last steps above 1.5× the
                    first, or any step above 3×) fail, "too high"; a loss that falls by less than
                    1 % warns, "too low" ("loss not going down: learning rate too low").
fit_gap             train − validation accuracy after a short training (or from a run's history):
                    gap > 10 % warns of overfitting (more regularisation, more data); train accuracy
                    below 80 % with a gap under 5 % warns of underfitting (more capacity, longer).
==================  ===============================================================================

A status is "pass", "warn", "fail", or "skip" (the check does not apply: no ReLU layers, no
validation data, trained weights for the initial-loss check); only "fail" makes `failed` true.
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
from striate.train.losses import make_loss
from striate.train.optim import make_optimizer, param_groups

__all__ = ["CHECKS", "STATUSES", "Check", "DoctorReport", "doctor"]

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
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}

# thresholds (see the module docstring)
INITIAL_LOSS_PASS, INITIAL_LOSS_FAIL = 0.2, 0.5
OVERFIT_PASS, OVERFIT_WARN = 0.95, 0.6
GRAD_PASS, GRAD_FAIL = 1e-4, 1e-2
RATIO_LOW, RATIO_HIGH, RATIO_FAIL = 1e-4, 1e-2, 0.5
DEAD_WARN, DEAD_FAIL = 0.25, 0.5
SAT_WARN, SAT_FAIL = 0.1, 0.5
SCALE_WARN = 1e-2
LR_FLAT, LR_RISE, LR_SPIKE = 0.01, 1.5, 3.0
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
            }
        )

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
    ``nesterov``, ``loss`` are the training settings under test (`make_optimizer`, `make_loss`).
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
    make_optimizer(opt, [torch.zeros(1, requires_grad=True)], lr, weight_decay, momentum, nesterov)
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
    """‖Δw‖/‖w‖ per weight tensor (CS231n: "want this to be somewhere around 0.001")."""
    model = _dropout_off(_copy(ctx))
    optimizer = _optimizer(ctx, model)
    weights = [(k, p) for k, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    if not weights:
        return Check("update_ratio", "skip", None, "the model has no trainable weight matrices")
    ratios: dict[str, list[float]] = {k: [] for k, _ in weights}
    for xb, yb in _batches(ctx, ctx.budget["ratio_steps"]):
        before = [p.detach().clone() for _, p in weights]
        loss = _step(model, optimizer, ctx.loss_fn, xb, yb)
        for (k, p), b in zip(weights, before, strict=True):
            scale = float(b.norm())
            ratios[k].append(float((p.detach() - b).norm()) / scale if scale > 0 else math.inf)
        if not math.isfinite(loss):
            for k in ratios:
                ratios[k].append(math.nan)
            break
    per_layer = {
        k: (math.nan if any(math.isnan(v) for v in vs) else float(np.median(vs)))
        for k, vs in ratios.items()
    }
    ctx.report.layer_ratios = per_layer
    values = np.asarray(list(per_layer.values()))
    lo_name = min(per_layer, key=lambda k: per_layer[k] if math.isfinite(per_layer[k]) else 1e9)
    hi_name = max(per_layer, key=lambda k: per_layer[k] if math.isfinite(per_layer[k]) else 1e9)
    finite = values[np.isfinite(values)]
    detail = (
        f"{finite.min():.1e} ({lo_name}) … {finite.max():.1e} ({hi_name})"
        if len(finite)
        else "non-finite"
    )
    if len(finite) < len(values) or (len(finite) and finite.max() > RATIO_FAIL):
        return Check(
            "update_ratio",
            "fail",
            float(values.max()) if len(finite) == len(values) else math.nan,
            "updates of half the weights' size or more (or NaN): the learning rate is far too high",
            detail,
        )
    high = finite.max() > RATIO_HIGH
    low = finite.min() < RATIO_LOW
    if high or low:
        which = []
        if high:
            which.append(f"{hi_name} above 1e-2: lr too high")
        if low:
            which.append(f"{lo_name} below 1e-4: lr too low (or no gradient reaches it)")
        return Check(
            "update_ratio",
            "warn",
            float(finite.max() if high else finite.min()),
            "update/weight ratio should be ~1e-3; " + "; ".join(which),
            detail,
        )
    return Check(
        "update_ratio",
        "pass",
        float(np.exp(np.log(finite).mean())),
        "update/weight ratios are around 1e-3 in every layer",
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
            detail = f"std {stds.min():.2g} ({lo}) … {stds.max():.2g} ({hi})"
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
    """Symptoms of a short run (CS231n: "loss not going down: learning rate too low; loss
    exploding: learning rate too high"; "cost: NaN almost always means high learning rate")."""
    model = _dropout_off(_copy(ctx))
    optimizer = _optimizer(ctx, model)
    losses: list[float] = []
    for xb, yb in _batches(ctx, ctx.budget["lr_steps"]):
        losses.append(_step(model, optimizer, ctx.loss_fn, xb, yb))
        if not math.isfinite(losses[-1]):
            break
    ctx.report.curves["learning_rate"] = losses
    lr = f"lr {ctx.lr:g}"
    if not math.isfinite(losses[-1]):
        return Check(
            "learning_rate",
            "fail",
            losses[-1],
            f"{lr}: the loss became NaN/inf at step {len(losses)}: the learning rate is too "
            "high (lower it 10×, or run the LR finder)",
            f"{losses[0]:.3g} → {losses[-1]} at step {len(losses)}",
        )
    k = max(2, len(losses) // 10)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    peak = max(losses)
    detail = f"{first:.3g} → {last:.3g} in {len(losses)} steps ({lr})"
    if last > LR_RISE * first or peak > LR_SPIKE * max(first, 1e-12):
        return Check(
            "learning_rate",
            "fail",
            last / first,
            f"{lr}: the loss explodes: the learning rate is too high (lower it 10×, or run the "
            "LR finder)",
            detail,
        )
    drop = (first - last) / max(first, 1e-12)
    if drop < LR_FLAT:
        return Check(
            "learning_rate",
            "warn",
            last / first,
            f"{lr}: the loss is flat: the learning rate is probably too low (raise it 10×, or "
            "run the LR finder)",
            detail,
        )
    return Check("learning_rate", "pass", last / first, f"{lr}: the loss goes down", detail)


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
        where = f"after a {epochs}-epoch run on {len(ctx.x)} examples"
    gap = train_acc - val_acc
    detail = f"train {train_acc:.1%}, val {val_acc:.1%} {where}"
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
