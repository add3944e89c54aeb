"""What to say when the loss becomes NaN or infinite: where it happened, which gradients and
weights blew up, the last finite losses, the last good checkpoint, and what to try."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from striate.errors import StriateError

if TYPE_CHECKING:
    from striate.engine.trainer import Trainer


class TrainingDiverged(StriateError):
    """The loss became NaN or infinite; the message carries the diagnosis."""


def diagnose(self: Trainer, value: float) -> str:
    """Why the loss became non-finite, as far as the gradients and weights show it."""
    grads, weights = [], []
    for name, p in self.model.named_parameters():
        weights.append((name, float(p.detach().float().norm())))
        if p.grad is not None:
            grads.append((name, float(p.grad.detach().float().norm())))
    lines = [
        f"the loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}) "
        f"with lr {self.lr:.3g}"
    ]
    for what, norms in (("gradient", grads), ("weight", weights)):
        bad = [n for n, v in norms if not math.isfinite(v)]
        good = sorted(((n, v) for n, v in norms if math.isfinite(v)), key=lambda t: -t[1])
        parts = []
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            parts.append(f"non-finite {what}s in {', '.join(bad[:5])}{more}")
        if good:
            parts.append(f"largest {what} norms: " + ", ".join(f"{n} {v:.3g}" for n, v in good[:3]))
        if parts:
            lines.append("; ".join(parts))
    finite = [v for v in self.steps_log["loss"] if math.isfinite(v)]
    if finite:
        lines.append(f"last finite losses: {', '.join(f'{v:.4g}' for v in finite[-5:])}")
    if self.out is not None and (self.out / "checkpoints" / "last.safetensors").is_file():
        lines.append(f"last good checkpoint: {self.out / 'checkpoints' / 'last.safetensors'}")
    advice = "lower the learning rate (try `striate lr-find`) or clip gradients (--clip-grad)"
    if self.precision.name != "fp32":
        advice += f", or train in fp32 (this run used {self.precision.name})"
    lines.append(f"advice: {advice}")
    return "\n  ".join(lines)
