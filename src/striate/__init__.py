"""striate: deep learning for computer vision, from the data to trained and understood models.

The names below are imported on first use, so `striate --help` does not wait for torch.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from striate.errors import ConfigError, DataError, DownloadError, StriateError

# OpenMP threads that sleep while waiting instead of spinning: no cost on an idle machine, and on
# a loaded 2-core one training ran 3.6x faster (29 s -> 8 s), because a spinning thread no longer
# holds the core its partner needs. Read when torch loads, so it applies when striate is imported
# first (as the `striate` command does); set OMP_WAIT_POLICY yourself to choose.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

_LAZY = {
    "ImageSet": "striate.data",
    "load_dataset": "striate.data",
    "load_model": "striate.models.io",
    "Trainer": "striate.engine",
    "engine": None,
    "models": None,
    "classic": None,
    "data": None,
    "evaluate": None,
    "train": None,
}

__all__ = [
    "ConfigError",
    "DataError",
    "DownloadError",
    "ImageSet",
    "StriateError",
    "Trainer",
    "__version__",
    "classic",
    "data",
    "engine",
    "evaluate",
    "load_dataset",
    "load_model",
    "models",
    "train",
]

if TYPE_CHECKING:
    from striate import classic, data, engine, evaluate, models, train
    from striate.data import ImageSet, load_dataset
    from striate.engine import Trainer
    from striate.models.io import load_model


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'striate' has no attribute {name!r}")
    module = _LAZY[name]
    value = (
        importlib.import_module(f"striate.{name}")
        if module is None
        else getattr(importlib.import_module(module), name)
    )
    globals()[name] = value
    return value
