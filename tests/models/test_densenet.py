"""DenseNet-BC: published parameter counts, torchvision's key names, dense connectivity, stems."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models import densenet as dmod  # registers "densenet121" ...
from striate.models.densenet import DenseNet, min_input_size

BN_KEYS = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def torchvision_keys(block_config: tuple[int, ...]) -> list[str]:
    """torchvision's DenseNet state-dict keys, written out from its layout."""

    def bn(prefix: str) -> list[str]:
        return [f"{prefix}.{k}" for k in BN_KEYS]

    keys = ["features.conv0.weight", *bn("features.norm0")]
    for b, layers in enumerate(block_config, 1):
        for i in range(1, layers + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            keys += [*bn(f"{p}.norm1"), f"{p}.conv1.weight", *bn(f"{p}.norm2"), f"{p}.conv2.weight"]
        if b < len(block_config):
            keys += [*bn(f"features.transition{b}.norm"), f"features.transition{b}.conv.weight"]
    return keys + bn("features.norm5") + ["classifier.weight", "classifier.bias"]


def densenet_bc_params(k: int, blocks: tuple[int, ...], c0: int, classes: int, bn: int = 4) -> int:
    """Parameter count of DenseNet-BC by hand: convs have no bias, a BN has 2 per channel."""
    total = c0 * 3 * 7 * 7 + 2 * c0
    c = c0
    for b, layers in enumerate(blocks):
        for _ in range(layers):
            total += 2 * c + c * bn * k + 2 * bn * k + bn * k * k * 9
            c += k
        if b < len(blocks) - 1:
            total += 2 * c + c * (c // 2)
            c //= 2
    return total + 2 * c + c * classes + classes


@pytest.fixture(scope="module")
def net() -> DenseNet:
    return models.create("densenet121", num_classes=1000, in_shape=(3, 224, 224)).eval()


@pytest.fixture(scope="module")
def small() -> DenseNet:
    torch.manual_seed(0)
    return models.create("densenet121", num_classes=10, in_shape=(3, 32, 32), stem="cifar")


def test_densenet121_published_parameter_count(net):
    assert n_params(net) == 7_978_856 == densenet_bc_params(32, (6, 12, 24, 16), 64, 1000)


@pytest.mark.parametrize(
    ("name", "count", "config"),
    [
        ("densenet169", 14_149_480, (32, (6, 12, 32, 32), 64)),
        ("densenet201", 20_013_928, (32, (6, 12, 48, 32), 64)),
        ("densenet161", 28_681_000, (48, (6, 12, 36, 24), 96)),
    ],
)
def test_larger_variants_published_parameter_counts(name, count, config):
    m = models.create(name, num_classes=1000, in_shape=(3, 224, 224))
    assert n_params(m) == count == densenet_bc_params(*config, 1000)
    assert list(m.state_dict()) == torchvision_keys(config[1])


def test_state_dict_keys_are_torchvision_s(net):
    keys = list(net.state_dict())
    assert keys == torchvision_keys((6, 12, 24, 16))
    assert len(keys) == 727


def test_torchvision_shapes_and_layers(net):
    sd = net.state_dict()
    assert sd["features.conv0.weight"].shape == (64, 3, 7, 7)
    assert sd["features.denseblock1.denselayer1.conv1.weight"].shape == (128, 64, 1, 1)
    assert sd["features.denseblock1.denselayer1.conv2.weight"].shape == (32, 128, 3, 3)
    assert sd["features.denseblock1.denselayer6.norm1.weight"].shape == (64 + 5 * 32,)
    assert sd["features.transition1.conv.weight"].shape == (128, 256, 1, 1)
    assert sd["features.denseblock4.denselayer16.norm1.weight"].shape == (512 + 15 * 32,)
    assert sd["features.norm5.weight"].shape == (1024,)
    assert sd["classifier.weight"].shape == (1000, 1024)
    f = net.features
    assert isinstance(f.pool0, nn.MaxPool2d) and f.pool0.padding == 1
    assert isinstance(f.transition3.pool, nn.AvgPool2d) and f.transition3.pool.kernel_size == 2
    assert isinstance(f.relu0, nn.ReLU) and isinstance(f.denseblock2.denselayer3.relu2, nn.ReLU)
    assert net.features.conv0.bias is None and net.num_features == 1024


def test_a_state_dict_with_torchvision_names_loads_strictly(net):
    other = DenseNet((3, 224, 224), 1000)
    other.load_state_dict(net.state_dict(), strict=True)
    torch.testing.assert_close(other.classifier.weight, net.classifier.weight)


def test_imagenet_forward_shape(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def test_cifar_stem_layout_shape_and_count(small, net):
    conv0 = small.features.conv0
    assert conv0.kernel_size == (3, 3) and conv0.stride == (1, 1) and conv0.padding == (1, 1)
    assert isinstance(small.features.pool0, nn.Identity)
    plain = DenseNet((3, 32, 32), 1000, stem="cifar")
    assert n_params(net) - n_params(plain) == 64 * 3 * (7 * 7 - 3 * 3)
    assert list(plain.state_dict()) == list(net.state_dict())
    small.eval()
    with torch.no_grad():
        assert small(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_train_mode_forward_returns_a_tensor_with_gradients(small):
    small.train()
    out = small(torch.randn(2, 3, 32, 32))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    out.sum().backward()
    assert small.features.conv0.weight.grad is not None


def _randomise_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def _bn_relu(bn: nn.BatchNorm2d, z: torch.Tensor) -> torch.Tensor:
    z = (z - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    return F.relu(z * bn.weight[:, None, None] + bn.bias[:, None, None])


def test_dense_block_concatenates_its_input_and_every_layer_s_output():
    torch.manual_seed(1)
    block = dmod.DenseBlock(3, in_channels=5, bn_size=2, growth_rate=4).eval()
    _randomise_bn(block)
    x = torch.randn(2, 5, 6, 6)
    features = x
    for layer in block.values():  # H_l([x_0, ..., x_{l-1}]) by hand, Huang et al. eq. (2)
        h = F.conv2d(_bn_relu(layer.norm1, features), layer.conv1.weight)
        h = F.conv2d(_bn_relu(layer.norm2, h), layer.conv2.weight, padding=1)
        features = torch.cat([features, h], 1)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 5 + 3 * 4, 6, 6) == (2, block.out_channels, 6, 6)
    torch.testing.assert_close(out[:, :5], x)  # the input passes through unchanged
    torch.testing.assert_close(out, features.detach())


def test_transition_halves_channels_and_size():
    torch.manual_seed(2)
    t = dmod.Transition(8, 4).eval()
    _randomise_bn(t)
    x = torch.randn(1, 8, 7, 7)
    expected = F.avg_pool2d(F.conv2d(_bn_relu(t.norm, x), t.conv.weight), 2)
    with torch.no_grad():
        out = t(x)
    assert out.shape == (1, 4, 3, 3)
    torch.testing.assert_close(out, expected.detach())


def test_memory_efficient_gives_the_same_outputs_and_gradients():
    kw = dict(growth_rate=4, block_config=(2, 2), num_init_features=6, stem="cifar")
    torch.manual_seed(3)
    a = DenseNet((3, 8, 8), 3, **kw)
    b = DenseNet((3, 8, 8), 3, memory_efficient=True, **kw)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 8, 8)
    ya, yb = a(x), b(x)
    torch.testing.assert_close(ya, yb)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_dropout_is_active_in_training_only():
    kw = dict(growth_rate=4, block_config=(2, 2), num_init_features=6, stem="cifar")
    torch.manual_seed(4)
    m = DenseNet((3, 8, 8), 3, dropout=0.5, **kw)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        m.eval()
        torch.testing.assert_close(m(x), m(x))
        m.train()
        assert not torch.equal(m(x), m(x))


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
@pytest.mark.parametrize("blocks", [1, 2, 4])
def test_min_input_size_is_the_smallest_size_torch_runs(stem, blocks):
    m = DenseNet((3, 64, 64), 3, 2, (1,) * blocks, num_init_features=4, stem=stem).eval()

    def runs(s: int) -> bool:
        try:
            with torch.no_grad():
                m(torch.randn(1, 3, s, s))
        except RuntimeError:
            return False
        return True

    ok = [s for s in range(1, 40) if runs(s)]
    assert min_input_size(stem, blocks) == ok[0]
    assert ok == list(range(ok[0], 40))  # every larger size runs too
    assert min_input_size("imagenet") == 29 and min_input_size("cifar") == 8


def test_too_small_input_says_the_minimum_and_suggests_the_cifar_stem():
    with pytest.raises(ConfigError, match=r"28x28 input.*minimum size is 29x29.*stem='cifar'"):
        models.create("densenet121", num_classes=10, in_shape=(3, 28, 28))
    models.create("densenet121", num_classes=10, in_shape=(3, 29, 29))
    with pytest.raises(ConfigError, match="minimum size is 8x8; use larger images"):
        models.create("densenet121", num_classes=10, in_shape=(3, 32, 7), stem="cifar")


def test_spec_round_trip(small):
    assert small.spec["kwargs"]["block_config"] == [6, 12, 24, 16]
    again = models.from_spec(small.spec)
    assert {k: v.shape for k, v in again.state_dict().items()} == {
        k: v.shape for k, v in small.state_dict().items()
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(stem="tiny"), "unknown stem 'tiny'; choose 'imagenet'.*or 'cifar'"),
        (dict(growth_rate=0), "growth_rate must be a positive integer, got 0"),
        (dict(block_config=[]), "block_config must be a list of at least 1 integers"),
        (dict(block_config=[6, -1]), "block_config must be a list"),
        (dict(bn_size=-4), "bn_size must be a positive integer"),
        (dict(num_init_features=2.5), "num_init_features must be a positive integer"),
        (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
        (dict(memory_efficient="no"), "memory_efficient must be True or False"),
        (dict(drop_rate=0.1), "has no option 'drop_rate'"),
    ],
)
def test_bad_options(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        models.create("densenet121", num_classes=10, in_shape=(3, 32, 32), **kwargs)


def test_bad_inputs_to_the_class_and_helpers():
    with pytest.raises(ConfigError, match="in_shape must be"):
        DenseNet((3, 32, 32, 1), 10)
    with pytest.raises(ConfigError, match="num_classes must be an integer >= 2"):
        DenseNet((3, 32, 32), 0, stem="cifar")
    with pytest.raises(ConfigError, match="unknown stem 'big'"):
        min_input_size("big")
    with pytest.raises(ConfigError, match="blocks must be a positive integer"):
        min_input_size("cifar", 0)
