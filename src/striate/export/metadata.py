"""What an exported file says about itself: class names, normalisation, input size, crop, versions
and the parity result, as one JSON object stored inside the file (ONNX `metadata_props`,
TorchScript and torch.export extra files)."""

from __future__ import annotations

import json
from typing import Any

import torch

from striate import __version__
from striate.errors import DataError

FORMAT = "striate-export/1"
EXTRA_FILE = "striate.json"  # the extra file's name in TorchScript and .pt2 archives
INPUT = "float32 N×C×H×W on the 0–1 scale; the model normalises inside (mean, std)"
OUTPUT = "logits N×classes (softmax gives probabilities)"


def describe(classifier: Any, export_format: str, source: str) -> dict[str, Any]:
    """The metadata of `classifier` (an ImageClassifier) exported as `export_format`."""
    spec = getattr(classifier.net, "spec", None)
    return {
        "format": FORMAT,
        "export_format": export_format,
        "source": source,
        "architecture": spec.get("name") if isinstance(spec, dict) else None,
        "classes": list(classifier.classes),
        "in_shape": list(classifier.in_shape),
        "mean": classifier.mean.flatten().tolist(),
        "std": classifier.std.flatten().tolist(),
        "crop": classifier.crop,
        "input": INPUT,
        "output": OUTPUT,
        "striate_version": __version__,
        "torch_version": torch.__version__,
    }


def dumps(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=1, allow_nan=False)


def loads(text: str | bytes, where: str) -> dict[str, Any]:
    """The metadata read back from `where`; damaged or foreign text is a DataError."""
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise DataError(f"{where}: its striate metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"{where} carries no {FORMAT} metadata: export it with striate export")
    return meta
