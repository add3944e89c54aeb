"""The one short loop that optimises pixels (DESIGN.md: pixel optimisation keeps its own loop).

`optimize_image` minimises the sum of named loss terms over an image with L-BFGS (Gatys et al.'s
choice; one iteration per step, clamped to 0–1 after each) or Adam, shows progress with the current
terms (a live bar on a terminal, a line every tenth of the steps elsewhere), hands a snapshot to
`on_snapshot` every `every` steps, and on Ctrl-C stops and returns the last image it had.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from rich.progress import TextColumn

from striate.checks import non_negative_int, number, one_of, positive_int
from striate.errors import StriateError
from striate.progress import bar_progress, output_console

__all__ = ["OPTIMIZERS", "Optimized", "optimize_image"]

OPTIMIZERS = ("lbfgs", "adam")
LossTerms = Callable[[torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class Optimized:
    """The image reached (1×3×H×W, 0–1, detached), the loss terms at each step, and whether the
    loop was stopped early by Ctrl-C."""

    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False


def optimize_image(
    image: torch.Tensor,
    loss_terms: LossTerms,
    *,
    steps: int,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    label: str = "optimising",
    progress: bool = True,
    every: int = 0,
    on_snapshot: Callable[[int, torch.Tensor], None] | None = None,
) -> Optimized:
    """Minimise Σ loss_terms(x).values() over x, starting from `image` (0–1).

    `lr` defaults to 1 for L-BFGS (its line search scales the step) and 0.02 for Adam (pixels in
    0–1). The terms are reported as they are (already weighted), with their sum as "loss".
    """
    owner = "optimize_image"
    steps = positive_int(owner, "steps", steps)
    optimizer = one_of(owner, "optimizer", optimizer, OPTIMIZERS)
    default_lr = 1.0 if optimizer == "lbfgs" else 0.02
    lr = number(owner, "lr", default_lr if lr is None else lr, low=0, low_open=True)
    every = non_negative_int(owner, "every", every)
    x = image.detach().clone(memory_format=torch.contiguous_format).clamp_(0, 1)
    x.requires_grad_(True)
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=50)
    else:
        opt = torch.optim.Adam([x], lr=lr)
    result = Optimized(x.detach().clone())
    last: dict[str, float] = {}

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        terms = loss_terms(x)
        total = sum(terms.values())
        if not torch.isfinite(total):
            raise StriateError(
                f"{label}: the loss became {float(total.detach())} ({_format(terms)}); lower the "
                f"weights or the learning rate"
            )
        total.backward()
        last.clear()
        last.update({k: float(v.detach()) for k, v in terms.items()}, loss=float(total.detach()))
        return total

    with _LossProgress(label, steps, progress) as report:
        try:
            for step in range(1, steps + 1):
                opt.step(closure)
                with torch.no_grad():
                    x.clamp_(0, 1)
                result.image = x.detach().clone()
                result.history.append(dict(last))
                report(step, last)
                if on_snapshot is not None and every and step % every == 0:
                    on_snapshot(step, result.image)
        except KeyboardInterrupt:
            result.interrupted = True
    return result


def _format(terms: dict) -> str:
    return "  ".join(
        f"{k} {float(v.detach() if isinstance(v, torch.Tensor) else v):.4g}"
        for k, v in terms.items()
    )


class _LossProgress:
    """A bar with the loss terms on a terminal; otherwise a line every tenth of the steps."""

    def __init__(self, label: str, steps: int, enabled: bool) -> None:
        self.label, self.steps, self.enabled = label, steps, enabled
        self.console = output_console(stderr=True)
        self.every = max(1, math.ceil(steps / 10))
        self.bar = None

    def __enter__(self) -> Callable[[int, dict[str, float]], None]:
        self.start = time.perf_counter()
        if self.enabled and self.console.is_terminal:
            self.bar = bar_progress(self.console, TextColumn("{task.fields[terms]}"))
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=self.steps, terms="")
        return self.report

    def report(self, step: int, terms: dict[str, float]) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step, terms=_format(terms))
        elif step % self.every == 0 or step == self.steps:
            elapsed = time.perf_counter() - self.start
            self.console.print(
                f"{self.label}: step {step}/{self.steps}  {_format(terms)}  ({elapsed:.1f} s)",
                markup=False,
                highlight=False,
            )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
