"""The callbacks a trial trains with: the lectures' 3x loss abort, and the report of each epoch's
validation accuracy to the Optuna trial (with a heartbeat, so a live trial is never taken for one
left by a dead process)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from striate.engine.callbacks import Callback
from striate.train.hpsearch._values import finite

if TYPE_CHECKING:
    import optuna

    from striate.engine.trainer import Trainer


class LossAbort(Callback):
    """Stop training when the loss exceeds `factor` × the loss of the first step (cs231n: "if
    the cost is ever > 3 * original cost, break out early"): the settings diverge."""

    def __init__(self, factor: float = 3.0) -> None:
        self.factor = factor
        self.initial: float | None = None
        self.reason: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.initial, self.reason = None, None

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if self.initial is None:
            self.initial = loss
        elif loss > self.factor * self.initial:
            self.reason = (
                f"loss {loss:.4g} exceeded {self.factor:g}x the initial loss {self.initial:.4g} "
                f"at step {trainer.step}"
            )
            trainer.should_stop = True
            trainer.stop_reason = self.reason


class ReportToTrial(Callback):
    """Reports the validation accuracy of each epoch to the Optuna trial, stops the training
    when the pruner says so, and keeps the trial's heartbeat fresh (so that a live trial is
    never taken for one left by a dead process)."""

    def __init__(self, trial: optuna.trial.Trial, heartbeat: float = 30.0) -> None:
        self.trial = trial
        self.heartbeat = heartbeat
        self.pruned: str | None = None
        self._beat = time.time()

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if time.time() - self._beat > self.heartbeat:
            self._beat = time.time()
            self.trial.set_user_attr("heartbeat", self._beat)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        acc = metrics.get("val_acc")
        if acc is None or not finite(acc):
            return
        self.trial.report(float(acc), trainer.epoch)
        self._beat = time.time()
        self.trial.set_user_attr("heartbeat", self._beat)
        if trainer.step < trainer.total_steps and self.trial.should_prune():
            self.pruned = f"pruned after epoch {trainer.epoch} (val_acc {acc:.2%})"
            trainer.should_stop = True
            trainer.stop_reason = self.pruned
