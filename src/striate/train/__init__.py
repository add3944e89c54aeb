"""Image classification on the engine: the run's settings (`TrainConfig`), its assembly
(`prepare`), `train_run` (the whole job behind `striate train`), recipes, transfer learning,
ensembles, hyper-parameter search (the `search` package: `search.search(config, space)`) and
the doctor (the `doctor` package: `doctor.doctor(model, data)`).

    from striate.train import TrainConfig, train_run
    train_run(TrainConfig(epochs=5)).out / "report.html"

The training machinery itself (Trainer, callbacks, optimisers, schedules) is `striate.engine`;
its names are still importable from here for one release, with a DeprecationWarning.
"""

import importlib
import warnings
from typing import Any

from striate.train.config import TrainConfig

# imported when first used: `striate.train.config` alone (the CLI reads its fields to build the
# options of every command on each run) must not import torch
_LAZY = {
    "Check": "striate.train.doctor",
    "DoctorReport": "striate.train.doctor",
    "Ensemble": "striate.train.ensemble",
    "EnsembleResult": "striate.train.ensemble",
    "Snapshots": "striate.train.snapshots",
    "evaluate_ensemble": "striate.train.ensemble",
    "load_snapshots": "striate.train.snapshots",
    "snapshot_paths": "striate.train.snapshots",
    "RunResult": "striate.train.run",
    "train_run": "striate.train.run",
    "SearchResult": "striate.train.search",
    "Stage": "striate.train.search",
    "coarse_fine": "striate.train.search",
    "parse_space": "striate.train.search",
}

__all__ = [
    "Check",
    "DoctorReport",
    "Ensemble",
    "EnsembleResult",
    "RunResult",
    "SearchResult",
    "Snapshots",
    "Stage",
    "TrainConfig",
    "coarse_fine",
    "doctor",
    "evaluate_ensemble",
    "load_snapshots",
    "parse_space",
    "search",
    "snapshot_paths",
    "train_run",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("doctor", "search"):
        return importlib.import_module(f"striate.train.{name}")
    engine = importlib.import_module("striate.engine")
    if name in engine.__all__:
        warnings.warn(
            f"striate.train.{name} has moved to striate.engine.{name}; the old name goes in the "
            f"next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(engine, name)
    raise AttributeError(f"module 'striate.train' has no attribute {name!r}")
