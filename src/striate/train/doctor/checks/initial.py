"""Checks of the untrained setup: the initial loss against ln C, the loss rising with
regularisation, and 20 examples overfitted."""

from __future__ import annotations

import math

import torch

from striate.engine.optim import param_groups
from striate.train.doctor.checks.context import (
    Ctx,
    accuracy_of,
    copy_model,
    dropout_off,
    expected_loss,
    logits_of,
    optimizer_for,
    probe_batch,
    train_step,
)
from striate.train.doctor.checks.registry import check
from striate.train.doctor.checks.thresholds import (
    INITIAL_LOSS_FAIL,
    INITIAL_LOSS_PASS,
    OVERFIT_PASS,
    OVERFIT_WARN,
)
from striate.train.doctor.report import Check


@check("initial_loss", "loss of the untrained model against ln C (or C - 1 for hinge)", order=10)
def check_initial_loss(ctx: Ctx) -> Check:
    """Loss at initialisation against ln C (CS231n: "double check that the loss is reasonable")."""
    expected, label = expected_loss(ctx)
    if ctx.pretrained:
        return Check(
            "initial_loss",
            "skip",
            None,
            f"trained weights: the {label} check applies to a freshly initialised model",
        )
    model = dropout_off(copy_model(ctx))
    xb, yb = probe_batch(ctx)
    with torch.no_grad():
        loss = float(ctx.loss_fn(logits_of(model, xb), yb))
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


@check(
    "regularization",
    "the loss rises when the L2 penalty is switched on",
    order=20,
    aliases=("regularisation",),
)
def check_regularization(ctx: Ctx) -> Check:
    """The loss rises when the L2 penalty is switched on (CS231n: "loss went up, good")."""
    model = dropout_off(copy_model(ctx))
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
    xb, yb = probe_batch(ctx)
    with torch.no_grad():
        data_loss = float(ctx.loss_fn(logits_of(model, xb), yb))
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


@check("overfit", "20 examples fitted with regularisation off", order=30)
def check_overfit(ctx: Ctx) -> Check:
    """Overfit a tiny subset with regularisation off (CS231n: "make sure that you can overfit
    a very small portion of the training data")."""
    n = min(ctx.budget["overfit_size"], len(ctx.x))
    steps = ctx.budget["overfit_steps"]
    xs, ys = ctx.x[:n], ctx.y[:n]
    model = dropout_off(copy_model(ctx))
    optimizer = optimizer_for(ctx, model, weight_decay=0.0)
    losses: list[float] = []
    acc = 0.0
    for step in range(1, steps + 1):
        losses.append(train_step(model, optimizer, ctx.loss_fn, xs, ys))
        if not math.isfinite(losses[-1]):
            break
        if step % 10 == 0 or step == steps:
            acc = accuracy_of(model, xs, ys)
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
