"""striate: deep learning for computer vision, from the data to trained and understood models.

The names below are imported on first use, so `striate --help` does not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from striate.errors import ConfigError, DataError, DownloadError, StriateError
from striate.threads import set_passive_wait

set_passive_wait()

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
