"""The learning-rate range test: train briefly while the lr grows geometrically, watch the loss.

Smith 2017 (arXiv:1506.01186, section 3.3) and Gugger's post "How Do You Find A Good Learning
Rate", which follows fastai: the lr of step i is ``start * (end / start) ** (i / (num_steps - 1))``
(evenly spaced on a log axis); the loss is smoothed by a bias-corrected exponential average

    avg_i = beta * avg_{i-1} + (1 - beta) * loss_i,    smoothed_i = avg_i / (1 - beta ** (i + 1))

(avg_{-1} = 0), and the test stops once ``smoothed > diverge * min(smoothed so far)`` (fastai's 4x)
or a loss is NaN/inf. The model, the optimizer (its state and param groups) and the batch
loader's position are restored afterwards, so the test leaves no trace on the run.

The suggestion is Gugger's rule: "one order of magnitude before the minimum", the lr at the
minimum of the smoothed loss divided by 10. `LRFinderResult.steepest` is the other common reading
of the plot: the lr where the smoothed loss falls fastest against log lr.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch.optim import Optimizer

from striate.errors import ConfigError

__all__ = ["LRFinderResult", "lr_find"]

# The divergence test starts once this many smoothed losses are in (the first few follow single,
# noisy losses).
_MIN_POINTS = 5
# The points the suggestions consider, and the plot shows by default (fastai's skips).
_SKIP_START, _SKIP_END = 10, 5


@dataclass
class LRFinderResult:
    """The losses of an lr range test and the learning rates they suggest.

    ``lrs`` are the first param group's lrs, ``losses`` the smoothed losses, ``raw_losses`` what
    `step` returned. ``suggestion``: the lr at the minimum smoothed loss divided by 10;
    ``steepest``: the lr where the smoothed loss has its most negative slope over log10 lr. Both
    look only at the points `plot` shows by default (all but the first 10 and the last 5) and are
    None when fewer than 2 are left (or, for ``steepest``, when the loss never falls).
    ``stop_reason``: "diverged", "non-finite", "num_steps" or "exhausted" (a one-pass iterator ran
    out); ``stop_lr``: the lr of the step that diverged or gave NaN/inf, else None.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    stop_reason: str = "num_steps"
    stop_lr: float | None = None
    suggestion: float | None = field(init=False, default=None)
    steepest: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.suggestion, self.steepest = _suggest(self.lrs, self.losses, _SKIP_START, _SKIP_END)

    def plot(self, skip_start: int = _SKIP_START, skip_end: int = _SKIP_END) -> Figure:
        """Smoothed loss against lr (log axis) without the first/last points; marks suggestions."""
        for name, v in (("skip_start", skip_start), ("skip_end", skip_end)):
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{name} must be a non-negative whole number, got {v!r}")
        fig = Figure(figsize=(6.4, 4.0), layout="constrained")
        ax = fig.subplots()
        ax.set_xlabel("learning rate")
        ax.set_ylabel("smoothed loss")
        lrs = self.lrs[skip_start : len(self.lrs) - skip_end]
        losses = self.losses[skip_start : len(self.losses) - skip_end]
        if len(lrs) < 2:
            ax.text(
                0.5,
                0.5,
                f"too few points to plot: {len(self.lrs)} recorded, {skip_start} + {skip_end} "
                f"skipped.\nRun more steps (num_steps) or skip fewer.",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_xticks([])
            ax.set_yticks([])
            return fig
        ax.plot(lrs, losses, color="C0")
        ax.set_xscale("log")
        for lr, label, color in (
            (self.suggestion, "suggestion (min / 10)", "C1"),
            (self.steepest, "steepest descent", "C2"),
        ):
            if lr is not None:
                ax.axvline(lr, color=color, linestyle="--", label=f"{label}: {lr:.2g}")
        if self.suggestion is None and self.steepest is None:
            ax.set_title("too few points for a suggestion", fontsize=9)
        else:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
        return fig

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN and inf as None)."""

        def num(v: float | None) -> float | None:
            return None if v is None or not math.isfinite(v) else float(v)

        return {
            "lrs": [num(v) for v in self.lrs],
            "losses": [num(v) for v in self.losses],
            "raw_losses": [num(v) for v in self.raw_losses],
            "suggestion": num(self.suggestion),
            "steepest": num(self.steepest),
            "stop_reason": self.stop_reason,
            "stop_lr": num(self.stop_lr),
        }


def _suggest(
    lrs: list[float], losses: list[float], skip_start: int, skip_end: int
) -> tuple[float | None, float | None]:
    """(min-loss lr / 10, steepest-descent lr) over the points left after the skips."""
    lr = np.asarray(lrs[skip_start : len(lrs) - skip_end], dtype=np.float64)
    loss = np.asarray(losses[skip_start : len(losses) - skip_end], dtype=np.float64)
    if len(lr) < 2:
        return None, None
    suggestion = float(lr[np.argmin(loss)]) / 10.0
    slopes = np.gradient(loss, np.log10(lr))
    i = int(np.argmin(slopes))
    steepest = float(lr[i]) if slopes[i] < 0 else None
    return suggestion, steepest


def _check(name: str, v: Any, ok: bool, what: str) -> float:
    if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and ok):
        raise ConfigError(f"lr_find: {name} must be {what}, got {v!r}")
    return float(v)


def _set_lr(optimizer: Optimizer, lr: float, ratios: list[float]) -> None:
    for group, r in zip(optimizer.param_groups, ratios, strict=True):
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr * r)
        else:
            group["lr"] = lr * r


def lr_find(
    model: torch.nn.Module,
    optimizer: Optimizer,
    batches: Iterable[Any],
    step: Callable[[Any], float],
    *,
    start: float = 1e-8,
    end: float = 10.0,
    num_steps: int = 100,
    beta: float = 0.98,
    diverge: float = 4.0,
) -> LRFinderResult:
    """Run the lr range test and restore the model, optimizer and loader afterwards.

    `step(batch)` does one forward/backward/``optimizer.step()`` at the optimizer's current lr and
    returns the loss. `batches` is re-iterated if it runs out before `num_steps`. Every param group
    gets the test's lr times its ratio to the first group's lr, so discriminative lrs keep their
    ratios. The divergence test assumes positive losses (cross-entropy and the like).
    """
    start = _check("start", start, start > 0 and math.isfinite(start), "a positive number")
    end = _check("end", end, end > start and math.isfinite(end), f"a number above start={start:g}")
    if not isinstance(num_steps, numbers.Integral) or isinstance(num_steps, bool) or num_steps < 2:
        raise ConfigError(f"lr_find: num_steps must be a whole number >= 2, got {num_steps!r}")
    beta = _check("beta", beta, 0 <= beta < 1, "in [0, 1) (0 = no smoothing)")
    diverge = _check("diverge", diverge, diverge > 1, "above 1 (fastai uses 4)")
    if not isinstance(optimizer, Optimizer):
        raise ConfigError(f"lr_find: optimizer must be a torch Optimizer, got {optimizer!r}")
    if not callable(step):
        raise ConfigError("lr_find: step must be a function step(batch) -> loss")
    first = float(optimizer.param_groups[0]["lr"])
    if first <= 0:
        raise ConfigError(
            "lr_find: the first param group's lr is 0; give it a positive lr (its value is "
            "irrelevant, only the ratios of the other groups' lrs to it are used)"
        )
    ratios = [float(g["lr"]) / first for g in optimizer.param_groups]

    # Deep copies on the same device; everything is put back in `finally`, also on errors.
    model_state = copy.deepcopy(model.state_dict())
    optim_state = copy.deepcopy(optimizer.state_dict())
    training = {m: m.training for m in model.modules()}
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grads = [None if p.grad is None else p.grad.detach().clone() for p in params]
    loader_state = None
    if hasattr(batches, "state_dict") and hasattr(batches, "load_state_dict"):
        loader_state = copy.deepcopy(batches.state_dict())
    loader_epoch = getattr(batches, "epoch", None) if hasattr(batches, "set_epoch") else None

    lrs: list[float] = []
    losses: list[float] = []
    raw: list[float] = []
    stop_reason, stop_lr = "num_steps", None
    try:
        it = iter(batches)
        avg, best = 0.0, math.inf
        for i in range(num_steps):
            lr = start * (end / start) ** (i / (num_steps - 1))
            try:
                batch = next(it)
            except StopIteration:
                it = iter(batches)
                try:
                    batch = next(it)
                except StopIteration:
                    if i == 0:
                        raise ConfigError("lr_find: batches yielded no batch at all") from None
                    stop_reason = "exhausted"
                    break
            _set_lr(optimizer, lr, ratios)
            loss = float(step(batch))
            if not math.isfinite(loss):
                stop_reason, stop_lr = "non-finite", lr
                break
            avg = beta * avg + (1 - beta) * loss
            smoothed = avg / (1 - beta ** (i + 1))
            lrs.append(lr)
            losses.append(smoothed)
            raw.append(loss)
            if i >= _MIN_POINTS and best > 0 and smoothed > diverge * best:
                stop_reason, stop_lr = "diverged", lr
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        for m, mode in training.items():
            m.training = mode
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        if loader_state is not None:
            batches.load_state_dict(loader_state)
        elif loader_epoch is not None:
            batches.set_epoch(loader_epoch)
    return LRFinderResult(lrs, losses, raw, stop_reason=stop_reason, stop_lr=stop_lr)
