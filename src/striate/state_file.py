"""Nested training state (optimiser, scheduler, RNGs, callbacks) as one safetensors file.

Tensors go into the safetensors body; everything else becomes a JSON skeleton stored in the file's
metadata, with each tensor replaced by a reference to its key. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from striate._atomic import atomic_path
from striate.errors import StriateError

_TENSOR, _MAP, _TUPLE = "__tensor__", "__map__", "__tuple__"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-able skeleton of `obj`; its tensors are moved into `tensors` under their path."""
    if isinstance(obj, torch.Tensor):
        key = path or "tensor"
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not ({_TENSOR, _MAP, _TUPLE} & obj.keys()):
            return {k: flatten(v, tensors, f"{path}.{k}" if path else k) for k, v in obj.items()}
        # Non-string keys (an optimiser's state is keyed by parameter index): keep their type.
        return {
            _MAP: [
                [k, flatten(v, tensors, f"{path}.{k}" if path else str(k))] for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at '{path}' in a checkpoint")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _MAP in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton[_MAP]}
        if _TUPLE in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton[_TUPLE])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` (nested dicts/lists/tuples of tensors and JSON values) atomically."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"striate_state": json.dumps(skeleton)})
    return Path(path)


def save_weights(
    path: str | os.PathLike,
    weights: dict[str, torch.Tensor],
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a state dict as a safetensors file atomically; each tensor is copied to the CPU, so
    tied weights (an embedding shared with the output layer) are stored once per name, which
    safetensors requires, and load back into the tied parameter."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in weights.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by `save_state`; a damaged or foreign file raises a StriateError."""
    path = Path(path)
    if not path.is_file():
        raise StriateError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path), device=str(device))
        skeleton = json.loads(meta["striate_state"])
        return unflatten(skeleton, tensors)
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
        raise StriateError(
            f"{path} is not a striate checkpoint or is damaged ({type(e).__name__}: {e}); "
            f"pick another checkpoint or start the run again without --resume"
        ) from e
