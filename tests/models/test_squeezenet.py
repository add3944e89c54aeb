"""SqueezeNet 1.0/1.1: published counts, torchvision's names, the Fire formula, small inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import striate.models.squeezenet  # noqa: F401  (registers the models)
from striate import models
from striate.errors import ConfigError
from striate.models.squeezenet import Fire, SqueezeNet

# torchvision's layouts: features index -> (in, squeeze, expand1x1, expand3x3) of each Fire
FIRES = {
    "squeezenet1_0": {
        3: (96, 16, 64, 64),
        4: (128, 16, 64, 64),
        5: (128, 32, 128, 128),
        7: (256, 32, 128, 128),
        8: (256, 48, 192, 192),
        9: (384, 48, 192, 192),
        10: (384, 64, 256, 256),
        12: (512, 64, 256, 256),
    },
    "squeezenet1_1": {
        3: (64, 16, 64, 64),
        4: (128, 16, 64, 64),
        6: (128, 32, 128, 128),
        7: (256, 32, 128, 128),
        9: (256, 48, 192, 192),
        10: (384, 48, 192, 192),
        11: (384, 64, 256, 256),
        12: (512, 64, 256, 256),
    },
}
FIRST_CONV = {"squeezenet1_0": (96, 7), "squeezenet1_1": (64, 3)}  # (width, kernel), stride 2
PUBLISHED = {"squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496}
MIN_SIZE = {"squeezenet1_0": 21, "squeezenet1_1": 17}  # torchvision's documented min_size


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def torchvision_state_shapes(name: str, num_classes: int = 1000) -> dict:
    width, k = FIRST_CONV[name]
    shapes = {"features.0.weight": (width, 3, k, k), "features.0.bias": (width,)}
    for i, (c, s, e1, e3) in FIRES[name].items():
        for part, shape in (
            ("squeeze", (s, c, 1, 1)),
            ("expand1x1", (e1, s, 1, 1)),
            ("expand3x3", (e3, s, 3, 3)),
        ):
            shapes[f"features.{i}.{part}.weight"] = shape
            shapes[f"features.{i}.{part}.bias"] = shape[:1]
    shapes["classifier.1.weight"] = (num_classes, 512, 1, 1)
    shapes["classifier.1.bias"] = (num_classes,)
    return shapes


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: models.create(name, 1000, (3, 224, 224)).eval() for name in PUBLISHED}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(nets, name):
    width, k = FIRST_CONV[name]
    fires = sum(
        (c * s + s) + (s * e1 + e1) + (9 * s * e3 + e3) for c, s, e1, e3 in FIRES[name].values()
    )
    expected = (k * k * 3 * width + width) + fires + (512 * 1000 + 1000)
    assert n_params(nets[name]) == expected == PUBLISHED[name]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_state_dict_is_torchvisions(nets, name):
    sd = nets[name].state_dict()
    expected = torchvision_state_shapes(name)
    assert len(sd) == 52
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert "features.12.expand3x3.weight" in sd and "classifier.1.weight" in sd
    m = models.create(name, 1000, (3, 224, 224))
    m.load_state_dict({k: torch.randn(s) for k, s in expected.items()}, strict=True)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_forward_at_224_and_the_minimum_size(nets, name):
    m = nets[name]
    with torch.no_grad():
        out = m(torch.randn(1, 3, 224, 224))
        assert out.shape == (1, 1000) and (out >= 0).all()  # a ReLU precedes the pooling
        assert m.features(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 13, 13)
        minimum = MIN_SIZE[name]
        assert m.min_size == minimum and m.cifar_min == 4
        assert m.features(torch.zeros(1, 3, minimum, minimum)).shape[-1] == 1
        with pytest.raises(RuntimeError):
            m.features(torch.zeros(1, 3, minimum - 1, minimum - 1))


def test_fire_matches_the_formula():
    torch.manual_seed(0)
    fire = Fire(8, 3, 5, 4)
    x = torch.randn(2, 8, 6, 7)
    s = F.relu(F.conv2d(x, fire.squeeze.weight, fire.squeeze.bias))
    e1 = F.relu(F.conv2d(s, fire.expand1x1.weight, fire.expand1x1.bias))
    e3 = F.relu(F.conv2d(s, fire.expand3x3.weight, fire.expand3x3.bias, padding=1))
    torch.testing.assert_close(fire(x), torch.cat([e1, e3], 1))
    assert fire(x).shape == (2, 9, 6, 7)


def test_classifier_is_a_1x1_conv_and_global_average(nets):
    m = nets["squeezenet1_1"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = m.features(x)
        conv = m.classifier[1]
        expected = F.relu(F.conv2d(maps, conv.weight, conv.bias)).mean((2, 3))
        torch.testing.assert_close(m(x), expected)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_cifar_stem(name):
    torch.manual_seed(0)
    m = models.create(name, 10, (3, 32, 32), stem="cifar").eval()
    width, _ = FIRST_CONV[name]
    first = m.features[0]
    assert first.weight.shape == (width, 3, 3, 3) and first.stride == (1, 1)
    assert first.padding == (1, 1) and isinstance(m.features[2], nn.Identity)
    assert set(m.state_dict()) == set(torchvision_state_shapes(name))
    with torch.no_grad():
        assert m.features(torch.zeros(1, 3, 32, 32)).shape == (1, 512, 8, 8)
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert m(torch.randn(1, 3, 4, 4)).shape == (1, 10)
        with pytest.raises(RuntimeError):
            m.features(torch.zeros(1, 3, 3, 3))
    assert m.min_size == 4


def test_weights_start_as_torchvisions(nets):
    m = nets["squeezenet1_0"]
    final = m.classifier[1]
    assert abs(final.weight.std().item() - 0.01) < 5e-4
    conv = m.features[12].expand3x3  # Kaiming-uniform: U(±√(6 / fan_in))
    bound = math.sqrt(6 / (64 * 9))
    assert conv.weight.abs().max().item() <= bound
    assert abs(conv.weight.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    for layer in m.modules():
        if isinstance(layer, nn.Conv2d):
            assert not layer.bias.any()


def test_spec_round_trip_and_other_channels():
    m = models.create("squeezenet1_1", 5, (1, 28, 28), stem="cifar", dropout=0.1)
    again = models.from_spec(m.spec)
    assert again.features[0].weight.shape == (64, 1, 3, 3)
    assert again.classifier[0].p == 0.1 and again.classifier[1].out_channels == 5


def test_too_small_inputs_say_the_minimum_and_suggest_the_cifar_stem(nets):
    with pytest.raises(ConfigError) as e:
        models.create("squeezenet1_0", 10, (3, 16, 16))
    msg = str(e.value)
    assert "16×16" in msg and "21×21" in msg and "stem='cifar'" in msg and "4×4" in msg
    with pytest.raises(ConfigError, match=r"too small even for stem='cifar'.*4×4"):
        models.create("squeezenet1_1", 10, (3, 3, 3), stem="cifar")
    with pytest.raises(ConfigError, match=r"16×17 input is too small.*17×17"):
        nets["squeezenet1_1"](torch.zeros(1, 3, 16, 17))


def test_bad_options():
    with pytest.raises(ConfigError, match=r"unknown stem 'tiny'.*'imagenet'.*'cifar'"):
        models.create("squeezenet1_0", 10, (3, 224, 224), stem="tiny")
    with pytest.raises(ConfigError, match="dropout"):
        models.create("squeezenet1_0", 10, (3, 224, 224), dropout=1.0)
    with pytest.raises(ConfigError, match=r"unknown version '1\.2'.*'1_0', '1_1'"):
        SqueezeNet("1.2")
    with pytest.raises(ConfigError, match="squeeze must be a positive integer"):
        Fire(8, 0, 4, 4)
