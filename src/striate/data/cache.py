"""Decode cache: decoded uint8 images stored as safetensors, keyed by the source's content."""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from striate._atomic import atomic_path
from striate.data.paths import cache_root

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
        warnings.warn(f"ignoring damaged decode cache {path} ({e}); decoding again", stacklevel=3)
        with contextlib.suppress(OSError):
            path.unlink()
        return None
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
        warnings.warn(f"could not write decode cache {cache_path(key)} ({e})", stacklevel=3)
