"""TorchScript by tracing or scripting, saved with the metadata as an extra file.

Tracing runs the model once on an example and records the tensor operations it performed: a
Python `if` on a tensor's value or a loop whose length comes from the input is replayed as the
path that example took (lecture 8's conditional and loop). Scripting compiles the Python source,
so control flow stays control flow, but accepts only the TorchScript subset of Python.

Loading (`torch.jit.load`) reads the archive's code and tensors with TorchScript's own unpickler,
which builds only TorchScript types and tensors: it cannot call arbitrary Python objects as
`pickle` (torch.load with weights_only=False) would.

torch 2.13 marks TorchScript deprecated in favour of torch.export; its DeprecationWarnings are
kept out of striate's output here (the `exported` format is the successor).
"""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

import torch

from striate.errors import ConfigError, DataError, StriateWarning
from striate.export.metadata import EXTRA_FILE

METHODS = ("trace", "script")


def trace(module: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """`torch.jit.trace`, with a StriateWarning when the tracer saw Python use a tensor's value
    (a branch or a loop length that the trace freezes); `export` also compares the trace with
    eager PyTorch on batches other than `example`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
    seen = sorted({str(w.message).split(".")[0] for w in caught
                   if issubclass(w.category, torch.jit.TracerWarning)})  # fmt: skip
    if seen:
        warnings.warn(
            "the model may not trace faithfully: the trace froze Python decisions made on tensor "
            f"values ({'; '.join(seen)}); check its outputs on other inputs, or use --method "
            "script",
            StriateWarning,
            stacklevel=2,
        )
    return traced


def script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """`torch.jit.script`; a model outside TorchScript's subset of Python is a ConfigError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(module)
    except Exception as e:  # torch raises several kinds (FrontendError, RuntimeError, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"the model cannot be scripted ({first}); export it with --method trace"
        ) from e


def build(module: torch.nn.Module, example: torch.Tensor, method: str = "trace") -> Any:
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return trace(module, example) if method == "trace" else script(module)


def serialize(scripted: torch.jit.ScriptModule, metadata_json: str) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, buffer, _extra_files={EXTRA_FILE: metadata_json})
    return buffer.getvalue()


def load(source: str | os.PathLike | bytes) -> tuple[torch.jit.ScriptModule, str]:
    """The module (in eval mode, on the CPU) and its metadata JSON ('' if it has none)."""
    extra = {EXTRA_FILE: ""}
    where = "the TorchScript archive" if isinstance(source, bytes) else str(source)
    try:
        f = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(f, map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as e:
        raise DataError(f"{where} is not a readable TorchScript file ({_first(e)})") from e
    return module.eval(), extra[EXTRA_FILE]


def _first(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
