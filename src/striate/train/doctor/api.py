"""`doctor`: the selected checks (of `DOCTOR_CHECKS`), each on a copy of the model, into a
`DoctorReport`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from striate.checks import integer, number, one_of
from striate.data import ImageSet, Normalizer
from striate.engine.losses import make_loss
from striate.engine.optim import make_optimizer
from striate.engine.schedules import Schedule
from striate.errors import ConfigError, StriateError
from striate.train.doctor.checks import DOCTOR_CHECKS
from striate.train.doctor.checks.context import (
    Ctx,
    as_xy,
    logits_of,
    num_examples,
    run_schedule,
)
from striate.train.doctor.checks.registry import aliases, groups, ordered
from striate.train.doctor.report import DoctorReport

CHECKS = tuple(e.name for e in ordered())  # the check names in report order


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
    selected = select_checks(checks)
    for name, v, low in (
        ("batch_size", batch_size, 1),
        ("max_samples", max_samples, 4),
        ("overfit_size", overfit_size, 1),
        ("overfit_steps", overfit_steps, 1),
        ("lr_steps", lr_steps, 5),
        ("ratio_steps", ratio_steps, 1),
        ("gap_epochs", gap_epochs, 1),
    ):
        integer("doctor", name, v, low=low)
    number("doctor", "lr", lr, low=0, low_open=True)
    loss_fn = make_loss(loss)
    loss_key = "hinge" if loss.strip().lower() in ("hinge", "svm") else "cross_entropy"
    probe_opt = make_optimizer(
        opt, [torch.zeros(1, requires_grad=True)], lr, weight_decay, momentum, nesterov
    )
    sched, sched_name = run_schedule(
        schedule,
        schedule_options,
        total_steps,
        num_examples(data),
        batch_size,
        probe_opt,
    )
    dev = resolve_device(device)

    if isinstance(normalize, str):
        if normalize != "auto":
            raise ConfigError(
                f"doctor: normalize must be 'auto', a callable or None, got {normalize!r}"
            )
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
    x, y, c_data = as_xy(data, "training", normalize, max_samples, seed)
    xv = yv = None
    c_val = None
    if val is not None:
        xv, yv, c_val = as_xy(val, "validation", normalize, max_samples, seed)
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

    classes = infer_num_classes(model, x, y, yv, c_data, c_val, num_classes)
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
    ctx = Ctx(
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
        for batch in _batches(selected):
            # a group's checks share one measurement: they share its time too
            start = time.perf_counter()
            torch.manual_seed(seed)
            found = [DOCTOR_CHECKS.get(name)(ctx) for name in batch]
            spent = (time.perf_counter() - start) / len(found)
            for c in found:
                c.seconds = spent
            report.checks += found
    return report


def _batches(selected: Sequence[str]) -> list[list[str]]:
    """The selected checks in runs: a group's checks together, every other check alone."""
    out: list[list[str]] = []
    last = None
    for name in selected:
        group = DOCTOR_CHECKS.entry(name).meta["group"]
        if group is not None and group == last:
            out[-1].append(name)
        else:
            out.append([name])
        last = group
    return out


def select_checks(checks: Iterable[str] | None) -> list[str]:
    """The names of `checks` (check names, group names such as "activations", or aliases; a
    comma-separated string too) in report order; None selects every check."""
    if checks is None:
        return list(CHECKS)
    if isinstance(checks, str):
        checks = [s.strip() for s in checks.split(",") if s.strip()]
    by_group, spelled = groups(), aliases()
    wanted: set[str] = set()
    for name in checks:
        key = str(name).strip().lower().replace("-", "_")
        key = spelled.get(key, key)
        if key in by_group:
            wanted.update(by_group[key])
        else:
            wanted.add(one_of("doctor", "check", key, [*CHECKS, *by_group]))
    if not wanted:
        raise ConfigError(f"doctor: checks must name at least one of {', '.join(CHECKS)}, got none")
    return [c for c in CHECKS if c in wanted]


def checks_help() -> str:
    """The check names for `--checks`' help: every check, then each group with its checks."""
    by_group = groups()
    parts = [", ".join(CHECKS)]
    parts += [f"{g} ({', '.join(names)})" for g, names in by_group.items()]
    return "; ".join(parts)


def infer_num_classes(
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
            out = logits_of(probe, x[:2].cpu())
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
