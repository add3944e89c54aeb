"""Where striate keeps downloaded datasets and decoded caches (overridable by environment)."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """Default folder for downloaded datasets: $STRIATE_DATA, else ~/.cache/striate/datasets."""
    env = os.environ.get("STRIATE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "striate" / "datasets"


def cache_root() -> Path:
    """Folder for decoded-image caches: $STRIATE_CACHE, else ~/.cache/striate/decoded."""
    env = os.environ.get("STRIATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "striate" / "decoded"
