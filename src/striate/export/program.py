"""torch.export: the model captured as an ExportedProgram (an ATen graph with the batch
dimension symbolic) and saved with `torch.export.save` as a .pt2 archive, the metadata in the
archive's extra files.

`torch.export.load` reads the weights with torch.load(weights_only=True) but falls back to full
unpickling when that fails (torch/_export/serde/serialize.py, deserialize_torch_artifact);
`load` here forbids the fallback, so a .pt2 that needs pickle is refused, not run.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator
from typing import Any

import torch

from striate.errors import DataError
from striate.export.metadata import EXTRA_FILE

MAX_BATCH = 65536
_LOAD_LOCK = threading.Lock()


def batch_dim() -> Any:
    """The symbolic batch dimension shared by torch.export and the ONNX exporter."""
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def build(module: torch.nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """Export with a dynamic batch; `example` must hold at least 2 images (a batch of 1 would
    be specialised)."""
    return torch.export.export(module, (example,), dynamic_shapes=({0: batch_dim()},))


def serialize(program: torch.export.ExportedProgram, metadata_json: str) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={EXTRA_FILE: metadata_json})
    return buffer.getvalue()


def load(source: str | os.PathLike | bytes) -> tuple[Any, str]:
    """The program's module (callable like the model) and its metadata JSON."""
    extra = {EXTRA_FILE: ""}
    where = "the .pt2 archive" if isinstance(source, bytes) else str(source)
    try:
        f = io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)
        with _weights_only():
            program = torch.export.load(f, extra_files=extra)
    except Exception as e:  # zipfile, JSON schema and torch errors of many kinds
        text = str(e).strip().splitlines()
        raise DataError(
            f"{where} is not a readable torch.export (.pt2) file "
            f"({text[0] if text else type(e).__name__})"
        ) from e
    return program.module(), extra[EXTRA_FILE]


@contextlib.contextmanager
def _weights_only() -> Iterator[None]:
    """While loading, torch.load refuses weights_only=False (the pickle fallback)."""
    original = torch.load

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            raise DataError("the archive holds objects that only pickle could load: refused")
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    with _LOAD_LOCK:
        torch.load = guarded
        try:
            yield
        finally:
            torch.load = original
