"""Batch norm's train/test discrepancy: the same examples scored in eval mode (running statistics)
and in train mode (the statistics of each batch of the run's size).

Batch norm normalises with the minibatch's mean and variance in training and with running averages
of them at test time (Ioffe and Szegedy 2015, arXiv:1502.03167, Alg. 2; CS231n lecture 7, "Batch
Normalization: Test Time"). When the two disagree the model's test-time outputs are not the ones
it was trained to give: running statistics that were reset, estimated on other data or other
preprocessing, or lag the weights; and at small batches the batch statistics are noisy, so a model
left in train mode during evaluation (no ``model.eval()``) scores worse and its predictions depend
on the other examples in the batch (Wu and He, "Group Normalization", ECCV 2018, §3: batch norm's
error grows as the batch shrinks; layer, instance and group norm do not depend on the batch).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from striate.train.doctor.checks.context import (
    Ctx,
    copy_model,
    dropout_off,
    fixed_batches,
    logits_of,
    optimizer_for,
    train_step,
)
from striate.train.doctor.checks.registry import check
from striate.train.doctor.report import Check

BN_STEPS = 60  # a short training that gives an untrained model's running statistics values
BN_WARN, BN_FAIL = 0.03, 0.20  # accuracy gap (train mode − eval mode): warn, fail beyond


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm layers that keep running statistics (used in eval mode)."""
    return [
        m
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


def scores_both_ways(
    model: nn.Module, x: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of ``x`` in eval mode and in train mode, in batches of ``batch_size``; the running
    statistics are left as they were (train mode on a copy)."""
    probe = dropout_off(copy.deepcopy(model))  # train mode: batch statistics, dropout off
    model.eval()
    eval_out, train_out = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            eval_out.append(logits_of(model, xb))
            train_out.append(logits_of(probe, xb))
    return torch.cat(eval_out), torch.cat(train_out)


@check(
    "batchnorm",
    "batch norm's train/test discrepancy: running against batch statistics",
    order=95,
    aliases=("bn", "bn_train_test", "batch_norm"),
)
def check_batchnorm(ctx: Ctx) -> Check:
    """Accuracy of the validation examples in train mode (batch statistics, random batches of the
    run's size) minus that in eval mode (running statistics)."""
    model = copy_model(ctx)
    layers = batchnorm_layers(model)
    if not layers:
        return Check("batchnorm", "skip", None, "no batch-norm layers with running statistics")
    trained = ""
    if not ctx.pretrained and all(int(m.num_batches_tracked) == 0 for m in layers):
        # untrained: the running statistics are still 0 and 1; a short training fills them
        model = dropout_off(model)
        optimizer = optimizer_for(ctx, model)
        for xb, yb in fixed_batches(ctx, BN_STEPS):
            model.train()
            train_step(model, optimizer, ctx.loss_fn, xb, yb)
        trained = f" after {BN_STEPS} training steps"
    x, y = (ctx.xv, ctx.yv) if ctx.xv is not None and len(ctx.xv) else (ctx.x, ctx.y)
    # random batches (permutation of seed + 2), as in training: a set stored class by class
    # would otherwise give batch norm the statistics of one class per batch
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(ctx.seed + 2))
    x, y = x[order.to(x.device)], y[order.to(y.device)]
    bs = min(ctx.batch_size, len(x))
    eval_logits, train_logits = scores_both_ways(model, x, bs)
    if not (torch.isfinite(eval_logits).all() and torch.isfinite(train_logits).all()):
        return Check(
            "batchnorm",
            "fail",
            None,
            "the outputs are NaN/inf in eval or train mode: check the running variances "
            "(negative or NaN) and the inputs",
        )
    acc_eval = float((eval_logits.argmax(1) == y).float().mean())
    acc_train = float((train_logits.argmax(1) == y).float().mean())
    agree = float((eval_logits.argmax(1) == train_logits.argmax(1)).float().mean())
    gap = acc_train - acc_eval
    detail = (
        f"{len(x)} examples{trained}: eval mode (running statistics) {acc_eval:.1%}, train mode "
        f"(batches of {bs}) {acc_train:.1%}; {1 - agree:.1%} of predictions change, "
        f"{len(layers)} batch-norm layers"
    )
    if gap > BN_WARN:
        return Check(
            "batchnorm",
            "fail" if gap > BN_FAIL else "warn",
            gap,
            f"the running statistics disagree with the batch statistics (eval mode scores "
            f"{gap:.0%} below train mode): recompute them with forward passes over training data "
            "in train mode, and check that test inputs are preprocessed as in training",
            detail,
        )
    if -gap > BN_WARN:
        return Check(
            "batchnorm",
            "fail" if -gap > BN_FAIL else "warn",
            gap,
            f"a model evaluated in train mode (no model.eval()) at batch {bs} scores {-gap:.0%} "
            "below eval mode: call model.eval() before evaluating; batch statistics of small "
            "batches are noisy (larger batches, or group/layer norm, which do not depend on the "
            "batch)",
            detail,
        )
    return Check(
        "batchnorm", "pass", gap, "running and batch statistics give the same accuracy", detail
    )
