"""Weights from files, freezing for fine-tuning, discriminative learning rates, features for a
linear or kNN head, and `striate train --weights ... --finetune ...`."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.pipeline import make_pipeline

from striate import models
from striate.classic import KNNClassifier
from striate.cli.main import main
from striate.data import BatchLoader, load_dataset
from striate.engine import Trainer
from striate.errors import ConfigError, StriateError
from striate.models.io import load_model, load_weights, read_state_dict, save_model
from striate.train.transfer import (
    FeatureExtractor,
    FreezeFrozen,
    finetune_parameters,
    head_name,
    layer_groups,
)


def _resnet(num_classes=10):
    torch.manual_seed(0)
    return models.create("resnet20", num_classes=num_classes, in_shape=(1, 8, 8))


def test_weights_load_from_safetensors_and_torch_files_with_every_key_checked(tmp_path):
    src, dst = _resnet(), _resnet()
    torch.nn.init.normal_(src.fc.weight)
    save_file(
        {k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    torch.save(
        {"state_dict": {"module." + k: v for k, v in src.state_dict().items()}}, tmp_path / "w.pt"
    )
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pt"):
        load_weights(dst, path)
        for k, v in src.state_dict().items():
            assert torch.equal(dst.state_dict()[k], v), k
    other = models.create("resnet32", num_classes=10, in_shape=(1, 8, 8))
    with pytest.raises(StriateError) as e:
        load_weights(other, tmp_path / "w.safetensors")
    assert "missing: layer1.3.conv1.weight" in str(e.value) and "more" in str(e.value)
    five = _resnet(num_classes=5)
    with pytest.raises(StriateError, match=r"shape: fc.weight \(10, 64\) for \(5, 64\)"):
        load_weights(five, tmp_path / "w.pt")
    assert load_weights(five, tmp_path / "w.pt", skip=("fc.",)) == ["fc.weight", "fc.bias"]


def test_weight_files_that_are_not_state_dicts_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(StriateError, match="cannot read weights"):
        read_state_dict(tmp_path / "evil.pt")
    torch.save({"w": [1, 2]}, tmp_path / "list.pt")
    with pytest.raises(StriateError, match="does not hold a state dict"):
        read_state_dict(tmp_path / "list.pt")
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(StriateError, match="cannot read weights"):
        read_state_dict(tmp_path / "cut.safetensors")
    with pytest.raises(StriateError, match="does not exist"):
        read_state_dict(tmp_path / "none.pt")


def test_finetune_modes_freeze_what_they_should_and_scale_the_lrs():
    model = _resnet()
    assert head_name(model) == "fc"
    names = [n for n, _ in layer_groups(model)]
    assert names == ["conv1+bn1", "layer1", "layer2", "layer3", "fc"]  # bn joins its conv
    groups, frozen = finetune_parameters(model, "head", lr=0.1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"}
    assert len(frozen) == sum(1 for m in model.modules() if list(m.parameters(False))) - 1
    groups, frozen = finetune_parameters(model, "last:2", lr=0.1, lr_factor=10)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer3", "fc"}
    lrs = sorted({g["lr"] for g in groups})
    assert lrs == pytest.approx([0.01, 0.1])  # layer3 gets lr/10, the head lr
    groups, frozen = finetune_parameters(model, "all", lr=0.1, lr_factor=3)
    assert all(p.requires_grad for p in model.parameters()) and frozen == []
    assert min(g["lr"] for g in groups) == pytest.approx(0.1 / 3**4)
    for bad in ("last:0", "last:x", "some"):
        with pytest.raises(ConfigError, match="head"):
            finetune_parameters(model, bad, lr=0.1)


def test_a_frozen_backbone_keeps_its_weights_and_batch_norm_statistics():
    train = load_dataset("digits", "train")[:256]
    model = _resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups, frozen = finetune_parameters(model, "head", lr=0.05)
    Trainer(
        epochs=2,
        param_groups=groups,
        callbacks=[FreezeFrozen(frozen)],
        progress=False,
        device="cpu",
        precision="fp32",
    ).fit(model, BatchLoader(train, 64, device="cpu"))
    after = model.state_dict()
    for k, v in before.items():
        same = torch.equal(v, after[k])
        assert same != k.startswith("fc."), k  # only the head changed, BN statistics included


def test_features_feed_a_knn_head():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(0)
    model = models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8))
    Trainer(epochs=3, lr=0.05, progress=False, device="cpu", precision="fp32").fit(
        model, BatchLoader(train, 64, device="cpu")
    )
    extractor = FeatureExtractor(model, device="cpu")
    feats = extractor.transform(test[:7])
    model.eval()
    with torch.no_grad():
        x = test[:7].images.float() / 255
        expected = model.classifier[:2](model.pool(model.features(x)).flatten(1))
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert isinstance(model.classifier[2], torch.nn.Linear)  # the head is put back
    knn = make_pipeline(FeatureExtractor(model, device="cpu"), KNNClassifier(5, device="cpu"))
    knn.fit(train, train.labels.numpy())
    assert knn.score(test, test.labels.numpy()) > 0.9


def test_feature_extractor_checks_the_input_shape_and_takes_trained_models(tmp_path):
    """Feeding 1-channel digits to a 3-channel network ended in torch's RuntimeError."""
    net = models.create("resnet18", num_classes=10, in_shape=(3, 32, 32), stem="cifar")
    digits = load_dataset("digits", "test")[:4]
    with pytest.raises(ConfigError, match=r"takes 3×32×32 images, got 1×8×8: resize"):
        FeatureExtractor(net, device="cpu").transform(digits)
    with pytest.raises(ConfigError, match="N×C×H×W"):
        FeatureExtractor(net, device="cpu").transform(np.zeros((4, 32, 32)))
    # a trained model converts the images itself: grey 8×8 to colour 32×32, then normalises
    save_model(tmp_path / "m", net, classes=[str(i) for i in range(10)], in_shape=(3, 32, 32),
               normalization={"mean": [0.5] * 3, "std": [0.25] * 3})  # fmt: skip
    trained = load_model(tmp_path / "m")
    feats = FeatureExtractor(trained, device="cpu").transform(digits)
    x = trained.prepare(digits.images)
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        expected = net.eval()((x - 0.5) / 0.25)
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert feats.shape == (4, 512)


def test_cli_fine_tunes_a_trained_run_on_a_task_with_other_classes(tmp_path, capsys):
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    keep_tr, keep_te = train.labels >= 5, test.labels >= 5
    np.savez(
        tmp_path / "five.npz",
        x_train=train.images[keep_tr, 0].numpy(),
        y_train=train.labels[keep_tr].numpy() - 5,
        x_test=test.images[keep_te, 0].numpy(),
        y_test=test.labels[keep_te].numpy() - 5,
    )
    base = tmp_path / "base"
    assert main(["train", "--epochs", "3", "--out", str(base), "--no-progress"]) == 0
    out = tmp_path / "ft"
    code = main(
        [
            "train",
            "--data",
            str(tmp_path / "five.npz"),
            "--epochs",
            "2",
            "--weights",
            str(base),
            "--finetune",
            "head",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["replaced_head"] == "classifier.2"
    assert resolved["trainable_parameters"] == 128 * 5 + 5
    source = json.loads((base / "model" / "model.json").read_text())["normalization"]
    assert resolved["normalization"] == source  # the pretrained network's normalisation
    assert json.loads((out / "model" / "model.json").read_text())["metrics"]["test_acc"] > 0.8
    capsys.readouterr()
    code = main(
        [
            "train",
            "--model",
            "mlp",
            "--weights",
            str(base),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "bad"),
            "--no-progress",
        ]
    )
    assert code == 2 and "does not fit this model" in capsys.readouterr().err
