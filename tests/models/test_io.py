"""Model files: save/load round trip, images of any size and colour in, refused bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from striate import models
from striate.errors import StriateError
from striate.models.io import ImageClassifier, load_model, save_model


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = models.create("convnet_small", num_classes=3, in_shape=(3, 16, 16))
    save_model(
        tmp_path / "model",
        net,
        classes=("cat", "dog", "<b>"),
        in_shape=(3, 16, 16),
        normalization={"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]},
        metrics={"test_acc": 0.5},
    )
    return tmp_path, net


def test_round_trip_gives_the_same_outputs_with_normalisation_inside(saved):
    folder, net = saved
    model = load_model(folder)  # the run folder resolves to its model/
    assert model.classes == ("cat", "dog", "<b>") and model.metrics == {"test_acc": 0.5}
    x = torch.rand(4, 3, 16, 16)
    mean = torch.tensor([0.5, 0.4, 0.3]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).reshape(1, 3, 1, 1)
    net.eval()
    torch.testing.assert_close(model(x), net((x - mean) / std))
    torch.testing.assert_close(model.predict_proba(x), net((x - mean) / std).softmax(1))
    for path in (folder / "model", folder / "model" / "model.json"):
        assert load_model(path).classes == model.classes


def test_a_model_saved_under_the_old_hyphenated_name_still_loads(saved):
    folder, net = saved
    info_path = folder / "model" / "model.json"
    info = json.loads(info_path.read_text())
    assert info["architecture"]["name"] == "convnet_small"  # saved in the one spelling
    info["architecture"]["name"] = "convnet-small"  # as striate wrote it before
    info_path.write_text(json.dumps(info))
    model = load_model(folder)
    x = torch.rand(2, 3, 16, 16)
    mean = torch.tensor([0.5, 0.4, 0.3]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.3]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(model(x), net.eval()((x - mean) / std))  # the trained weights
    assert model.net.spec["name"] == "convnet_small"


def test_prepare_resizes_converts_and_scales(saved):
    folder, _ = saved
    model = load_model(folder)
    u8 = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    expected = F.interpolate(
        u8.float() / 255, size=(16, 16), mode="bilinear", align_corners=False, antialias=True
    )
    torch.testing.assert_close(model.prepare(u8), expected)
    grey = np.full((20, 10), 255, dtype=np.uint8)  # H×W, grey, another size
    assert model.prepare([grey]).shape == (1, 3, 16, 16)
    assert torch.allclose(model.prepare([grey]), torch.ones(1, 3, 16, 16))
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)  # H×W×C with alpha
    assert model.prepare([rgba]).shape == (1, 3, 16, 16)
    top = model.predict(u8, k=2)
    assert len(top) == 2 and len(top[0]) == 2 and top[0][0][1] >= top[0][1][1]
    with pytest.raises(StriateError, match="channels"):
        model.prepare(torch.zeros(2, 5, 16, 16))


def test_grey_model_takes_colour_images_as_luma():
    net = models.create("mlp", num_classes=2, in_shape=(1, 4, 4), hidden=())
    model = ImageClassifier(net, ("a", "b"), (1, 4, 4))
    rgb = torch.rand(1, 3, 4, 4)
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
    torch.testing.assert_close(model.prepare(rgb), luma)


def test_bad_model_folders_are_refused(saved, tmp_path):
    folder, _ = saved
    with pytest.raises(StriateError, match="no model at"):
        load_model(tmp_path / "nowhere")
    info_path = folder / "model" / "model.json"
    info = json.loads(info_path.read_text())
    weights = folder / "model" / "weights.safetensors"
    good = weights.read_bytes()
    save_file({"features.0.weight": torch.zeros(1)}, str(weights))
    with pytest.raises(StriateError, match="does not match the architecture"):
        load_model(folder)
    weights.write_bytes(good[:50])
    with pytest.raises(StriateError, match="readable striate model"):
        load_model(folder)
    weights.write_bytes(good)
    info_path.write_text(json.dumps({**info, "format": "pickle"}))
    with pytest.raises(StriateError, match="readable striate model"):
        load_model(folder)
    info_path.write_text("{")
    with pytest.raises(StriateError, match="readable striate model"):
        load_model(folder)
    with pytest.raises(StriateError, match="models.create"):
        save_model(tmp_path / "x", torch.nn.Linear(2, 2), classes=("a", "b"), in_shape=(1, 1, 2))
