"""GoogLeNet: published parameter counts, torchvision's key names, shapes, stems, aux heads."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models import googlenet as gmod  # registers "googlenet"
from striate.models.googlenet import GoogLeNet, GoogLeNetOutputs, googlenet_loss, min_input_size

INCEPTIONS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
BN_KEYS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def torchvision_keys(aux: bool) -> list[str]:
    """torchvision's GoogLeNet state-dict keys, written out from its layout."""

    def basic(prefix: str) -> list[str]:
        return [f"{prefix}.conv.weight"] + [f"{prefix}.bn.{k}" for k in BN_KEYS]

    keys = basic("conv1") + basic("conv2") + basic("conv3")
    for name in INCEPTIONS:
        p = f"inception{name}"
        keys += basic(f"{p}.branch1")
        keys += basic(f"{p}.branch2.0") + basic(f"{p}.branch2.1")
        keys += basic(f"{p}.branch3.0") + basic(f"{p}.branch3.1")
        keys += basic(f"{p}.branch4.1")
    if aux:
        for head in ("aux1", "aux2"):
            keys += basic(f"{head}.conv")
            keys += [f"{head}.{fc}.{w}" for fc in ("fc1", "fc2") for w in ("weight", "bias")]
    return keys + ["fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def net() -> GoogLeNet:
    return models.create("googlenet", num_classes=1000, in_shape=(3, 224, 224)).eval()


@pytest.fixture(scope="module")
def net_aux() -> GoogLeNet:
    return models.create("googlenet", num_classes=1000, in_shape=(3, 224, 224), aux_logits=True)


@pytest.fixture(scope="module")
def small() -> GoogLeNet:
    torch.manual_seed(0)
    return models.create(
        "googlenet", num_classes=10, in_shape=(3, 32, 32), stem="cifar", aux_logits=True
    )


def test_published_parameter_counts(net, net_aux):
    assert n_params(net) == 6_624_904
    assert n_params(net_aux) == 13_004_888


def test_aux_heads_add_the_parameters_of_their_layers(net, net_aux):
    def head(c_in: int) -> int:  # 1x1 conv to 128 (no bias) + BN, FC 2048->1024, FC 1024->1000
        return c_in * 128 + 2 * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000

    assert n_params(net_aux) - n_params(net) == head(512) + head(528)


def test_state_dict_keys_are_torchvision_s(net, net_aux):
    assert list(net.state_dict()) == torchvision_keys(aux=False)
    assert len(net.state_dict()) == 344
    assert list(net_aux.state_dict()) == torchvision_keys(aux=True)
    assert len(net_aux.state_dict()) == 364


def test_torchvision_shapes_and_layers(net):
    sd = net.state_dict()
    assert sd["conv1.conv.weight"].shape == (64, 3, 7, 7)
    assert sd["conv3.conv.weight"].shape == (192, 64, 3, 3)
    assert sd["inception3a.branch1.conv.weight"].shape == (64, 192, 1, 1)
    assert sd["inception3a.branch2.1.conv.weight"].shape == (128, 96, 3, 3)
    # torchvision's branch3 is 3x3 where the paper has 5x5 (pytorch/vision issue 906)
    assert sd["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)
    assert sd["inception3a.branch4.1.conv.weight"].shape == (32, 192, 1, 1)
    assert sd["inception5b.branch1.conv.weight"].shape == (384, 832, 1, 1)
    assert sd["fc.weight"].shape == (1000, 1024)
    assert net.conv1.bn.eps == 0.001 and net.conv1.conv.bias is None
    assert isinstance(net.maxpool1, nn.MaxPool2d) and net.maxpool1.ceil_mode
    assert isinstance(net.maxpool4, nn.MaxPool2d) and net.maxpool4.kernel_size == 2
    assert net.aux1 is None and net.aux2 is None
    assert net.dropout.p == 0.2


def test_a_state_dict_with_torchvision_names_loads_strictly(net):
    other = GoogLeNet((3, 224, 224), 1000)
    other.load_state_dict(net.state_dict(), strict=True)
    torch.testing.assert_close(other.fc.weight, net.fc.weight)


def test_imagenet_forward_shape(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_cifar_stem_layout_shape_and_count(small, net):
    assert small.conv1.conv.kernel_size == (3, 3) and small.conv1.conv.stride == (1, 1)
    assert isinstance(small.maxpool1, nn.Identity) and isinstance(small.maxpool2, nn.Identity)
    plain = GoogLeNet((3, 32, 32), 1000, stem="cifar")
    assert n_params(net) - n_params(plain) == 64 * 3 * (7 * 7 - 3 * 3)
    small.eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_one_channel_input():
    m = models.create("googlenet", num_classes=10, in_shape=(1, 28, 28), stem="cifar").eval()
    assert m.conv1.conv.weight.shape == (64, 1, 3, 3)
    with torch.no_grad():
        assert m(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_train_mode_forward_returns_logits_and_aux_outputs_are_separate(small):
    small.train()
    x = torch.randn(2, 3, 32, 32)
    out = small(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    both = small.forward_with_aux(x)
    assert isinstance(both, GoogLeNetOutputs)
    assert both.logits.shape == both.aux_logits1.shape == both.aux_logits2.shape == (2, 10)
    small.eval()
    with torch.no_grad():
        torch.testing.assert_close(small.forward_with_aux(x).logits, small(x))
    plain = GoogLeNet((3, 32, 32), 10, stem="cifar").eval()
    with torch.no_grad():
        outputs = plain.forward_with_aux(x)
    assert outputs.aux_logits1 is None and outputs.aux_logits2 is None


def test_aux_heads_get_gradients_through_googlenet_loss(small):
    small.train()
    small.zero_grad()
    y = torch.tensor([1, 7])
    googlenet_loss(small.forward_with_aux(torch.randn(2, 3, 32, 32)), y).backward()
    for p in (small.aux1.fc2.weight, small.aux2.conv.conv.weight, small.fc.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_googlenet_loss_matches_the_formula():
    torch.manual_seed(1)
    logits, aux2, aux1 = torch.randn(3, 4, 5).unbind(0)
    y = torch.tensor([0, 4, 2, 2])
    expected = F.cross_entropy(logits, y) + 0.3 * (
        F.cross_entropy(aux1, y) + F.cross_entropy(aux2, y)
    )
    torch.testing.assert_close(googlenet_loss(GoogLeNetOutputs(logits, aux2, aux1), y), expected)
    torch.testing.assert_close(googlenet_loss(logits, y), F.cross_entropy(logits, y))
    half = googlenet_loss(GoogLeNetOutputs(logits, None, aux1), y, aux_weight=0.5)
    torch.testing.assert_close(half, F.cross_entropy(logits, y) + 0.5 * F.cross_entropy(aux1, y))


def test_inception_module_is_the_concatenation_of_its_four_branches():
    torch.manual_seed(2)
    block = gmod.Inception(8, 3, 4, 5, 2, 6, 7).eval()
    for m in block.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 8, 5, 5)

    def basic(b: gmod.BasicConv2d, z: torch.Tensor) -> torch.Tensor:
        c = b.conv
        z = F.conv2d(z, c.weight, None, c.stride, c.padding)
        bn = b.bn
        z = (z - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + 0.001)
        return F.relu(z * bn.weight[:, None, None] + bn.bias[:, None, None])

    pooled = F.max_pool2d(F.pad(x, (1, 1, 1, 1), value=-float("inf")), 3, 1)
    expected = torch.cat(
        [
            basic(block.branch1, x),
            basic(block.branch2[1], basic(block.branch2[0], x)),
            basic(block.branch3[1], basic(block.branch3[0], x)),
            basic(block.branch4[1], pooled),
        ],
        1,
    )
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 3 + 5 + 6 + 7, 5, 5) == (2, block.out_channels, 5, 5)
    torch.testing.assert_close(out, expected.detach())


def test_transform_input_matches_torchvision_s_formula():
    torch.manual_seed(3)
    a = GoogLeNet((3, 32, 32), 10, stem="cifar", transform_input=True).eval()
    b = GoogLeNet((3, 32, 32), 10, stem="cifar").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    scaled = torch.cat(
        [x[:, i : i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)], 1
    )
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(scaled))


@pytest.mark.parametrize(("stem", "lowest"), [("imagenet", 15), ("cifar", 2)])
def test_min_input_size_is_the_smallest_size_torch_runs(stem, lowest):
    m = GoogLeNet((3, 224, 224), 10, stem=stem).eval()

    def runs(s: int) -> bool:
        try:
            with torch.no_grad():
                m(torch.randn(1, 3, s, s))
        except RuntimeError:
            return False
        return True

    ok = [s for s in range(1, 21) if runs(s)]
    assert min_input_size(stem) == lowest == ok[0]
    assert ok == list(range(lowest, 21))  # every larger size runs too


def test_too_small_input_says_the_minimum_and_suggests_the_cifar_stem():
    with pytest.raises(ConfigError, match=r"14x64 input.*minimum size is 15x15.*stem='cifar'"):
        models.create("googlenet", num_classes=10, in_shape=(3, 14, 64))
    models.create("googlenet", num_classes=10, in_shape=(3, 15, 15))
    with pytest.raises(ConfigError, match="minimum size is 2x2; use larger images"):
        models.create("googlenet", num_classes=10, in_shape=(3, 1, 1), stem="cifar")


def test_spec_round_trip(small):
    again = models.from_spec(small.spec)
    assert small.spec["kwargs"] == {
        "aux_logits": True,
        "stem": "cifar",
        "dropout": 0.2,
        "transform_input": False,
    }
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in small.state_dict().items()
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(stem="cifar10"), "unknown stem 'cifar10'; choose 'imagenet'.*or 'cifar'"),
        (dict(stem=None), "unknown stem None"),
        (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
        (dict(dropout=-0.1), "dropout"),
        (dict(aux_logits="yes"), "aux_logits must be True or False"),
        (dict(transform_input=1), "transform_input must be True or False"),
        (dict(aux_logit=True), "did you mean 'aux_logits'"),
    ],
)
def test_bad_options(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        models.create("googlenet", num_classes=10, in_shape=(3, 32, 32), **kwargs)


def test_bad_inputs_to_the_class_and_helpers():
    with pytest.raises(ConfigError, match="needs 3 channels, got 1"):
        GoogLeNet((1, 32, 32), 10, stem="cifar", transform_input=True)
    with pytest.raises(ConfigError, match="in_shape must be"):
        GoogLeNet((3, 32), 10)
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
        GoogLeNet((3, 32, 32), 1, stem="cifar")
    with pytest.raises(ConfigError, match="unknown stem 'tiny'"):
        min_input_size("tiny")
    y = torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="aux_weight must be a positive number"):
        googlenet_loss(torch.randn(2, 3), y, aux_weight=-0.3)
    with pytest.raises(ConfigError, match="outputs must be the logits tensor or the GoogLeNet"):
        googlenet_loss([torch.randn(2, 3)], y)


def test_weights_start_as_torchvision_s_truncated_normal(net_aux):
    w = net_aux.aux1.fc1.weight.detach()  # 2M values
    assert w.abs().max() <= 0.02
    # a standard normal cut at ±2: variance 1 - 2·2φ(2)/(Φ(2) - Φ(-2))
    phi2 = math.exp(-2.0) / math.sqrt(2 * math.pi)
    mass = math.erf(math.sqrt(2.0))
    expected_std = 0.01 * math.sqrt(1 - 4 * phi2 / mass)
    assert abs(w.mean().item()) < 1e-4
    assert w.std().item() == pytest.approx(expected_std, rel=0.01)
    # the fraction within ±1 std of the untruncated normal: (Φ(1) - Φ(-1)) / (Φ(2) - Φ(-2))
    inside = (w.abs() <= 0.01).float().mean().item()
    assert inside == pytest.approx(math.erf(1 / math.sqrt(2.0)) / mass, abs=0.005)
    bn = net_aux.inception4a.branch1.bn
    assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    assert torch.equal(bn.bias, torch.zeros_like(bn.bias))
