"""Weight files: features-only files into full models, torchvision's layout, a file's recorded
normalisation, named weights, and the errors for files that do not fit."""

from __future__ import annotations

import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from striate import models
from striate.errors import ConfigError, StriateError, StriateWarning
from striate.models.weights import file_normalization, imagenet_classes


def test_imagenet_class_names_ship_with_the_package():
    names = imagenet_classes()
    assert len(names) == 1000
    assert (names[0], names[281], names[967], names[999]) == (
        "tench", "tabby", "espresso", "toilet tissue",
    )  # fmt: skip


def test_features_only_file_loads_into_a_full_vgg16_and_keeps_its_normalisation(shared_data):
    path = shared_data / "weights" / "vgg16-hed.safetensors"
    with pytest.warns(StriateWarning, match="no weights for classifier"):
        net = models.create("vgg16", classifier_width=16, weights=path)
    file = load_file(str(path))
    for key, value in file.items():
        torch.testing.assert_close(net.state_dict()[key], value, rtol=0, atol=0)
    # the file's metadata: 255·x − HED's Caffe mean (BGR 104.007, 116.669, 122.679), as RGB
    assert net.normalization["std"] == pytest.approx([1 / 255] * 3)
    assert net.normalization["mean"] == pytest.approx(
        [122.679 / 255, 116.669 / 255, 104.007 / 255], abs=1e-5
    )
    assert net.classes is None


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_torchvision_layout_files_load_whole_or_features_only(arch, tmp_path):
    torch.manual_seed(0)
    source = models.create(arch, classifier_width=16)
    whole = tmp_path / f"{arch}-397923af.pth"
    torch.save(source.state_dict(), whole)  # as torchvision publishes them: a plain state dict
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = models.create(arch, classifier_width=16, weights=whole)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(net.eval()(x), source.eval()(x))
    features = tmp_path / f"{arch}-features.pth"
    torch.save(
        {k: v for k, v in source.state_dict().items() if k.startswith("features.")}, features
    )
    with pytest.warns(StriateWarning, match="classifier"):
        net = models.create(arch, classifier_width=16, weights=features)
    torch.testing.assert_close(net.features(x), source.features(x))
    assert file_normalization(features) is None


def test_weights_that_do_not_fit_are_refused_with_what_is_wrong(tmp_path, shared_data):
    with pytest.raises(ConfigError, match="neither a file nor named weights.*no named weights"):
        models.create("vgg11", weights="imagenet")
    with pytest.raises(ConfigError, match="its named weights are imagenet"):
        models.create("efficientnet_lite0", weights="imagnet")
    with pytest.raises(StriateError, match="does not fit this model"):
        models.create("resnet18", weights=shared_data / "weights" / "vgg16-hed.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 40)
    with pytest.raises(StriateError, match="cannot read weights"):
        models.create("vgg11", weights=garbage)
    truncated = tmp_path / "truncated.pth"
    torch.save(models.create("lenet5").state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(StriateError, match="cannot read weights"):
        models.create("lenet5", weights=truncated)


def test_bad_normalisation_metadata_is_an_error(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(1)}, str(path), metadata={"mean": "[0.5]", "std": "[0, 1]"})
    with pytest.raises(StriateError, match="mean/std do not fit"):
        file_normalization(path)
    save_file({"a": torch.zeros(1)}, str(path), metadata={"mean": "oops", "std": "[1]"})
    with pytest.raises(StriateError, match="unreadable mean/std"):
        file_normalization(path)
