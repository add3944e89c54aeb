"""Decode cache: decoded uint8 images stored as safetensors, keyed by the source's content.

Entries are never evicted on their own: `entries()` lists them (source, split, size, last use)
and `clear(older_than_days)` deletes them (`striate datasets cache [--clear]`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from striate._atomic import atomic_path
from striate.checks import number
from striate.errors import StriateWarning
from striate.paths import cache_root

FORMAT = "striate-decoded-v1"


def cache_key(*parts: object) -> str:
    """A file-name-safe key from the source fingerprint and everything that shapes the decode."""
    return hashlib.sha256("\0".join([FORMAT, *map(str, parts)]).encode()).hexdigest()[:32]


def cache_path(key: str) -> Path:
    return cache_root() / f"{key}.safetensors"


def load(key: str) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """Images, labels and metadata stored under `key`, or None (a damaged entry is dropped)."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with safe_open(path, "pt") as f:
            info = json.loads((f.metadata() or {})["striate"])
            images = f.get_tensor("images").clone()  # own memory, not a map of the file
            labels = f.get_tensor("labels").clone()
        if images.dtype != torch.uint8 or images.ndim != 4 or len(labels) != len(images):
            raise ValueError("unexpected tensors")
    except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        warnings.warn(
            f"ignoring damaged decode cache {path} ({e}); decoding again",
            StriateWarning,
            stacklevel=3,
        )
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # the modification time tells `clear` when an entry was last used
    return images, labels, info


def store(key: str, images: np.ndarray, labels: np.ndarray, info: dict) -> None:
    """Write an entry atomically; a failure to write only costs the next load a decode."""
    try:
        with atomic_path(cache_path(key)) as tmp:
            save_file(
                {"images": np.ascontiguousarray(images), "labels": labels.astype(np.int64)},
                str(tmp),
                metadata={"striate": json.dumps(info)},
            )
    except OSError as e:
        warnings.warn(
            f"could not write decode cache {cache_path(key)} ({e}); the next load decodes again",
            StriateWarning,
            stacklevel=3,
        )


@dataclass(frozen=True)
class Entry:
    """One cached decode: its file, what it was decoded from (None for entries written before
    striate recorded it, or damaged ones), its size on disk and when it was last used."""

    path: Path
    source: str | None
    split: str | None
    images: int | None
    bytes: int
    last_used: float  # seconds since the epoch


def entries() -> list[Entry]:
    """Every entry in the cache folder, the most recently used first (reads headers only)."""
    root = cache_root()
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("*.safetensors"):
        try:
            stat = path.stat()
        except OSError:  # removed meanwhile
            continue
        source = split = images = None
        try:
            with safe_open(path, "np") as f:
                info = json.loads((f.metadata() or {}).get("striate", "{}"))
                images = int(f.get_slice("images").get_shape()[0])
            source, split = info.get("source"), info.get("split")
        except (SafetensorError, OSError, ValueError, KeyError, IndexError, AttributeError):
            pass
        found.append(Entry(path, source, split, images, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda e: e.last_used, reverse=True)


def clear(older_than_days: float | None = None) -> tuple[int, int]:
    """Delete the entries not used for `older_than_days` days (all when None); returns
    (entries deleted, bytes freed)."""
    number("cache.clear", "older_than_days", older_than_days, low=0, allow_none=True)
    cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
    count = freed = 0
    for e in entries():
        if cutoff is not None and e.last_used >= cutoff:
            continue
        with contextlib.suppress(FileNotFoundError):
            e.path.unlink()
            count, freed = count + 1, freed + e.bytes
    return count, freed
