"""Train against validation accuracy: over- and underfitting."""

from __future__ import annotations

import math

from striate.train.doctor.checks.context import (
    Ctx,
    accuracy_of,
    copy_model,
    dropout_off,
    fixed_batches,
    optimizer_for,
    train_step,
)
from striate.train.doctor.checks.registry import check
from striate.train.doctor.checks.thresholds import GAP_OVERFIT, GAP_SMALL, UNDERFIT_ACC
from striate.train.doctor.report import Check


@check("fit_gap", "train against validation accuracy: over- and underfitting", order=100)
def check_fit_gap(ctx: Ctx) -> Check:
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
        model = dropout_off(copy_model(ctx))
        optimizer = optimizer_for(ctx, model)
        epochs = ctx.budget["gap_epochs"]
        per_epoch = max(1, len(ctx.x) // min(ctx.batch_size, len(ctx.x)))
        losses = []
        for xb, yb in fixed_batches(ctx, epochs * per_epoch):
            model.train()
            losses.append(train_step(model, optimizer, ctx.loss_fn, xb, yb))
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
        train_acc, val_acc = accuracy_of(model, ctx.x, ctx.y), accuracy_of(model, ctx.xv, ctx.yv)
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
