"""Snapshot ensembles (Huang et al. 2017, arXiv:1704.00109, "train 1, get M for free"): the
`Snapshots` callback saves the model at the end of each warm-restart cycle of SGDR (Loshchilov &
Hutter 2017, arXiv:1608.03983) or every N epochs, in RUN/snapshots/snapshot-K; `load_snapshots`
reads them back as the members of an ensemble (`striate.train.ensemble.evaluate_ensemble`).

    Trainer(epochs=20, schedule="sgdr", schedule_options={"T_0": 4}, out="runs/x",
            callbacks=[Snapshots()])                     # runs/x/snapshots/snapshot-1 ... -5
    evaluate_ensemble(load_snapshots("runs/x"), load_dataset("cifar10", "test"))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from striate._atomic import atomic_write
from striate.engine.callbacks import Callback
from striate.engine.schedules import SGDR, Warmup
from striate.engine.trainer import Trainer
from striate.errors import ConfigError
from striate.models.io import ImageClassifier, load_model, save_model

SNAPSHOTS = "snapshots"  # the folder in a run that holds snapshot-1, snapshot-2, ...
_SNAPSHOT = re.compile(r"snapshot-(\d+)")


class Snapshots(Callback):
    """Save the model (as `save_model` does) at the end of each warm-restart cycle of the SGDR
    schedule, into `<run>/snapshots/snapshot-K/` (Huang et al. 2017, arXiv:1704.00109).

    `every=N` saves every N epochs instead, whatever the schedule. The snapshot is the trained
    weights right after the step that ends the cycle (not an EMA average); when that step ends
    an epoch, the epoch's metrics are added to its model.json after validation. Class names,
    input shape and normalisation come from the training loader (a `BatchLoader` with a
    `Normalizer`) unless given. The snapshots taken travel in the checkpoint, so a resumed run
    continues them.
    """

    main_only = True

    def __init__(
        self,
        every: int | None = None,
        *,
        folder: str | os.PathLike | None = None,
        classes: Sequence[str] | None = None,
        in_shape: Sequence[int] | None = None,
        normalization: dict[str, list[float]] | None = None,
    ) -> None:
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ConfigError(f"snapshots every must be a positive number of epochs, got {every!r}")
        self.every, self.folder = every, folder
        self.classes, self.in_shape, self.normalization = classes, in_shape, normalization
        self.taken: list[int] = []  # the steps at which snapshots were saved
        self.ends: list[int] = []
        self._pending: tuple[int, Path] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if trainer.step == 0:
            self.taken = []
        self._pending = None
        self.dir = self._folder(trainer)
        self._meta = self._model_info(trainer)
        self.ends = cycle_ends(trainer, self.every)

    def _folder(self, trainer: Trainer) -> Path:
        if self.folder is not None:
            return Path(self.folder)
        if trainer.out is None:
            raise ConfigError("snapshots need a run folder: give Trainer(out=...) or a folder")
        return trainer.out / SNAPSHOTS

    def _model_info(self, trainer: Trainer) -> dict[str, Any]:
        loader = trainer.train_loader
        data = getattr(loader, "data", None)
        classes = self.classes or getattr(data, "classes", None)
        in_shape = self.in_shape or getattr(data, "shape", None)
        if classes is None or in_shape is None:
            raise ConfigError(
                "snapshots need the class names and input shape: train from a BatchLoader or "
                "give Snapshots(classes=..., in_shape=...)"
            )
        norm = self.normalization
        if norm is None and hasattr(getattr(loader, "normalize", None), "state_dict"):
            norm = loader.normalize.state_dict()
        if getattr(trainer.model, "spec", None) is None:
            raise ConfigError(
                "snapshots are saved as model files, which needs a model built by "
                "striate.models.create"
            )
        return {"classes": list(classes), "in_shape": list(in_shape), "normalization": norm}

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        step = trainer.step
        if step not in self.ends or step in self.taken:
            return
        k = self.ends.index(step) + 1  # snapshot-K ends the K-th cycle, however often resumed
        lrs = trainer.steps_log["lr"]
        info = {
            "snapshot": k,
            "step": step,
            "epoch": step / trainer.steps_per_epoch,
            "lr": lrs[-1] if lrs else trainer.lr,  # the lr of the step that ended the cycle
        }

        path = self.dir / f"snapshot-{k}"
        save_model(path, trainer.model, metrics=info, **self._meta)
        self.taken.append(step)
        self._pending = (step, path)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """A snapshot taken at this epoch's last step gets the epoch's metrics."""
        if self._pending is None or self._pending[0] != trainer.step:
            return
        path = self._pending[1] / "model.json"
        self._pending = None
        own = trainer.eval_model is trainer.model  # else validation measured the EMA weights
        keep = ("train_loss", "train_acc") + (("val_loss", "val_acc", "val_top5") if own else ())
        info = json.loads(path.read_text())
        info["metrics"].update({k: float(metrics[k]) for k in keep if k in metrics})
        with atomic_write(path, "w") as f:
            json.dump(info, f, indent=2)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken = [int(s) for s in state["taken"]]


def cycle_ends(trainer: Trainer, every: int | None = None) -> list[int]:
    """The optimiser steps that end a warm-restart cycle of the trainer's SGDR schedule (within
    the run), or every `every` epochs."""

    total, per_epoch = trainer.total_steps, trainer.steps_per_epoch
    if every is not None:
        ends = list(range(every * per_epoch, total + 1, every * per_epoch))
        if not ends:
            raise ConfigError(
                f"snapshots every {every} epochs: the run ends first ({total} steps, "
                f"{total / per_epoch:g} epochs); take them more often"
            )
        return ends
    schedule = trainer.scheduler.schedule
    offset = 0
    if isinstance(schedule, Warmup):
        offset, schedule = schedule.warmup_steps, schedule.inner
    if not isinstance(schedule, SGDR):
        raise ConfigError(
            f"snapshots are taken at the warm restarts of the 'sgdr' schedule, and this run uses "
            f"{trainer.schedule!r}: train with schedule 'sgdr' (T_0=cycle length in epochs) or "
            f"take them every N epochs"
        )
    ends, end, length = [], offset, schedule.T_0
    while end + length <= total:
        end += length
        ends.append(end)
        length *= schedule.T_mult
    if not ends:
        raise ConfigError(
            f"the first warm-restart cycle ends at step {offset + schedule.T_0}, after the "
            f"run's last ({total}): no snapshot would be taken; shorten T_0 or train longer"
        )
    return ends


def snapshot_paths(run: str | os.PathLike) -> list[Path]:
    """The snapshot folders of a run (or of its snapshots/ folder), in the order taken."""
    root = Path(run)
    folder = root if root.name == SNAPSHOTS or not (root / SNAPSHOTS).is_dir() else root / SNAPSHOTS
    found = []
    if folder.is_dir():
        for p in folder.iterdir():
            match = _SNAPSHOT.fullmatch(p.name)
            if match and (p / "model.json").is_file():
                found.append((int(match.group(1)), p))
    if not found:
        raise ConfigError(
            f"no snapshots in {run}: train with snapshots (striate train --schedule sgdr "
            f"--snapshots) or give the run folder that holds {SNAPSHOTS}/snapshot-1, ..."
        )
    return [p for _, p in sorted(found)]


def load_snapshots(
    run: str | os.PathLike, device: str | torch.device = "cpu"
) -> list[ImageClassifier]:
    """The snapshots of a run as models (`load_model`), in the order taken."""

    return [load_model(p, device=device) for p in snapshot_paths(run)]
