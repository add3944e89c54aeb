"""Activation statistics: dead ReLUs, saturated tanh/sigmoid units, the spread of layer
stds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from striate.train.activations import activation_stats
from striate.train.doctor.checks.context import Ctx, copy_model, dropout_off, probe_batch
from striate.train.doctor.checks.registry import CheckFn, check
from striate.train.doctor.checks.thresholds import (
    DEAD_FAIL,
    DEAD_WARN,
    SAT_FAIL,
    SAT_WARN,
    SCALE_WARN,
)
from striate.train.doctor.report import Check


def layer_stats(ctx: Ctx) -> list[Any]:
    """Activation statistics per layer on a batch (CS231n lecture 6, activation statistics),
    measured once for the three checks of the group and kept in the report."""
    if "activations" not in ctx.shared:
        model = dropout_off(copy_model(ctx))
        xb, _ = probe_batch(ctx)
        ctx.shared["activations"] = activation_stats(model, xb)
        ctx.report.activations = ctx.shared["activations"]
    return ctx.shared["activations"]


def activation_check(name: str, summary: str, *, order: int) -> Callable[[CheckFn], CheckFn]:
    """Register a check of the activations group (selected together, one measurement)."""
    return check(name, summary, order=order, group="activations")


@activation_check("dead_relus", "fraction of ReLU units that never fire on a batch", order=60)
def check_dead_relus(ctx: Ctx) -> Check:
    """Dead ReLU units: channels or neurons whose output is 0 for the whole batch."""
    return worst_layer(
        ctx,
        "dead_relus",
        "dead_frac",
        (DEAD_WARN, DEAD_FAIL),
        "dead",
        "no ReLU layers",
        "ReLU units are alive",
        "units that never fire get no gradient; check the init (He), large negative "
        "biases, or a too high lr; try leaky ReLU",
    )


@activation_check("saturation", "fraction of saturated tanh/sigmoid outputs", order=70)
def check_saturation(ctx: Ctx) -> Check:
    """Saturated tanh/sigmoid outputs, where the local gradient is near 0."""
    return worst_layer(
        ctx,
        "saturation",
        "saturated_frac",
        (SAT_WARN, SAT_FAIL),
        "saturated",
        "no tanh/sigmoid layers",
        "no layer saturates",
        "saturated units kill the gradient; initialise with Xavier (smaller weights), "
        "normalise the inputs or add batch norm",
    )


@activation_check(
    "activation_scale", "spread of the layers' output stds (vanishing or exploding)", order=80
)
def check_activation_scale(ctx: Ctx) -> Check:
    """The smallest layer output std against the largest."""
    stats = layer_stats(ctx)
    stds = np.asarray([s.std for s in stats], dtype=float)
    if not len(stds):
        return Check("activation_scale", "skip", None, "no layers to watch")
    if not np.isfinite(stds).all() or (stds == 0).any():
        i = int(np.argmin(np.where(np.isfinite(stds), stds, -1.0)))
        return Check(
            "activation_scale",
            "fail",
            float(stds[i]),
            f"{stats[i].name} outputs a constant (or NaN): nothing passes through it",
            f"std {stds[i]:.3g} in {stats[i].name}",
        )
    ratio = float(stds.min() / stds.max())
    lo, hi = stats[int(stds.argmin())].name, stats[int(stds.argmax())].name
    detail = f"std {stds.min():.2g} ({lo}) … {stds.max():.2g} ({hi}), ratio {ratio:.2g}"
    if ratio < SCALE_WARN:
        return Check(
            "activation_scale",
            "warn",
            ratio,
            "activations shrink or grow by over 100× across layers: use Xavier/He "
            "initialisation or batch norm",
            detail,
        )
    return Check(
        "activation_scale",
        "pass",
        ratio,
        "activation scales stay within 100× across layers",
        detail,
    )


def worst_layer(
    ctx: Ctx,
    name: str,
    attr: str,
    limits: tuple[float, float],
    what: str,
    none: str,
    healthy: str,
    advice: str,
) -> Check:
    """Check the layer with the largest fraction `attr` against the (warn, fail) `limits`."""
    layers = [st for st in layer_stats(ctx) if getattr(st, attr) is not None]
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
