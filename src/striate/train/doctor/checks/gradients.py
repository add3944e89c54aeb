"""The backward pass against centred differences in float64 (`striate.gradcheck`)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from striate.train.doctor.checks.context import Ctx, dropout_off, logits_of
from striate.train.doctor.checks.registry import check
from striate.train.doctor.checks.thresholds import GRAD_FAIL, GRAD_PASS
from striate.train.doctor.report import Check


@check("gradcheck", "analytic gradients against centred differences in float64", order=40)
def check_gradcheck(ctx: Ctx) -> Check:
    """Backward pass against centred differences in float64 (CS231n notes, gradient checks)."""
    from striate.gradcheck import gradcheck

    model = dropout_off(copy.deepcopy(ctx.model).cpu().double())
    n = min(4, len(ctx.x))
    g = torch.Generator().manual_seed(ctx.seed + 2)
    x = ctx.x[:n].detach().cpu().double()
    # jitter breaks exact ties (max-pool over constant image regions) that read as kinks
    x = x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    y = ctx.y[:n].cpu()
    try:
        with torch.no_grad():
            a = logits_of(model, x)
            b = logits_of(model, x)
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
        return ctx.loss_fn(logits_of(model, xin), y)

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
            return ctx.loss_fn(logits_of(model, v), y)

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
                return ctx.loss_fn(logits_of(model, xin), y)

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
