"""Real images to check an export on: files the user names, else the test split of the data the
run was trained on (from its config.json), else scikit-learn's bundled digits (always at hand),
each prepared as the model expects (`ImageClassifier.prepare`)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from striate.errors import StriateError

COUNT = 16  # images drawn from a data set


def sample_images(
    classifier: Any,
    run: str | os.PathLike | None = None,
    images: Sequence[Any] | None = None,
    count: int = COUNT,
) -> tuple[torch.Tensor, str]:
    """A float 0–1 batch in the classifier's input shape and a few words saying what it is.

    `images` are decoded images (H×W×C arrays of any size) the user chose."""
    if images:
        return classifier.prepare(list(images)).cpu(), f"{len(images)} given images"
    if run is not None:
        found = _run_test_images(Path(run), count)
        if found is not None:
            x, name = found
            return classifier.prepare(x).cpu(), f"{len(x)} test images of {name}"
    x, name = _digits(count)
    return classifier.prepare(x).cpu(), f"{len(x)} images of {name}"


def _run_test_images(run: Path, count: int) -> tuple[torch.Tensor, str] | None:
    """`count` images (stratified, seed 0) of the test split of the run's data; None when the run
    does not say or its data cannot be read here."""
    from striate.data.registry import load_dataset

    for folder in (run, run.parent):  # RUN or RUN/model
        try:
            config = json.loads((folder / "config.json").read_text())["config"]
            data, root = str(config["data"]), config.get("root")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        try:
            ds = load_dataset(data, "test", root, progress=False)
        except (StriateError, OSError, ValueError):
            return None
        if len(ds) == 0:
            return None
        ds = ds.sample(min(count, len(ds)), seed=0)
        return ds.images, f"{data} (the run's data)"
    return None


def _digits(count: int) -> tuple[torch.Tensor, str]:
    from striate.data.registry import load_dataset

    ds = load_dataset("digits", "test", progress=False)
    return ds.sample(min(count, len(ds)), seed=0).images, "digits (scikit-learn)"
