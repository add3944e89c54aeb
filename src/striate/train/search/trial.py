"""One trial of a search: the configuration it trains (the sampled values, its own seed, its
stage's length), its assembly by the run's one `prepare` (so a fine-tuned striate model keeps the
normalisation in its model.json, as under `striate train`), the callbacks it trains with (the
lectures' 3x loss abort, and the report of each epoch's validation accuracy to the Optuna trial,
with a heartbeat, so a live trial is never taken for one left by a dead process), and what it
records."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from striate.engine.callbacks import Callback
from striate.engine.trainer import TrainingDiverged
from striate.errors import StriateError
from striate.train.assembly import Prepared, RunData, prepare
from striate.train.config import TrainConfig
from striate.train.search._values import finite
from striate.train.search.space import apply_params
from striate.train.search.stages import Stage

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


def trial_config(
    config: TrainConfig, params: Mapping[str, Any], stage: Stage, seed: int
) -> TrainConfig:
    """`config` with the sampled `params`, the trial's own `seed` and, unless the length of
    training is searched, the stage's number of epochs."""
    values = apply_params(config, params).to_dict()
    values["seed"] = seed
    if stage.epochs is not None and "epochs" not in params and "steps" not in params:
        values.update(epochs=stage.epochs, steps=None)
    return TrainConfig.from_dict(values)


@dataclass
class Outcome:
    """How a trial ended: `state` "complete", "pruned" (aborted for a diverging loss, or stopped
    by the pruner) or "fail", with the `reason`; its `history` and how long it took. `interrupted`:
    the user stopped it, and nothing is recorded."""

    state: str
    reason: str | None
    history: list[dict[str, float]]
    seconds: float
    interrupted: bool = False

    def attrs(self) -> dict[str, Any]:
        """What the trial records: the best epoch's validation accuracy and loss, the last
        training loss, the epochs run, the seconds taken and why it stopped early."""
        history = self.history
        accs = [h["val_acc"] for h in history if finite(h.get("val_acc"))]
        best = int(np.argmax(accs)) if accs else None
        return {
            "seconds": self.seconds,
            "epochs_run": len(history),
            "reason": self.reason,
            "val_acc": accs[best] if best is not None else None,
            "val_loss": history[best].get("val_loss") if best is not None else None,
            "train_loss": history[-1]["train_loss"] if history else None,
        }


def train_trial(
    config: TrainConfig, data: RunData, trial: optuna.trial.Trial, abort_factor: float
) -> Outcome:
    """Train `config` on `data` (the search's split; the training part maybe a subset) as the
    run's `prepare` assembles it, with the loss abort and the report to `trial`. A user error
    (a setting the model refuses) fails the trial; an interruption propagates."""
    start = time.perf_counter()
    abort, report = LossAbort(abort_factor), ReportToTrial(trial)
    state, reason, history, interrupted = "complete", None, [], False
    run: Prepared | None = None
    try:
        run = prepare(config, progress=False, data=data, callbacks=[abort, report])
        history = run.trainer.fit(run.model, run.train, run.val)
        if run.trainer.interrupted:
            interrupted = True
        elif abort.reason:
            state, reason = "pruned", "aborted: " + abort.reason
        elif report.pruned:
            state, reason = "pruned", report.pruned
    except TrainingDiverged as e:
        state, reason = "pruned", "aborted: " + str(e).splitlines()[0]
        history = run.trainer.history if run is not None else []
    except StriateError as e:
        state, reason = "fail", f"failed: {e}"
    outcome = Outcome(state, reason, history, time.perf_counter() - start, interrupted)
    if state == "complete" and outcome.attrs()["val_acc"] is None:
        outcome.state, outcome.reason = "fail", "failed: no validation accuracy (val_size 0?)"
    return outcome
