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

from striate.train import doctor, search
from striate.train.config import TrainConfig
from striate.train.doctor import Check, DoctorReport
from striate.train.ensemble import (
    Ensemble,
    EnsembleResult,
    Snapshots,
    evaluate_ensemble,
    load_snapshots,
    snapshot_paths,
)
from striate.train.run import RunResult, train_run
from striate.train.search import SearchResult, Stage, coarse_fine, parse_space

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
