"""The learning rate's symptoms: update/weight ratios over the schedule's first steps, and
a short run's loss."""

from __future__ import annotations

import math

import numpy as np
import torch

from striate.train.doctor.checks.context import (
    Ctx,
    copy_model,
    ctx_scheduler,
    dropout_off,
    expected_loss,
    fixed_batches,
    logits_of,
    lr_range,
    optimizer_for,
    probe_batch,
    schedule_label,
    train_step,
)
from striate.train.doctor.checks.registry import check
from striate.train.doctor.checks.thresholds import (
    LR_CONVERGED,
    LR_FLAT,
    LR_MOVED,
    LR_RISE,
    LR_SPIKE,
    LR_UNTRAINED,
    RATIO_BAND,
    RATIO_FAIL,
    RATIO_HIGH,
    RATIO_LAYER_FAIL,
    RATIO_LOW,
    RATIO_STUCK,
)
from striate.train.doctor.report import Check


@check("update_ratio", "update/weight ratio over the schedule's first steps", order=50)
def check_update_ratio(ctx: Ctx) -> Check:
    """‖Δw‖/‖w‖ per weight tensor over the first steps of the run's schedule (CS231n: "want this
    to be somewhere around 0.001"); the verdict is on the typical (median) layer, calibrated on
    runs that train well (see the module docstring)."""
    model = dropout_off(copy_model(ctx))
    optimizer = optimizer_for(ctx, model)
    scheduler = ctx_scheduler(ctx, optimizer)
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
    for xb, yb in fixed_batches(ctx, ctx.budget["ratio_steps"]):
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        before = [p.detach().clone() for _, p in weights]
        loss = train_step(model, optimizer, ctx.loss_fn, xb, yb)
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
    at = f"{lr_range(lrs)}, {schedule_label(ctx, len(lrs))}"
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
            f"the typical update/weight ratio {typical:.1e} is above {RATIO_HIGH:g} "
            f"({RATIO_BAND}): the learning rate is probably too high",
            detail,
        )
    expected, label = expected_loss(ctx)
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
            f"the typical update/weight ratio {typical:.1e} is below {RATIO_LOW:g} ({RATIO_BAND}): "
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


@check(
    "learning_rate",
    "the loss of a short run up to the peak lr",
    order=90,
    aliases=("lr",),
)
def check_learning_rate(ctx: Ctx) -> Check:
    """Symptoms of a short run up to the peak lr (CS231n: "loss not going down: learning rate
    too low; loss exploding: learning rate too high"; "cost: NaN almost always means high
    learning rate").

    A schedule that starts low (1cycle at lr/10, a warm-up) rises to the peak over the first
    half of the steps, as the run's warm-up does in its first epochs; the second half is at the
    peak. The loss before and after is measured on one fixed batch, so the two numbers printed
    are the ones compared. A flat loss is told apart three ways: near 0 it has converged; near
    its untrained value with the weights barely moved the lr is too low; with the weights moved
    a lot it is too high (the network collapsed to constant outputs)."""
    model = dropout_off(copy_model(ctx))
    optimizer = optimizer_for(ctx, model)
    xp, yp = probe_batch(ctx)
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    initial = [p.detach().clone() for p in weights]
    with torch.no_grad():
        before = float(ctx.loss_fn(logits_of(model, xp), yp))
    steps = ctx.budget["lr_steps"]
    start = ctx.schedule.factor(0) if ctx.schedule is not None else 1.0
    ramp = steps // 2 if start < 1 else 0
    losses: list[float] = []
    for i, (xb, yb) in enumerate(fixed_batches(ctx, steps)):
        factor = start + (1 - start) * min(1.0, i / ramp) if ramp else 1.0
        for group in optimizer.param_groups:
            group["lr"] = ctx.lr * factor
        losses.append(train_step(model, optimizer, ctx.loss_fn, xb, yb))
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
        after = float(ctx.loss_fn(logits_of(model, xp), yp))
        w0 = math.sqrt(sum(float(w.double().square().sum()) for w in initial))
        pairs = zip(weights, initial, strict=True)
        dw = math.sqrt(sum(float((p.detach() - w).double().square().sum()) for p, w in pairs))
    moved = dw / w0 if w0 > 0 else 0.0
    expected, label = expected_loss(ctx)
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

    def verdict(status: str, advice: str) -> Check:
        return Check("learning_rate", status, ratio, f"{lr}: {advice}", detail)

    too_high = "the learning rate is too high (lower it 10×, or run the LR finder)"
    if not math.isfinite(after) or after > before + (LR_RISE - 1) * scale:
        return verdict("fail", f"the loss ends higher than it started: {too_high}")
    if spiked and after > LR_UNTRAINED * before:
        return verdict(
            "fail",
            f"the loss explodes to {peak:.3g} ({peak / before:.0f}× its start) and does not come "
            f"back down: {too_high}",
        )
    if spiked:
        return verdict(
            "warn",
            f"the loss jumps to {peak:.3g} ({peak / before:.1f}× its start) before it falls: "
            "the learning rate is at the edge of stability; lower it 2-3× if training is erratic"
            + ("" if ramp else " (or warm up: the 1cycle schedule starts at lr/10)"),
        )
    if after > before - LR_FLAT * scale:
        if before < LR_CONVERGED * expected:
            return verdict(
                "pass",
                f"the loss is already near 0 (untrained: {label}): the model has converged on "
                "these examples, and this lr does not disturb it",
            )
        if moved > LR_MOVED:
            return verdict(
                "warn",
                f"the loss does not fall although the weights moved by {moved:.2g}× their norm: "
                "the steps are too large to descend (the network may collapse to constant "
                "outputs); the learning rate is probably too high (lower it 3-10×)",
            )
        if before >= LR_UNTRAINED * expected:
            return verdict(
                "warn",
                f"the loss stays near its untrained value ({label}) and the weights barely move: "
                "not learning; the learning rate is probably too low (raise it 10×, or run the LR "
                "finder)",
            )
        return verdict(
            "warn",
            f"the loss stalls (untrained: {label}): the learning rate is too low for this "
            "stage, or the model fits no better (see overfit and fit_gap)",
        )
    bump = f" (after a bump to {peak:.3g}, under {LR_SPIKE:g}× its start)" if bumped else ""
    return verdict("pass", f"the loss goes down{bump}")
