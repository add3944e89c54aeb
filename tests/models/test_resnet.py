"""ImageNet ResNets: published parameter counts, torchvision's key names, shapes, stems, SE."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models import resnet  # noqa: F401  (registers the family)
from striate.models.resnet import BasicBlock, Bottleneck, ResNet, SqueezeExcitation, conv1x1

# name: (published parameter count for 1000 classes, blocks per stage, bottleneck?)
TORCHVISION = {
    "resnet18": (11_689_512, [2, 2, 2, 2], False),
    "resnet34": (21_797_672, [3, 4, 6, 3], False),
    "resnet50": (25_557_032, [3, 4, 6, 3], True),
    "resnet101": (44_549_160, [3, 4, 23, 3], True),
    "resnet152": (60_192_808, [3, 8, 36, 3], True),
    "resnext50_32x4d": (25_028_904, [3, 4, 6, 3], True),
    "resnext101_32x8d": (88_791_336, [3, 4, 23, 3], True),
    "wide_resnet50_2": (68_883_240, [3, 4, 6, 3], True),
}
IMAGENET = (3, 224, 224)


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_model(name: str, **kwargs) -> nn.Module:
    """The model with its tensors on the meta device: names and shapes, no memory, no init time."""
    with torch.device("meta"):
        return models.create(name, num_classes=1000, in_shape=IMAGENET, **kwargs)


def torchvision_keys(blocks: list[int], bottleneck: bool) -> list[str]:
    """torchvision's ResNet state-dict keys, in order, written out from its layout."""

    def bn(prefix: str) -> list[str]:
        stats = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        return [f"{prefix}.{s}" for s in stats]

    keys = ["conv1.weight", *bn("bn1")]
    for stage, n in enumerate(blocks, 1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            for i in range(1, 4 if bottleneck else 3):
                keys += [f"{p}.conv{i}.weight", *bn(f"{p}.bn{i}")]
            # the first block of a stage changes the shape, except layer1 of a basic-block net
            if b == 0 and (stage > 1 or bottleneck):
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
    return [*keys, "fc.weight", "fc.bias"]


@pytest.fixture(scope="module")
def resnet18_cpu() -> nn.Module:
    torch.manual_seed(0)
    return models.create("resnet18", num_classes=1000, in_shape=IMAGENET).eval()


@pytest.fixture(scope="module")
def resnet50_cpu() -> nn.Module:
    torch.manual_seed(0)
    return models.create("resnet50", num_classes=1000, in_shape=IMAGENET).eval()


# --------------------------------------------------------------------------- counts and names


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_published_parameter_count_and_torchvision_keys(name):
    count, blocks, bottleneck = TORCHVISION[name]
    m = meta_model(name)
    assert n_params(m) == count
    expected = torchvision_keys(blocks, bottleneck)
    assert list(m.state_dict()) == expected
    # each conv has 1 tensor, each BN 5 (2 parameters, 3 buffers), the fc 2
    convs = 1 + sum(blocks) * (3 if bottleneck else 2) + (4 if bottleneck else 3)
    assert len(expected) == convs * 6 + 2


def test_full_key_counts_of_torchvision_state_dicts():
    counts = {name: len(meta_model(name).state_dict()) for name in ("resnet18", "resnet50")}
    assert counts == {"resnet18": 122, "resnet50": 320}
    assert len(meta_model("resnet152").state_dict()) == 932


def test_resnet50_key_shapes_follow_torchvision():
    sd = meta_model("resnet50").state_dict()
    shapes = {
        "conv1.weight": (64, 3, 7, 7),
        "layer1.0.conv1.weight": (64, 64, 1, 1),
        "layer1.0.conv2.weight": (64, 64, 3, 3),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.running_var": (256,),
        "layer4.2.bn3.weight": (2048,),
        "fc.weight": (1000, 2048),
        "fc.bias": (1000,),
    }
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    assert sd["layer4.1.bn2.num_batches_tracked"].shape == ()


def test_resnet18_keys_and_no_downsample_in_its_first_stage():
    sd = meta_model("resnet18").state_dict()
    assert tuple(sd["layer4.1.bn2.running_var"].shape) == (512,)
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(sd["fc.weight"].shape) == (1000, 512)
    assert not any(k.startswith("layer1.0.downsample") for k in sd)


def test_resnext_and_wide_inner_widths():
    # ResNeXt-50 32x4d: 32 groups of 4 channels in the first stage's 3x3 (Xie et al. table 1)
    sd = meta_model("resnext50_32x4d").state_dict()
    assert tuple(sd["layer1.0.conv2.weight"].shape) == (128, 128 // 32, 3, 3)
    assert tuple(sd["layer4.0.conv2.weight"].shape) == (1024, 1024 // 32, 3, 3)
    sd = meta_model("resnext101_32x8d").state_dict()
    assert tuple(sd["layer1.0.conv2.weight"].shape) == (256, 256 // 32, 3, 3)
    sd = meta_model("wide_resnet50_2").state_dict()
    assert tuple(sd["layer1.0.conv2.weight"].shape) == (128, 128, 3, 3)
    assert tuple(sd["layer1.0.conv3.weight"].shape) == (256, 128, 1, 1)


def test_stride_sits_on_the_3x3_conv_v1_5():
    m = meta_model("resnet50")
    block = m.layer2[0]
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert block.downsample[0].stride == (2, 2)
    assert all(c.bias is None for c in m.modules() if isinstance(c, nn.Conv2d))


def test_in_channels_and_num_classes_reach_the_first_and_last_layers():
    with torch.device("meta"):
        m = models.create("resnet34", num_classes=7, in_shape=(1, 64, 64))
    assert tuple(m.conv1.weight.shape) == (64, 1, 7, 7)
    assert tuple(m.fc.weight.shape) == (7, 512)


# --------------------------------------------------------------------------- forward and stems


def test_imagenet_forward_shapes(resnet18_cpu, resnet50_cpu):
    seen = {}
    hook = resnet50_cpu.layer4.register_forward_hook(lambda m, i, o: seen.update(s=o.shape))
    x = torch.randn(1, *IMAGENET)
    with torch.no_grad():
        assert resnet18_cpu(x).shape == (1, 1000)
        assert resnet50_cpu(x).shape == (1, 1000)
    hook.remove()
    assert seen["s"] == (1, 2048, 7, 7)  # 224 / 32


def test_cifar_stem_keeps_32x32_resolution_longer():
    torch.manual_seed(0)
    m = models.create("resnet18", num_classes=10, in_shape=(3, 32, 32), stem="cifar").eval()
    assert tuple(m.conv1.weight.shape) == (64, 3, 3, 3)
    assert m.conv1.stride == (1, 1) and isinstance(m.maxpool, nn.Identity)
    seen = {}
    m.layer4.register_forward_hook(lambda mod, i, o: seen.update(s=o.shape))
    with torch.no_grad():
        assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        assert m(torch.randn(1, 3, 40, 24)).shape == (1, 10)  # any size above the minimum
    assert seen["s"] == (1, 512, 5, 3)  # ceil(40 / 8), ceil(24 / 8)
    # the keys are torchvision's; only conv1's shape differs
    assert list(m.state_dict()) == torchvision_keys([2, 2, 2, 2], False)
    assert n_params(m) == 11_689_512 - 64 * 3 * (49 - 9) - 512 * 990 - 990


def test_too_small_input_for_the_stem_says_the_minimum_and_suggests_cifar():
    with pytest.raises(ConfigError, match="at least 32x32") as e:
        models.create("resnet18", num_classes=10, in_shape=(1, 28, 28))
    assert "stem='cifar'" in str(e.value) and "28x28" in str(e.value)
    models.create("resnet18", num_classes=10, in_shape=(1, 28, 28), stem="cifar")
    with pytest.raises(ConfigError, match="at least 8x8"):
        models.create("resnet18", num_classes=10, in_shape=(3, 6, 32), stem="cifar")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(stem="cifar10"), "choose 'imagenet'"),
        (dict(stem=None), "unknown stem"),
        (dict(se="yes"), "se must be True or False"),
        (dict(zero_init_residual=1), "zero_init_residual must be True or False"),
        (dict(stme="cifar"), "did you mean 'stem'"),
    ],
)
def test_bad_options_raise_config_errors(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        models.create("resnet18", num_classes=10, in_shape=(3, 32, 32), **kwargs)


def test_bad_resnet_arguments():
    with pytest.raises(ConfigError, match="'basic', 'bottleneck'"):
        ResNet("dense", [2, 2, 2, 2])
    with pytest.raises(ConfigError, match="4 stages"):
        ResNet("basic", [2, 2, 2])
    with pytest.raises(ConfigError, match="layers"):
        ResNet("basic", [2, -1, 2, 2])
    with pytest.raises(ConfigError, match="block='bottleneck'"):
        ResNet("basic", [1, 1, 1, 1], groups=32, width_per_group=4)
    with pytest.raises(ConfigError, match="in_shape"):
        ResNet("basic", [1, 1, 1, 1], in_shape=(224, 224))


# --------------------------------------------------------------------------- blocks by hand


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Eval-mode BatchNorm written out: (x - mean) / sqrt(var + eps) * weight + bias."""
    shape = (1, -1, 1, 1)
    z = (x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return z * bn.weight.view(shape) + bn.bias.view(shape)


def _randomise_bn(m: nn.Module, g: torch.Generator) -> None:
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=g))
            bn.bias.data.copy_(torch.randn(c, generator=g))


@torch.no_grad()
def test_grouped_bottleneck_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    down = nn.Sequential(conv1x1(64, 128, 2), nn.BatchNorm2d(128))
    block = Bottleneck(64, 32, stride=2, downsample=down, groups=4, base_width=8).eval()
    _randomise_bn(block, g)
    width = 32 * 8 // 64 * 4
    assert block.conv2.weight.shape == (width, width // 4, 3, 3)
    x = torch.randn(2, 64, 9, 9, generator=g)
    h = F.relu(_bn(F.conv2d(x, block.conv1.weight), block.bn1))
    h = F.relu(_bn(F.conv2d(h, block.conv2.weight, stride=2, padding=1, groups=4), block.bn2))
    h = _bn(F.conv2d(h, block.conv3.weight), block.bn3)
    shortcut = _bn(F.conv2d(x, down[0].weight, stride=2), down[1])
    expected = F.relu(h + shortcut)
    torch.testing.assert_close(block(x), expected)
    assert expected.shape == (2, 128, 5, 5)


@torch.no_grad()
def test_squeeze_excitation_matches_the_formula():
    torch.manual_seed(0)
    se = SqueezeExcitation(64)
    assert se.fc1.weight.shape == (64 // 16, 64, 1, 1)
    x = torch.randn(3, 64, 5, 4)
    w1, b1 = se.fc1.weight.view(4, 64), se.fc1.bias
    w2, b2 = se.fc2.weight.view(64, 4), se.fc2.bias
    z = x.mean(dim=(2, 3))  # squeeze: N x C
    gate = torch.sigmoid(F.relu(z @ w1.T + b1) @ w2.T + b2)  # excitation
    torch.testing.assert_close(se(x), x * gate[:, :, None, None])


def test_se_adds_only_se_keys_and_matches_timm_seresnet50_count():
    plain = set(meta_model("resnet50").state_dict())
    m = meta_model("resnet50", se=True)
    keys = set(m.state_dict())
    assert plain < keys
    extra = keys - plain
    assert all(k.split(".")[2] == "se" and k.split(".")[3] in ("fc1", "fc2") for k in extra)
    assert len(extra) == 16 * 4  # 16 blocks, 2 layers with weight and bias
    # per block of output width C: two C x C/16 1x1 convs and their biases
    widths = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3
    added = sum(2 * c * (c // 16) + c // 16 + c for c in widths)
    assert n_params(m) == 25_557_032 + added == 28_088_024  # timm's seresnet50
    assert isinstance(m.layer3[5].se, SqueezeExcitation)
    assert meta_model("resnet18", se=True).layer1[0].se.fc1.out_channels == 64 // 16


@torch.no_grad()
def test_se_block_gates_the_residual_branch_before_the_addition():
    torch.manual_seed(0)
    block = BasicBlock(8, 8, se=True).eval()
    x = torch.rand(2, 8, 6, 6)
    h = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
    torch.testing.assert_close(block(x), F.relu(block.se(h) + x))


# --------------------------------------------------------------------------- init and options


def test_torchvision_initialisation(resnet50_cpu):
    w = resnet50_cpu.layer3[0].conv2.weight  # 256 x 256 x 3 x 3
    fan_out = w.shape[0] * 9
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.05)
    bns = [m for m in resnet50_cpu.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bool((b.weight == 1).all() and (b.bias == 0).all()) for b in bns)


@torch.no_grad()
def test_zero_init_residual_makes_blocks_start_as_the_identity():
    torch.manual_seed(0)
    m = models.create("resnet18", num_classes=10, stem="cifar", zero_init_residual=True).eval()
    assert all(bool((b.bn2.weight == 0).all()) for b in m.modules() if isinstance(b, BasicBlock))
    x = torch.rand(2, 64, 8, 8)  # non-negative, as after the stem's ReLU
    torch.testing.assert_close(m.layer1(x), x)
    plain = models.create("resnet18", num_classes=10, stem="cifar").eval()
    assert not torch.allclose(plain.layer1(x), x)
    deep = ResNet("bottleneck", [1, 1, 1, 1], (3, 32, 32), 10, zero_init_residual=True).eval()
    bottlenecks = [b for b in deep.modules() if isinstance(b, Bottleneck)]
    assert len(bottlenecks) == 4 and all(bool((b.bn3.weight == 0).all()) for b in bottlenecks)
    y = torch.rand(1, 256, 4, 4)
    torch.testing.assert_close(deep.layer2[0](y), F.relu(deep.layer2[0].downsample(y)))
    for init in ("kaiming", "xavier", "normal"):  # a scheme resets BatchNorm weights to 1 first
        m = models.create(
            "resnet18", num_classes=10, stem="cifar", zero_init_residual=True, init=init
        ).eval()
        torch.testing.assert_close(m.layer1(x), x)


@torch.no_grad()
def test_state_dict_round_trip_and_spec():
    torch.manual_seed(0)
    a = models.create("resnet18", num_classes=5, in_shape=(3, 32, 32), stem="cifar", se=True)
    b = models.from_spec(a.spec)
    assert a.spec["kwargs"] == {"stem": "cifar", "se": True, "zero_init_residual": False}
    b.load_state_dict(a.state_dict())  # strict: same names and shapes
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(a.eval()(x), b.eval()(x))


def test_describe_lines_exist():
    for name in TORCHVISION:
        assert models.describe(name)
