"""The optimiser step, written once: the Trainer, the LR finder and the doctor's experiments all
take their steps through `optimizer_step`.

    def closure():                      # zero the gradients, forward, backward, return the loss
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    value = optimizer_step(optimizer, closure)

L-BFGS calls the closure as often as its line search needs; every other optimiser calls it once,
and steps only when the loss is finite (a non-finite value is returned for the caller to act on).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def optimizer_step(
    optimizer: torch.optim.Optimizer,
    closure: Callable[[], torch.Tensor],
    *,
    value: Callable[[torch.Tensor], float] = float,
    before_step: Callable[[], None] | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """One step; returns the loss as `value` reads it (the Trainer's reads the mean over all
    processes under torchrun, so that every process takes the same decision). `before_step`
    runs between backward and the update, with the gradients unscaled (clipping); `scaler`
    (fp16) scales the backward pass inside `closure` and the step here."""
    if isinstance(optimizer, torch.optim.LBFGS):
        return float(optimizer.step(closure).detach())
    loss = value(closure().detach())
    if scaler is not None:
        scaler.unscale_(optimizer)
    if not math.isfinite(loss):
        return loss
    if before_step is not None:
        before_step()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return loss
