"""The three export formats side by side: their file suffixes, and loading any of them back as one
callable (float 0–1 N×C×H×W images in, logits out) with its metadata, for tests and serving."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from striate.checks import one_of
from striate.errors import DataError
from striate.export import metadata as meta_json

SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "exported": ".pt2"}
FORMATS = tuple(SUFFIXES)


def check_format(name: str) -> str:
    return one_of("export", "format", name, FORMATS)


def format_of(path: str | os.PathLike) -> str:
    """The format a file name says: .onnx, .pt2 (torch.export), otherwise TorchScript."""
    suffix = Path(path).suffix.lower()
    return {".onnx": "onnx", ".pt2": "exported"}.get(suffix, "torchscript")


@dataclass
class ExportedModel:
    """An exported model loaded back: call it on float 0–1 N×C×H×W images for logits."""

    format: str
    runner: Any = field(repr=False)
    metadata: dict[str, Any]
    path: Path | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["in_shape"])

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.runner(x)).float()

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self(x).softmax(1)


def runner_from(export_format: str, source: str | os.PathLike | bytes, threads: int | None = None):
    """(callable, metadata JSON text) of a file or of its bytes in the given format."""
    if export_format == "onnx":
        from striate.export import onnx

        return onnx.load(source, threads)
    if export_format == "exported":
        from striate.export import program

        return program.load(source)
    from striate.export import torchscript

    return torchscript.load(source)


def load_exported(
    path: str | os.PathLike, export_format: str | None = None, threads: int | None = None
) -> ExportedModel:
    """A file written by `export_model` (format from its suffix unless given), with its metadata;
    `threads` sets onnxruntime's intra-op threads. A missing or damaged file is a DataError."""
    path = Path(path)
    export_format = check_format(export_format) if export_format else format_of(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; give a file written by striate export")
    runner, text = runner_from(export_format, path, threads)
    if not text:
        raise DataError(f"{path} carries no striate metadata: export it with striate export")
    return ExportedModel(export_format, runner, meta_json.loads(text, str(path)), path)
