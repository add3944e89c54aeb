"""A tiny trained-looking classifier and a run folder for the export tests."""

from __future__ import annotations

import pytest
import torch

from striate.data.registry import load_dataset
from striate.models import create
from striate.models.io import ImageClassifier, save_model


@pytest.fixture(scope="module")
def digits_images() -> torch.Tensor:
    """16 real digit images as 0–1 floats, 1×8×8."""
    return load_dataset("digits", "test", progress=False).sample(16, seed=0).images.float() / 255


@pytest.fixture(scope="module")
def classifier() -> ImageClassifier:
    torch.manual_seed(0)
    net = create("convnet_small", num_classes=10, in_shape=(1, 8, 8))
    classes = [f"digit {i}" for i in range(10)]
    return ImageClassifier(net, classes, (1, 8, 8), [0.3], [0.2]).eval()


@pytest.fixture
def run(tmp_path, classifier):
    """A run folder as striate train leaves it (model/ and config.json naming the data)."""
    import json

    folder = tmp_path / "run"
    save_model(folder / "model", classifier.net, classes=classifier.classes, in_shape=(1, 8, 8),
               normalization={"mean": [0.3], "std": [0.2]})  # fmt: skip
    (folder / "config.json").write_text(json.dumps({"config": {"data": "digits", "root": None}}))
    return folder
