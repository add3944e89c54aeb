"""`export_model`: build the exported model, load it back from its bytes, compare it with eager
PyTorch on real images, and only then write it (atomically) with its metadata and the result."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from striate._atomic import atomic_write
from striate.errors import DataError
from striate.export import metadata as meta_json
from striate.export.formats import check_format, runner_from
from striate.export.parity import TOLERANCE, Parity, batches, compare
from striate.export.samples import sample_images
from striate.outputs import OutputExists


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    parity: Parity
    metadata: dict[str, Any]
    size_bytes: int


def check_destination(path: Path, overwrite: bool) -> None:
    """The file may be written: its folder exists, and it does not (unless `overwrite`)."""
    if not path.parent.is_dir():
        raise DataError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise DataError(f"cannot write {path}: it is a folder; give a file name")
    if path.exists() and not overwrite:
        raise OutputExists(f"{path} exists; pass --overwrite to replace it")


def export_model(
    classifier: Any,
    path: str | os.PathLike,
    export_format: str = "onnx",
    *,
    method: str = "trace",
    images: torch.Tensor | None = None,
    inputs: str = "",
    source: str = "",
    tolerance: float = TOLERANCE,
    overwrite: bool = False,
) -> ExportReport:
    """Export an `ImageClassifier` (the module that normalises inside) to `path` as "onnx",
    "torchscript" (`method` "trace" or "script") or "exported" (torch.export .pt2).

    `images` are float 0–1 images in the classifier's input shape for the parity check (`inputs`
    says what they are); without them, bundled digits. A ParityError (nothing written) when the
    loaded-back export differs from eager PyTorch by more than `tolerance` on the logits.
    """
    export_format = check_format(export_format)
    path = Path(path)
    check_destination(path, overwrite)
    classifier = classifier.cpu().float().eval()
    if images is None:
        images, inputs = sample_images(classifier)
    images = images.float().cpu()
    example = batches(images, (2,))[0]  # not a batch of 1: that would be specialised
    meta = meta_json.describe(classifier, export_format, source)
    if export_format == "torchscript":
        from striate.export import torchscript as fmt

        with torch.no_grad():
            artifact = fmt.build(classifier, example, method)
        meta["torchscript_method"] = method
    elif export_format == "exported":
        from striate.export import program as fmt

        artifact = fmt.build(classifier, example)
    else:
        from striate.export import onnx as fmt

        artifact = fmt.build(classifier, example)
        meta["onnx_opset"] = fmt.OPSET
    runner, _ = runner_from(export_format, fmt.serialize(artifact, meta_json.dumps(meta)))
    what = f"the {export_format} export" + (
        f" ({method})" if export_format == "torchscript" else ""
    )
    if export_format == "onnx":
        what += " run by onnxruntime"
    parity = compare(
        classifier, runner, images, inputs=inputs or "given images", tolerance=tolerance, what=what
    )
    meta["parity"] = parity.as_dict()
    data = fmt.serialize(artifact, meta_json.dumps(meta))
    check_destination(path, overwrite)  # again: the export may have taken a while
    with atomic_write(path) as f:
        f.write(data)
    return ExportReport(path, export_format, parity, meta, len(data))
