"""Where striate keeps downloaded datasets and decoded caches (overridable by environment), and
what to say when a path given to a reader is no file."""

from __future__ import annotations

import os
from pathlib import Path

from striate.errors import DataError


def data_root() -> Path:
    """Default folder for downloaded datasets: $STRIATE_DATA, else ~/.cache/striate/datasets."""
    env = os.environ.get("STRIATE_DATA")
    return Path(env) if env else Path.home() / ".cache" / "striate" / "datasets"


def cache_root() -> Path:
    """Folder for decoded-image caches: $STRIATE_CACHE, else ~/.cache/striate/decoded."""
    env = os.environ.get("STRIATE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "striate" / "decoded"


def dataset_dirs(root: str | os.PathLike | None, name: str) -> tuple[list[Path], Path]:
    """Folders to search for a named dataset's files, in order, and where a download should go.

    ROOT/NAME, then ROOT (so both ``--root data`` and ``--root data/mnist`` work); without a root,
    ``data_root()/NAME``. Downloads go to ROOT/NAME, or ROOT itself when it is already named NAME.
    """
    if root is None:
        dest = data_root() / name
        return [dest], dest
    root = Path(root)
    dest = root if root.name == name else root / name
    return list(dict.fromkeys([root / name, root])), dest


def not_a_file(path: Path, error: OSError, expected: str) -> DataError:
    """The DataError for a reader given a missing `path` (FileNotFoundError) or a folder
    (IsADirectoryError) where it `expected` a file ("an IDX file")."""
    if isinstance(error, IsADirectoryError):
        return DataError(f"{path} is a folder, expected {expected}")
    return DataError(f"{path}: no such file; check the path")
