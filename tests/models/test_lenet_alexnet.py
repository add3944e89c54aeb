"""LeNet-5 and AlexNet: published counts, the lecture's table, torchvision's names, small inputs.

Big models are built on the meta device (shapes and parameter counts without memory or compute);
numeric checks run on small real models against functional formulas written out here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import striate.models.alexnet  # noqa: F401  (registers the models)
import striate.models.lenet  # noqa: F401
from striate import models
from striate.errors import ConfigError
from striate.models.alexnet import AlexNet, AlexNet2012, min_input_size, spatial_size
from striate.models.lenet import LeNet5


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1) -> int:
    return (k * k * c_in // groups) * c_out + c_out


def fc_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def child_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """The output shape (without the batch) of each named child of a sequential model."""
    shapes = {}
    for name, layer in model.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    return shapes


# --------------------------------------------------------------------------- LeNet-5


def test_lenet5_has_the_classic_61706_parameters():
    m = models.create("lenet5", num_classes=10, in_shape=(1, 32, 32))
    expected = (
        conv_params(1, 6, 5)  # C1
        + conv_params(6, 16, 5)  # C3 (full connection to S2)
        + conv_params(16, 120, 5)  # C5
        + fc_params(120, 84)  # F6
        + fc_params(84, 10)  # output
    )
    assert n_params(m) == expected == 61_706


def test_lenet5_layer_shapes_follow_the_paper():
    m = models.create("lenet5", num_classes=10, in_shape=(1, 32, 32))
    shapes = child_shapes(m, torch.zeros(1, 1, 32, 32))
    assert shapes["c1"] == (6, 28, 28)
    assert shapes["s2"] == (6, 14, 14)
    assert shapes["c3"] == (16, 10, 10)
    assert shapes["s4"] == (16, 5, 5)
    assert shapes["c5"] == (120, 1, 1)
    assert shapes["f6"] == (84,)
    assert shapes["output"] == (10,)


def test_lenet5_pads_28x28_inputs_by_2_automatically():
    m = models.create("lenet5", num_classes=10, in_shape=(1, 28, 28))
    assert m.c1.padding == (2, 2) and m.padding == 2
    assert n_params(m) == 61_706
    assert child_shapes(m, torch.zeros(1, 1, 28, 28))["c5"] == (120, 1, 1)
    # without padding C5 covers the 4×4 S4 map: fully connected to 16·4·4 inputs
    m0 = models.create("lenet5", num_classes=10, in_shape=(1, 28, 28), padding=0)
    assert m0.c5.kernel_size == (4, 4)
    assert n_params(m0) == 61_706 - 120 * 16 * (25 - 16)


def test_lenet5_forward_matches_the_formula():
    torch.manual_seed(0)
    for act, pool, f_act, f_pool in [
        ("tanh", "avg", torch.tanh, F.avg_pool2d),
        ("relu", "max", torch.relu, F.max_pool2d),
    ]:
        m = models.create("lenet5", 10, (1, 28, 28), activation=act, pool=pool).eval()
        x = torch.randn(3, 1, 28, 28)
        h = f_pool(f_act(F.conv2d(x, m.c1.weight, m.c1.bias, padding=2)), 2)
        h = f_pool(f_act(F.conv2d(h, m.c3.weight, m.c3.bias)), 2)
        h = f_act(F.conv2d(h, m.c5.weight, m.c5.bias)).flatten(1)
        h = f_act(h @ m.f6.weight.T + m.f6.bias)
        expected = h @ m.output.weight.T + m.output.bias
        torch.testing.assert_close(m(x), expected)


def test_lenet5_other_sizes_and_channels():
    m = models.create("lenet5", num_classes=100, in_shape=(3, 36, 40))
    # S4 is 6×7: C5's kernel covers it
    assert m.c5.kernel_size == (6, 7)
    assert m(torch.randn(2, 3, 36, 40)).shape == (2, 100)


def test_lenet5_bad_options():
    with pytest.raises(ConfigError, match="unknown activation 'tahn'.*tanh"):
        models.create("lenet5", 10, (1, 32, 32), activation="tahn")
    with pytest.raises(ConfigError, match="unknown pool 'mean'.*'avg'.*'max'"):
        models.create("lenet5", 10, (1, 32, 32), pool="mean")
    with pytest.raises(ConfigError, match="padding .* non-negative integer .*got -1"):
        models.create("lenet5", 10, (1, 32, 32), padding=-1)
    with pytest.raises(ConfigError, match="padding"):
        models.create("lenet5", 10, (1, 32, 32), padding=1.5)
    with pytest.raises(ConfigError, match=r"12×12 input with padding=0 is too small.*16×16"):
        models.create("lenet5", 10, (1, 12, 12))
    # with padding 2 the same images are big enough (16×16 after padding)
    assert models.create("lenet5", 10, (1, 12, 12), padding=2)(torch.zeros(1, 1, 12, 12)).shape
    with pytest.raises(ConfigError, match="in_shape"):
        LeNet5((32, 32), 10)


def test_lenet5_rejects_an_input_of_another_size():
    m = models.create("lenet5", 10, (1, 32, 32))
    with pytest.raises(ConfigError, match=r"built for 1×32×32 inputs.*got 1×28×28"):
        m(torch.zeros(1, 1, 28, 28))


def test_lenet5_spec_round_trip():
    m = models.create("lenet5", 10, (1, 28, 28), activation="relu", pool="max")
    again = models.from_spec(m.spec)
    assert isinstance(again, LeNet5) and again.padding == 2
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in m.state_dict().items()
    }
    assert isinstance(again.act1, nn.ReLU) and isinstance(again.s2, nn.MaxPool2d)


# --------------------------------------------------------------------------- conv arithmetic


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 24),
    kind=st.sampled_from(["conv", "max", "avg", "maxceil"]),
    k=st.integers(1, 7),
    s=st.integers(1, 4),
    p=st.integers(0, 3),
    d=st.integers(1, 2),
)
def test_spatial_size_agrees_with_torch(size, kind, k, s, p, d):
    p = min(p, k // 2)  # torch's pools need padding <= kernel // 2
    if kind == "conv":
        layer = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    elif kind == "avg":
        layer = nn.AvgPool2d(k, s, padding=p)
    else:
        layer = nn.MaxPool2d(k, s, padding=p, dilation=d, ceil_mode=kind == "maxceil")
    layers = [layer, nn.ReLU(), nn.MaxPool2d(2, 2, ceil_mode=True)]
    try:
        out = layers[2](layers[0](torch.zeros(1, 1, size, size))).shape[-1]
    except RuntimeError:
        out = 0
    assert spatial_size(layers, size) == out


def test_min_input_size_of_a_stack():
    layers = [nn.Conv2d(1, 1, 5), nn.MaxPool2d(2), nn.Conv2d(1, 1, 5), nn.MaxPool2d(2)]
    # (((n - 4) // 2) - 4) // 2 >= 1  <=>  n >= 16
    assert min_input_size(layers) == 16


# --------------------------------------------------------------------------- AlexNet (torchvision)

# torchvision's AlexNet state dict: name -> shape, for 3 input channels and 1000 classes
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11),
    "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5),
    "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3),
    "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3),
    "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3),
    "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216),
    "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096),
    "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}


@pytest.fixture(scope="module")
def meta_alexnets():
    with torch.device("meta"):
        return {
            "alexnet": models.create("alexnet", 1000, (3, 224, 224)),
            "alexnet_2012": models.create("alexnet_2012", 1000, (3, 227, 227)),
            "grouped": models.create("alexnet_2012", 1000, (3, 227, 227), grouped=True),
        }


def test_alexnet_has_torchvisions_count_and_names(meta_alexnets):
    m = meta_alexnets["alexnet"]
    expected = (
        conv_params(3, 64, 11)
        + conv_params(64, 192, 5)
        + conv_params(192, 384, 3)
        + conv_params(384, 256, 3)
        + conv_params(256, 256, 3)
        + fc_params(256 * 6 * 6, 4096)
        + fc_params(4096, 4096)
        + fc_params(4096, 1000)
    )
    assert n_params(m) == expected == 61_100_840
    sd = m.state_dict()
    assert len(sd) == 16
    assert {k: tuple(v.shape) for k, v in sd.items()} == TORCHVISION_ALEXNET


def test_alexnet_loads_a_torchvision_state_dict_and_computes_its_forward():
    torch.manual_seed(0)
    m = models.create("alexnet", 1000, (3, 64, 64)).eval()
    sd = {k: torch.randn(shape) * 0.02 for k, shape in TORCHVISION_ALEXNET.items()}
    m.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, 64, 64)
    # torchvision's forward, written out: conv 11/4 pad 2, pools 3/2, adaptive pool 6×6
    w, b = sd["features.0.weight"], sd["features.0.bias"]
    h = F.max_pool2d(F.relu(F.conv2d(x, w, b, stride=4, padding=2)), 3, 2)
    w, b = sd["features.3.weight"], sd["features.3.bias"]
    h = F.max_pool2d(F.relu(F.conv2d(h, w, b, padding=2)), 3, 2)
    for i in (6, 8, 10):
        h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], 1, 1))
    h = F.adaptive_avg_pool2d(F.max_pool2d(h, 3, 2), 6).flatten(1)
    h = F.relu(F.linear(h, sd["classifier.1.weight"], sd["classifier.1.bias"]))
    h = F.relu(F.linear(h, sd["classifier.4.weight"], sd["classifier.4.bias"]))
    expected = F.linear(h, sd["classifier.6.weight"], sd["classifier.6.bias"])
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-5)


def test_alexnet_minimum_sizes_match_torch():
    # torch's own shape checks on the meta device; torchvision documents 63×63
    for stem, minimum in (("imagenet", 63), ("cifar", 7)):
        with torch.device("meta"):
            m = AlexNet((3, 224, 224), 10, stem=stem)
            assert m.min_size == minimum and m.cifar_min == 7
            assert m.features(torch.zeros(1, 3, minimum, minimum)).shape[-1] == 1
            with pytest.raises(RuntimeError):
                m.features(torch.zeros(1, 3, minimum - 1, minimum - 1))


def test_alexnet_cifar_stem_keeps_names_and_takes_32x32():
    torch.manual_seed(0)
    m = models.create("alexnet", 10, (3, 32, 32), stem="cifar")
    sd = m.state_dict()
    assert set(sd) == set(TORCHVISION_ALEXNET)
    assert sd["features.0.weight"].shape == (64, 3, 3, 3)
    assert m.features[0].stride == (1, 1) and isinstance(m.features[2], nn.Identity)
    with torch.no_grad():
        out = m.eval()(torch.randn(2, 3, 32, 32))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        assert m.features(torch.zeros(1, 3, 32, 32)).shape == (1, 256, 7, 7)
    # the classifier is the same, so every weight but the first convolution's loads
    assert n_params(m) == 61_100_840 - conv_params(3, 64, 11) + conv_params(3, 64, 3) - 990 * 4097


def test_alexnet_too_small_input_suggests_the_cifar_stem():
    with pytest.raises(ConfigError) as e:
        models.create("alexnet", 10, (3, 32, 32))
    msg = str(e.value)
    assert "32×32" in msg and "63×63" in msg and "stem='cifar'" in msg and "7×7" in msg
    with pytest.raises(ConfigError, match="too small even for stem='cifar'.*7×7"):
        models.create("alexnet", 10, (3, 6, 6), stem="cifar")


def test_alexnet_forward_rejects_a_too_small_batch(meta_alexnets):
    with pytest.raises(ConfigError, match=r"40×40 input is too small.*63×63"):
        meta_alexnets["alexnet"](torch.zeros(1, 3, 40, 40, device="meta"))


def test_alexnet_bad_options():
    with pytest.raises(ConfigError, match=r"unknown stem 'small'.*'imagenet'.*'cifar'"):
        models.create("alexnet", 10, (3, 224, 224), stem="small")
    with pytest.raises(ConfigError, match="dropout"):
        models.create("alexnet", 10, (3, 224, 224), dropout=1.5)
    with pytest.raises(ConfigError, match="num_classes"):
        AlexNet((3, 224, 224), 1)


# --------------------------------------------------------------------------- AlexNet 2012

# CS231n lecture 9, "Full (simplified) AlexNet architecture" (H×W×C there, C×H×W here)
LECTURE_ALEXNET = {
    "conv1": (96, 55, 55),
    "pool1": (96, 27, 27),
    "norm1": (96, 27, 27),
    "conv2": (256, 27, 27),
    "pool2": (256, 13, 13),
    "norm2": (256, 13, 13),
    "conv3": (384, 13, 13),
    "conv4": (384, 13, 13),
    "conv5": (256, 13, 13),
    "pool3": (256, 6, 6),
    "fc6": (4096,),
    "fc7": (4096,),
    "fc8": (1000,),
}


def test_alexnet_2012_follows_the_lecture_table(meta_alexnets):
    m = meta_alexnets["alexnet_2012"]
    shapes = child_shapes(m, torch.zeros(1, 3, 227, 227, device="meta"))
    assert {k: shapes[k] for k in LECTURE_ALEXNET} == LECTURE_ALEXNET
    assert (227 - 11) // 4 + 1 == 55  # the lecture's hint
    # CONV1: (11·11·3)·96 weights, "35K", plus 96 biases
    assert m.conv1.weight.numel() == 11 * 11 * 3 * 96 == 34_848
    assert n_params(m.conv1) == 34_944
    assert [n_params(layer) for layer in (m.pool1, m.norm1, m.pool2, m.norm2, m.pool3)] == [0] * 5


def test_alexnet_2012_parameter_counts(meta_alexnets):
    fcs = fc_params(256 * 6 * 6, 4096) + fc_params(4096, 4096) + fc_params(4096, 1000)
    single = (
        conv_params(3, 96, 11)
        + conv_params(96, 256, 5)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3)
        + conv_params(384, 256, 3)
        + fcs
    )
    m = meta_alexnets["alexnet_2012"]
    assert n_params(m) == single == 62_378_344  # the lecture's "~62M"
    # the lecture: FC6 38M, FC7 17M, FC8 4M weights, "~59M params in FC layers"
    assert round(m.fc6.weight.numel() / 1e6) == 38 and round(m.fc7.weight.numel() / 1e6) == 17
    assert round(m.fc8.weight.numel() / 1e6) == 4 and round(fcs / 1e6) == 59
    grouped = (
        conv_params(3, 96, 11)
        + conv_params(96, 256, 5, groups=2)
        + conv_params(256, 384, 3)
        + conv_params(384, 384, 3, groups=2)
        + conv_params(384, 256, 3, groups=2)
        + fcs
    )
    g = meta_alexnets["grouped"]
    assert n_params(g) == grouped == 60_965_224
    assert [g.conv2.groups, g.conv3.groups, g.conv4.groups, g.conv5.groups] == [2, 1, 2, 2]


@pytest.fixture(scope="module")
def small_alexnet_2012():
    torch.manual_seed(0)
    return AlexNet2012((3, 32, 32), 10, stem="cifar").eval()


def test_alexnet_2012_local_response_norm_is_the_papers(small_alexnet_2012):
    m = small_alexnet_2012
    a = torch.randn(2, 12, 5, 5) * 3
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75  # Krizhevsky et al. 2012, section 3.3
    sq = F.pad(a**2, (0, 0, 0, 0, n // 2, n // 2))  # zero maps beyond the ends
    window = torch.stack([sq[:, i : i + n].sum(1) for i in range(a.shape[1])], 1)
    expected = a / (k + alpha * window) ** beta
    torch.testing.assert_close(m.norm1(a), expected)


def test_alexnet_2012_starts_with_the_papers_weights(small_alexnet_2012):
    m = small_alexnet_2012
    for name in ("conv2", "conv4", "conv5", "fc6", "fc7"):
        assert torch.equal(getattr(m, name).bias, torch.ones_like(getattr(m, name).bias))
    for name in ("conv1", "conv3", "fc8"):
        assert not getattr(m, name).bias.any()
    assert abs(m.conv3.weight.std().item() - 0.01) < 2e-4
    assert abs(m.fc6.weight.std().item() - 0.01) < 2e-4


def test_alexnet_2012_cifar_stem_and_sizes(small_alexnet_2012, meta_alexnets):
    m = small_alexnet_2012
    assert m.conv1.kernel_size == (3, 3) and isinstance(m.pool1, nn.Identity)
    with torch.no_grad():
        out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert (m.min_size, m.cifar_min) == (7, 7)
    big = meta_alexnets["alexnet_2012"]
    assert big.min_size == 67
    convs = nn.Sequential(*list(big.children())[:15])  # conv1 ... pool3
    assert convs(torch.zeros(1, 3, 67, 67, device="meta")).shape[-1] == 1
    with pytest.raises(RuntimeError):
        convs(torch.zeros(1, 3, 66, 66, device="meta"))


def test_alexnet_2012_bad_options():
    with pytest.raises(ConfigError, match=r"64×64 input is too small.*67×67.*stem='cifar'"):
        models.create("alexnet_2012", 10, (3, 64, 64))
    with pytest.raises(ConfigError, match="grouped must be True or False"):
        models.create("alexnet_2012", 10, (3, 227, 227), grouped="yes")
    with pytest.raises(ConfigError, match="unknown stem"):
        models.create("alexnet_2012", 10, (3, 227, 227), stem="CIFAR")


def test_alexnet_2012_spec_round_trip(meta_alexnets):
    with torch.device("meta"):
        again = models.from_spec(meta_alexnets["grouped"].spec)
    assert isinstance(again, AlexNet2012) and again.grouped
    assert n_params(again) == 60_965_224
