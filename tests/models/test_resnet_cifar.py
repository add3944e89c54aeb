"""CIFAR, pre-activation and wide ResNets: counts by formula, shortcuts, shapes, learning."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models import resnet_cifar  # noqa: F401  (registers the family)
from striate.models.resnet import BasicBlock
from striate.models.resnet_cifar import (
    CifarResNet,
    PreActBlock,
    PreActResNet,
    ZeroPadShortcut,
)

CIFAR = (3, 32, 32)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_model(name: str, num_classes: int = 10, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return models.create(name, num_classes=num_classes, in_shape=CIFAR, **kwargs)


def conv(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k


def cifar_resnet_count(n: int, classes: int = 10, projection: bool = False) -> int:
    """He et al. 2016 sec. 4.2 written out: stem, 3 stages of n basic blocks, fc."""
    total = conv(3, 16) + 2 * 16
    cin = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += conv(cin, c) + conv(c, c) + 2 * (2 * c)  # two convs and two BNs
            if projection and cin != c:
                total += conv(cin, c, 1) + 2 * c
            cin = c
    return total + 64 * classes + classes


def preact_count(stem: int, widths, blocks, classes: int = 10) -> int:
    """Pre-activation net written out: stem conv, blocks BN-conv-BN-conv (+1x1), final BN, fc."""
    total = conv(3, stem)
    cin = stem
    for stage, (c, n) in enumerate(zip(widths, blocks, strict=True)):
        for b in range(n):
            total += 2 * cin + conv(cin, c) + 2 * c + conv(c, c)
            stride = 2 if stage > 0 and b == 0 else 1
            if stride != 1 or cin != c:
                total += conv(cin, c, 1)
            cin = c
    return total + 2 * cin + cin * classes + classes


# --------------------------------------------------------------------------- CIFAR ResNets


@pytest.mark.parametrize(
    ("name", "n", "published"),
    [
        ("resnet20", 3, 269_722),
        ("resnet32", 5, 464_154),
        ("resnet44", 7, 658_586),
        ("resnet56", 9, 853_018),
        ("resnet110", 18, 1_727_962),
    ],
)
def test_cifar_resnet_counts_option_a_and_b(name, n, published):
    m = meta_model(name)
    assert n_params(m) == cifar_resnet_count(n) == published
    assert len(m.layer1) == len(m.layer2) == len(m.layer3) == n
    assert n_params(meta_model(name, shortcut="B")) == cifar_resnet_count(n, projection=True)
    assert n_params(meta_model(name, num_classes=100)) == cifar_resnet_count(n, classes=100)


def test_paper_rounding_of_the_counts():
    rounded = [round(n_params(meta_model(f"resnet{d}")) / 1e6, 2) for d in (20, 32, 44, 56)]
    assert rounded == [0.27, 0.46, 0.66, 0.85]
    assert n_params(meta_model("cifar_resnet", depth=1202)) == cifar_resnet_count(200)


def test_cifar_resnet_names_follow_torchvision():
    sd = meta_model("resnet20", shortcut="B").state_dict()
    shapes = {
        "conv1.weight": (16, 3, 3, 3),
        "bn1.running_var": (16,),
        "layer1.0.conv1.weight": (16, 16, 3, 3),
        "layer2.0.conv1.weight": (32, 16, 3, 3),
        "layer2.0.downsample.0.weight": (32, 16, 1, 1),
        "layer3.0.downsample.1.running_mean": (64,),
        "layer3.2.bn2.weight": (64,),
        "fc.weight": (10, 64),
    }
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    # 19 convs + 19 BNs (5 tensors each) + 2 projections (conv + BN) + fc
    assert len(sd) == 19 * 6 + 2 * 6 + 2
    assert len(meta_model("resnet20").state_dict()) == 19 * 6 + 2


def test_option_a_shortcut_is_parameter_free_and_pads_zeros():
    m = meta_model("resnet20")
    down = m.layer2[0].downsample
    assert isinstance(down, ZeroPadShortcut) and isinstance(m.layer3[0].downsample, ZeroPadShortcut)
    assert n_params(down) == 0 and not any("downsample" in k for k in m.state_dict())
    assert m.layer1[0].downsample is None and m.layer2[1].downsample is None

    x = torch.arange(2 * 16 * 7 * 7, dtype=torch.float32).view(2, 16, 7, 7)
    y = ZeroPadShortcut(2, 16)(x)
    assert y.shape == (2, 32, 4, 4)  # as a 3x3/2 conv with padding 1 maps 7 to 4
    for n in range(2):
        for c in range(16):
            for i in range(4):
                for j in range(4):
                    assert y[n, c, i, j] == x[n, c, 2 * i, 2 * j]
    assert (y[:, 16:] == 0).all()


@torch.no_grad()
def test_option_a_block_adds_the_padded_input():
    torch.manual_seed(0)
    block = CifarResNet(8).eval().layer2[0]
    assert isinstance(block, BasicBlock)
    x = torch.rand(2, 16, 8, 8)
    branch = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    padded = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 4, 4)], dim=1)
    torch.testing.assert_close(block(x), F.relu(branch + padded))


@torch.no_grad()
def test_cifar_resnet_shapes():
    torch.manual_seed(0)
    m = models.create("resnet20", num_classes=10, in_shape=CIFAR).eval()
    seen = {}
    m.layer3.register_forward_hook(lambda mod, i, o: seen.update(s=o.shape))
    assert m(torch.randn(1, *CIFAR)).shape == (1, 10)
    assert seen["s"] == (1, 64, 8, 8)
    mnist = models.create("resnet20", num_classes=10, in_shape=(1, 28, 28), shortcut="B")
    assert mnist.eval()(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_a_few_sgd_steps_reduce_the_loss_of_resnet20():
    torch.manual_seed(0)
    small = (3, 16, 16)  # a quarter of the work of 32x32; the net is the same
    m = models.create("resnet20", num_classes=10, in_shape=small)
    x, y = torch.randn(10, *small), torch.arange(10)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    assert losses[0] == pytest.approx(2.3, abs=0.7)  # about log(10) at the start


# --------------------------------------------------------------------------- pre-activation


@torch.no_grad()
def test_preact_block_matches_the_formula():
    torch.manual_seed(0)
    block = PreActBlock(8, 16, stride=2).eval()
    for bn in (block.bn1, block.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 8, 9, 9)

    def bn(z, layer):
        return F.batch_norm(
            z, layer.running_mean, layer.running_var, layer.weight, layer.bias, eps=layer.eps
        )

    a = F.relu(bn(x, block.bn1))
    h = F.conv2d(a, block.conv1.weight, stride=2, padding=1)
    h = F.conv2d(F.relu(bn(h, block.bn2)), block.conv2.weight, padding=1)
    expected = h + F.conv2d(a, block.downsample[0].weight, stride=2)
    out = block(x)
    torch.testing.assert_close(out, expected)
    assert (out < 0).any()  # no ReLU after the addition
    same = PreActBlock(8, 8).eval()
    assert same.downsample is None
    h = same.conv2(F.relu(same.bn2(same.conv1(F.relu(same.bn1(x))))))
    torch.testing.assert_close(same(x), x + h)  # the input itself, not its activation


def test_preact_counts_and_names():
    m = meta_model("preact_resnet18")
    assert n_params(m) == preact_count(64, (64, 128, 256, 512), (2, 2, 2, 2))
    sd = m.state_dict()
    assert tuple(sd["conv1.weight"].shape) == (64, 3, 3, 3)
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert "layer2.0.downsample.1.weight" not in sd  # a bare 1x1 projection, no BN
    assert tuple(sd["bn.weight"].shape) == (512,) and tuple(sd["fc.weight"].shape) == (10, 512)
    assert n_params(meta_model("preact_resnet20")) == preact_count(16, (16, 32, 64), (3, 3, 3))
    assert n_params(meta_model("preact_resnet110")) == preact_count(16, (16, 32, 64), (18, 18, 18))


@torch.no_grad()
def test_preact_resnet18_shapes_and_stems():
    torch.manual_seed(0)
    m = models.create("preact_resnet18", num_classes=10, in_shape=CIFAR).eval()
    seen = {}
    m.layer4.register_forward_hook(lambda mod, i, o: seen.update(s=o.shape))
    assert m(torch.randn(2, *CIFAR)).shape == (2, 10)
    assert seen["s"] == (2, 512, 4, 4)
    with torch.device("meta"):
        big = models.create(
            "preact_resnet18", num_classes=1000, in_shape=(3, 224, 224), stem="imagenet"
        )
    assert tuple(big.conv1.weight.shape) == (64, 3, 7, 7)
    assert isinstance(big.maxpool, nn.MaxPool2d)
    with pytest.raises(ConfigError, match="at least 32x32") as e:
        models.create("preact_resnet18", num_classes=10, in_shape=(3, 16, 16), stem="imagenet")
    assert "stem='cifar'" in str(e.value)
    with pytest.raises(ConfigError, match="at least 8x8"):
        models.create("preact_resnet18", num_classes=10, in_shape=(3, 4, 4))
    with pytest.raises(ConfigError, match="choose 'imagenet'"):
        models.create("preact_resnet18", stem="tiny")


# --------------------------------------------------------------------------- wide ResNets


@pytest.mark.parametrize(
    ("name", "kwargs", "depth", "k", "published"),
    [
        ("wrn_28_10", {}, 28, 10, 36_479_194),
        ("wrn_16_4", {}, 16, 4, 2_748_890),
        ("wide_resnet", dict(depth=40, widen_factor=2), 40, 2, 2_243_546),
        ("wide_resnet", dict(depth=16, widen_factor=10), 16, 10, 17_116_634),
    ],
)
def test_wide_resnet_counts(name, kwargs, depth, k, published):
    n = (depth - 4) // 6
    m = meta_model(name, **kwargs)
    assert n_params(m) == preact_count(16, (16 * k, 32 * k, 64 * k), (n, n, n)) == published
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) == depth  # depth counts the convs incl. the 3 shortcuts, as the paper's
    assert all(c.bias is None for c in convs)


def test_wrn_16_4_is_the_papers_2_7m():
    assert round(n_params(meta_model("wrn_16_4")) / 1e6, 1) == 2.7
    assert round(n_params(meta_model("wrn_28_10")) / 1e6, 1) == 36.5


def test_wide_resnet_dropout_and_forward():
    torch.manual_seed(0)
    m = models.create("wrn_16_4", num_classes=10, in_shape=(3, 8, 8), dropout=0.3)
    drops = [d for d in m.modules() if isinstance(d, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        m.eval()
        torch.testing.assert_close(m(x), m(x))
        m.train()
        assert not torch.allclose(m(x), m(x))
        assert m(x).shape == (2, 10)
    plain = meta_model("wrn_16_4")
    assert not any(isinstance(d, nn.Dropout) for d in plain.modules())


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "kwargs", "needle"),
    [
        ("resnet20", dict(shortcut="C"), "choose 'A'"),
        ("resnet20", dict(shortcut="a"), "unknown shortcut 'a'"),
        ("cifar_resnet", dict(depth=21), "6n\\+2.*20 and 26"),
        ("cifar_resnet", dict(depth=-8), "depth must be an integer >= 8"),
        ("cifar_resnet", dict(depth=20.0), "depth must be an int"),
        ("wide_resnet", dict(depth=27), "6n\\+4.*22 and 28"),
        ("wide_resnet", dict(widen_factor=0), "widen_factor must be a positive integer"),
        ("wrn_28_10", dict(dropout=1.5), "dropout must be a probability"),
        ("wrn_28_10", dict(dropout=-0.1), "dropout"),
        ("wrn_16_4", dict(widen_factor=4), "has no option 'widen_factor'"),
    ],
)
def test_bad_options_raise_config_errors(name, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        models.create(name, num_classes=10, in_shape=CIFAR, **kwargs)


def test_too_small_inputs_and_bad_shapes():
    with pytest.raises(ConfigError, match="at least 4x4.*got 3x8"):
        models.create("resnet20", num_classes=10, in_shape=(3, 3, 8))
    with pytest.raises(ConfigError, match="at least 4x4"):
        models.create("wrn_16_4", num_classes=10, in_shape=(3, 2, 2))
    with pytest.raises(ConfigError, match="in_shape"):
        CifarResNet(20, in_shape=(32, 32))
    with pytest.raises(ConfigError, match="same length"):
        PreActResNet((16, 32), (1, 1, 1))
    with pytest.raises(ConfigError, match="num_classes"):
        CifarResNet(20, num_classes=1)
