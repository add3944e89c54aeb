"""VGG: published counts, torchvision's names, the lecture's VGG-16 table, the CIFAR stem.

The eight 133–144M-parameter models are built once on the meta device (shapes and counts without
memory or compute); numeric checks use a small real VGG-11 (narrow classifier).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import striate.models.vgg  # noqa: F401  (registers the models)
from striate import models
from striate.errors import ConfigError
from striate.models.vgg import VGG

# the paper's table 1 / torchvision's cfgs, written out again
CFGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}  # fmt: skip
PUBLISHED = {  # torchvision's num_params for 1000 classes
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def torchvision_state_shapes(cfg: list, bn: bool, num_classes: int = 1000, width: int = 4096):
    """The names and shapes of torchvision's VGG state dict, from its make_layers numbering."""
    shapes, i, c = {}, 0, 3
    for v in cfg:
        if v == "M":
            i += 1
            continue
        shapes[f"features.{i}.weight"] = (v, c, 3, 3)
        shapes[f"features.{i}.bias"] = (v,)
        if bn:
            for k in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"features.{i + 1}.{k}"] = (v,)
            shapes[f"features.{i + 1}.num_batches_tracked"] = ()
        i += 3 if bn else 2  # conv, [bn], relu
        c = v
    sizes = [(512 * 7 * 7, width), (width, width), (width, num_classes)]
    for j, (n_in, n_out) in zip((0, 3, 6), sizes, strict=True):
        shapes[f"classifier.{j}.weight"] = (n_out, n_in)
        shapes[f"classifier.{j}.bias"] = (n_out,)
    return shapes


@pytest.fixture(scope="module")
def meta_vggs():
    with torch.device("meta"):
        return {name: models.create(name, 1000, (3, 224, 224)) for name in PUBLISHED}


@pytest.fixture(scope="module")
def small_vgg():
    """A real VGG-11 for 32×32 CIFAR images with a narrow classifier."""
    torch.manual_seed(0)
    return models.create("vgg11", 10, (3, 32, 32), stem="cifar", classifier_width=64).eval()


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(meta_vggs, name):
    cfg = CFGS[name.removesuffix("_bn")]
    bn = name.endswith("_bn")
    widths = [v for v in cfg if v != "M"]
    convs = sum(9 * a * b + b for a, b in zip([3, *widths[:-1]], widths, strict=True))
    norms = 2 * sum(widths) if bn else 0  # BatchNorm weight and bias
    fcs = (25088 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert n_params(meta_vggs[name]) == convs + norms + fcs == PUBLISHED[name]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_state_dict_is_torchvisions(meta_vggs, name):
    expected = torchvision_state_shapes(CFGS[name.removesuffix("_bn")], name.endswith("_bn"))
    sd = meta_vggs[name].state_dict()
    assert list(sd) == list(expected)  # names and order
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_key_names_and_counts_written_out(meta_vggs):
    # the last convolution's index and the state dict's length, per model
    last = {
        "vgg11": (18, 22),
        "vgg11_bn": (25, 62),
        "vgg13": (22, 26),
        "vgg13_bn": (31, 76),
        "vgg16": (28, 32),
        "vgg16_bn": (40, 97),
        "vgg19": (34, 38),
        "vgg19_bn": (49, 118),
    }
    for name, (index, count) in last.items():
        sd = meta_vggs[name].state_dict()
        assert len(sd) == count, name
        assert sd[f"features.{index}.weight"].shape == (512, 512, 3, 3), name
        assert sd["classifier.0.weight"].shape == (4096, 25088)
        assert sd["classifier.6.bias"].shape == (1000,)
    sd = meta_vggs["vgg16_bn"].state_dict()
    assert "features.1.running_mean" in sd and "features.41.num_batches_tracked" in sd


def test_loads_a_torchvision_state_dict():
    torch.manual_seed(1)
    m = models.create("vgg11_bn", 10, (3, 32, 32), classifier_width=16)
    shapes = torchvision_state_shapes(CFGS["vgg11"], bn=True, num_classes=10, width=16)
    sd = {k: torch.randn(s) if s else torch.tensor(7) for k, s in shapes.items()}
    m.load_state_dict(sd, strict=True)
    assert torch.equal(m.features[25].weight, sd["features.25.weight"])
    assert m.features[26].num_batches_tracked == 7


# CS231n lecture 9, VGG16 (H×W×C there): output of each CONV3/POOL2/FC and its weights
LECTURE_VGG16 = [
    ("conv", (64, 224, 224), 1_728),
    ("conv", (64, 224, 224), 36_864),
    ("pool", (64, 112, 112), 0),
    ("conv", (128, 112, 112), 73_728),
    ("conv", (128, 112, 112), 147_456),
    ("pool", (128, 56, 56), 0),
    ("conv", (256, 56, 56), 294_912),
    ("conv", (256, 56, 56), 589_824),
    ("conv", (256, 56, 56), 589_824),
    ("pool", (256, 28, 28), 0),
    ("conv", (512, 28, 28), 1_179_648),
    ("conv", (512, 28, 28), 2_359_296),
    ("conv", (512, 28, 28), 2_359_296),
    ("pool", (512, 14, 14), 0),
    ("conv", (512, 14, 14), 2_359_296),
    ("conv", (512, 14, 14), 2_359_296),
    ("conv", (512, 14, 14), 2_359_296),
    ("pool", (512, 7, 7), 0),
    ("fc", (4096,), 102_760_448),
    ("fc", (4096,), 16_777_216),
    ("fc", (1000,), 4_096_000),
]


def test_vgg16_follows_the_lecture_table(meta_vggs):
    m = meta_vggs["vgg16"]
    kinds = {nn.Conv2d: "conv", nn.MaxPool2d: "pool", nn.Linear: "fc"}
    seen = []

    def record(layer, _inputs, output):
        weights = layer.weight.numel() if hasattr(layer, "weight") else 0
        seen.append((kinds[type(layer)], tuple(output.shape[1:]), weights))

    hooks = [x.register_forward_hook(record) for x in m.modules() if type(x) in kinds]
    try:
        out = m(torch.zeros(1, 3, 224, 224, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    assert out.shape == (1, 1000)
    assert seen == LECTURE_VGG16
    # "TOTAL params: 138M"; "most params are in late FC"
    assert round(n_params(m) / 1e6) == 138
    fc = sum(w for kind, _, w in seen if kind == "fc")
    assert fc / n_params(m) > 0.89
    # "most memory is in early CONV": each of the first two outputs holds 224·224·64 ≈ 3.2M
    memory = [math.prod(shape) for _, shape, _ in seen]
    assert memory[0] == memory[1] == 3_211_264 == max(memory)


def test_cifar_stem_head_and_forward(small_vgg):
    m = small_vgg
    assert isinstance(m.features[-1], nn.Identity)  # the last pool
    assert sum(isinstance(x, nn.MaxPool2d) for x in m.features) == 4
    assert m.classifier[0].in_features == 512 and m.classifier[6].out_features == 10
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = m.features(x)
        assert maps.shape == (2, 512, 2, 2)
        expected = m.classifier(maps.mean((2, 3)))  # global average pool, then the FC layers
        torch.testing.assert_close(m(x), expected)
    assert (m.min_size, m.cifar_min) == (16, 16)
    with torch.no_grad():
        assert m.features(torch.zeros(1, 3, 16, 16)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            m.features(torch.zeros(1, 3, 15, 15))
        assert m(torch.zeros(1, 3, 28, 28)).shape == (1, 10)  # MNIST-sized works


def test_imagenet_stem_on_32x32_copies_the_1x1_map():
    torch.manual_seed(0)
    m = models.create("vgg11", 10, (3, 32, 32), classifier_width=16).eval()
    assert m.min_size == 32 and m.cifar_min == 16
    assert m.classifier[0].in_features == 25088
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps = m.features(x)
        assert maps.shape == (2, 512, 1, 1)
        expected = m.classifier(maps.expand(2, 512, 7, 7).flatten(1))
        torch.testing.assert_close(m(x), expected)
        with pytest.raises(RuntimeError):
            m.features(torch.zeros(1, 3, 31, 31))


def test_weights_start_as_torchvisions(small_vgg):
    conv = small_vgg.features[-3]  # 512 → 512, 3×3
    fan_out = 512 * 9
    assert abs(conv.weight.std().item() / math.sqrt(2 / fan_out) - 1) < 0.01
    assert abs(small_vgg.classifier[3].weight.std().item() - 0.01) < 1e-3
    for layer in [*small_vgg.features, *small_vgg.classifier]:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            assert not layer.bias.any()
    bn = models.create("vgg11_bn", 10, (3, 32, 32), stem="cifar", classifier_width=8)
    assert torch.equal(bn.features[1].weight, torch.ones(64))


def test_classifier_width_and_dropout_options(small_vgg):
    assert small_vgg.classifier[3].in_features == small_vgg.classifier[3].out_features == 64
    with torch.device("meta"):
        m = models.create("vgg16", 100, (3, 224, 224), classifier_width=1024, dropout=0.2)
    assert m.classifier[0].weight.shape == (1024, 25088) and m.classifier[2].p == 0.2
    assert m.spec["kwargs"] == {"stem": "imagenet", "classifier_width": 1024, "dropout": 0.2}


def test_too_small_inputs_say_the_minimum_and_suggest_the_cifar_stem():
    with pytest.raises(ConfigError) as e:
        models.create("vgg16", 10, (1, 28, 28))
    msg = str(e.value)
    assert "28×28" in msg and "32×32" in msg and "stem='cifar'" in msg and "16×16" in msg
    with pytest.raises(ConfigError, match=r"too small even for stem='cifar'.*16×16"):
        models.create("vgg11", 10, (3, 12, 12), stem="cifar")


def test_forward_rejects_too_small_images(small_vgg):
    with pytest.raises(ConfigError, match=r"8×8 input is too small.*16×16"):
        small_vgg(torch.zeros(1, 3, 8, 8))


def test_bad_options():
    with pytest.raises(ConfigError, match=r"unknown stem 'imagnet'.*'imagenet'.*'cifar'"):
        models.create("vgg11", 10, (3, 32, 32), stem="imagnet")
    with pytest.raises(ConfigError, match="classifier_width must be a positive integer, got 0"):
        models.create("vgg11", 10, (3, 32, 32), classifier_width=0)
    with pytest.raises(ConfigError, match="dropout"):
        models.create("vgg11", 10, (3, 32, 32), dropout=-0.1)
    with pytest.raises(ConfigError, match=r"unknown configuration 'C'.*'A' \(VGG-11\)"):
        VGG("C", (3, 224, 224))
    with pytest.raises(ConfigError, match="batchnorm must be True or False"):
        VGG("A", (3, 224, 224), batchnorm="yes")
