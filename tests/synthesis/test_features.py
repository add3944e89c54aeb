"""Features of named layers (striate.synthesis.features).

References: the layer indices that the PyTorch examples and papers' ports quote for torchvision's
VGG-16/19 (relu1_2 = 3, relu2_2 = 8, relu3_3 = 15, relu4_3 = 22; VGG-19 conv4_2 = 21,
relu5_1 = 29), the feature stack run slice by slice by hand, and forward hooks on a zoo model.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from striate import models
from striate.errors import ConfigError, InputError, StriateError
from striate.models.vgg import VGG
from striate.synthesis import FeatureExtractor, load_vgg, vgg_features, vgg_layer_names
from striate.synthesis.features import IMAGENET_MEAN, default_vgg_weights


@pytest.fixture(scope="module")
def hed(shared_data):
    return shared_data / "weights" / "vgg16-hed.safetensors"


def test_vgg16_and_vgg19_names_are_the_published_indices():
    v16 = vgg_layer_names(VGG("D", classifier_width=2).features)
    assert {k: v16[k] for k in ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "conv4_2")} == {
        "relu1_2": "features.3",
        "relu2_2": "features.8",
        "relu3_3": "features.15",
        "relu4_3": "features.22",
        "conv4_2": "features.19",
    }
    assert v16["pool5"] == "features.30" and len(v16) == 31
    v19 = vgg_layer_names(VGG("E", classifier_width=2).features)
    assert (v19["conv4_2"], v19["relu5_1"], v19["pool5"]) == (
        "features.21",
        "features.29",
        "features.36",
    )
    bn = vgg_layer_names(VGG("D", batchnorm=True, classifier_width=2).features)
    assert (bn["conv1_1"], bn["bn1_1"], bn["relu1_1"], bn["pool1"]) == tuple(
        f"features.{i}" for i in (0, 1, 2, 6)
    )


def test_features_equal_the_stack_run_by_hand_with_the_files_normalisation(hed):
    layers = ["relu1_1", "conv4_2", "relu4_2", "pool2"]
    fx = vgg_features(layers, hed)
    stack, norm = load_vgg(hed)
    assert norm["std"][0] == pytest.approx(1 / 255) and norm["mean"] != list(IMAGENET_MEAN)
    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    out = fx(x)
    assert list(out) == layers
    h = (x - torch.tensor(norm["mean"]).view(1, 3, 1, 1)) / torch.tensor(norm["std"]).view(
        1, 3, 1, 1
    )
    by_hand = {}
    for i, m in enumerate(stack):
        h = m(h)
        by_hand[i] = h.clone()
    for name, index in zip(layers, (1, 19, 20, 9), strict=True):
        torch.testing.assert_close(out[name], by_hand[index])
    # the ReLU after conv4_2 is in place in the stack: the extractor's conv4_2 keeps its negatives
    assert (out["conv4_2"] < 0).any()
    torch.testing.assert_close(out["relu4_2"], out["conv4_2"].clamp(min=0))
    assert not any(p.requires_grad for p in fx.parameters())


def test_average_pooling_replaces_every_max_pool(hed):
    fx = vgg_features(["relu5_1"], hed, pooling="avg")
    pools = [m for m in fx.model if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d))]
    assert len(pools) == 5 and all(isinstance(m, nn.AvgPool2d) for m in pools)
    with pytest.raises(ConfigError, match="pooling"):
        vgg_features(["relu1_1"], hed, pooling="median")


def test_depth_batchnorm_and_normalisation_are_read_from_the_file(tmp_path):
    v19 = VGG("E", batchnorm=True, num_classes=10, classifier_width=8)
    path = tmp_path / "vgg19_bn.pth"
    torch.save(v19.state_dict(), path)  # a torchvision file: no mean/std recorded
    stack, norm = load_vgg(path)
    assert sum(isinstance(m, nn.Conv2d) for m in stack) == 16
    assert sum(isinstance(m, nn.BatchNorm2d) for m in stack) == 16
    assert norm["mean"] == list(IMAGENET_MEAN)
    x = torch.rand(1, 3, 32, 32)
    v19.eval()
    mean, std = (
        torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(norm["std"]).view(1, 3, 1, 1),
    )
    torch.testing.assert_close(
        vgg_features(["pool5"], path)(x)["pool5"], v19.features((x - mean) / std)
    )


def test_weights_without_the_needed_layers_say_so(tmp_path):
    full = VGG("D", num_classes=2, classifier_width=2).state_dict()
    partial = {
        k: v for k, v in full.items() if k.startswith("features.") and int(k.split(".")[1]) <= 14
    }
    path = tmp_path / "first-blocks.safetensors"
    save_file(partial, str(path))
    assert vgg_features(["relu3_3"], path)(torch.rand(1, 3, 16, 16))["relu3_3"].shape[1] == 256
    with pytest.raises(ConfigError, match=r"no layer 'relu4_1'.*up to relu3_3"):
        vgg_features(["relu4_1"], path)
    resnet = tmp_path / "resnet.safetensors"
    save_file(models.create("resnet20", num_classes=10).state_dict(), str(resnet))
    with pytest.raises(ConfigError, match="holds no VGG convolutions"):
        vgg_features(["relu1_1"], resnet)
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(StriateError, match="cannot read weights"):
        vgg_features(["relu1_1"], tmp_path / "broken.safetensors")


def test_unknown_layer_suggests_the_closest(hed):
    with pytest.raises(ConfigError, match=r"no layer 'conv4_22'.*did you mean 'conv4_2'"):
        vgg_features(["conv4_22"], hed)
    with pytest.raises(ConfigError, match="non-empty list"):
        vgg_features("relu1_1", hed)


def test_any_zoo_model_by_module_name_equals_its_hooked_output():
    net = models.create("resnet20", num_classes=10).eval()
    fx = FeatureExtractor(net, ["layer1", "layer2.0.conv1"], mean=(0.5, 0.5, 0.5), std=(0.25,) * 3)
    x = torch.rand(2, 3, 32, 32)
    seen = {}
    hooks = [
        net.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, o))
        for n in ("layer1", "layer2.0.conv1")
    ]
    net((x - 0.5) / 0.25)
    for h in hooks:
        h.remove()
    out = fx(x)
    for name in seen:
        torch.testing.assert_close(out[name], seen[name])
    with pytest.raises(ConfigError, match="layer9"):
        FeatureExtractor(net, ["layer9"])
    with pytest.raises(InputError, match="RGB images"):
        fx(torch.rand(2, 1, 32, 32))


def test_the_default_weights_file_is_found_or_the_error_says_how(monkeypatch, tmp_path, hed):
    monkeypatch.delenv("STRIATE_VGG_WEIGHTS", raising=False)
    monkeypatch.setenv("STRIATE_SHARED_DATA", str(hed.parent.parent))
    assert default_vgg_weights() == hed
    monkeypatch.setenv("STRIATE_SHARED_DATA", str(tmp_path))
    with pytest.raises(ConfigError, match="--weights FILE"):
        default_vgg_weights()
    monkeypatch.setenv("STRIATE_VGG_WEIGHTS", str(hed))
    assert default_vgg_weights() == hed
