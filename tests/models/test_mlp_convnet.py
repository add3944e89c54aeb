"""MLP and ConvNet: parameter counts by hand, shapes, layout, precision, and that they learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.models import MLP, ConvNet

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- MLP


def test_reference_mnist_mlp_has_79510_parameters():
    m = models.create("mlp", num_classes=10, in_shape=(1, 28, 28), hidden=(100,))
    assert n_params(m) == 79_510 == (784 * 100 + 100) + (100 * 10 + 10)
    assert [(lin.in_features, lin.out_features) for lin in m if isinstance(lin, nn.Linear)] == [
        (784, 100),
        (100, 10),
    ]


def test_mlp_parameter_count_with_batchnorm():
    sizes = [48, 32, 16, 5]
    m = MLP(sizes, batchnorm=True)
    linear = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    bn = 2 * (32 + 16)  # weight and bias per hidden unit
    assert n_params(m) == linear + bn


def test_mlp_layer_order_and_no_activation_after_the_last_layer():
    m = MLP([12, 8, 6, 3], activation="tanh", dropout=0.3, batchnorm=True)
    kinds = [type(layer) for layer in m]
    block = [nn.Linear, nn.BatchNorm1d, nn.Tanh, nn.Dropout]
    assert kinds == [nn.Flatten, *block, *block, nn.Linear]
    plain = MLP([12, 8, 3])
    assert [type(layer) for layer in plain] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]


def test_mlp_forward_matches_the_formula():
    torch.manual_seed(0)
    m = MLP([6, 5, 4], activation="sigmoid")
    x = torch.randn(3, 1, 2, 3)
    w1, b1, w2, b2 = m[1].weight, m[1].bias, m[3].weight, m[3].bias
    expected = torch.sigmoid(x.reshape(3, 6) @ w1.T + b1) @ w2.T + b2
    torch.testing.assert_close(m(x), expected)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("relu", nn.ReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("elu", nn.ELU),
        ("gelu", nn.GELU),
        ("tanh", nn.Tanh),
        ("sigmoid", nn.Sigmoid),
    ],
)
def test_activations_by_name(name, kind):
    assert isinstance(MLP([4, 4, 2], activation=name)[2], kind)
    net = ConvNet((1, 4, 4), 2, channels=(4,), fc=(3,), activation=name)
    assert sum(isinstance(m, kind) for m in net.modules()) == 2 * 1 + 1


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(sizes=[784]), "sizes must be a list of at least 2 integers"),
        (dict(sizes=[784, 0, 10]), "sizes"),
        (dict(sizes=[784, -5, 10]), "sizes"),
        (dict(sizes=[784, 10], activation="softmax"), "activations are relu, leaky_relu"),
        (dict(sizes=[784, 10], dropout=1.0), r"dropout must be a probability in \[0, 1\)"),
        (dict(sizes=[784, 10], batchnorm=1), "batchnorm must be True or False"),
    ],
)
def test_mlp_bad_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        MLP(**kwargs)


def test_mlp_with_no_hidden_layer_is_a_linear_classifier():
    m = models.create("mlp", 10, (1, 8, 8), hidden=())
    assert n_params(m) == 64 * 10 + 10


# --------------------------------------------------------------------------- ConvNet


def test_convnet_parameter_count_by_hand():
    net = ConvNet((3, 32, 32), 10, channels=(16, 32), convs_per_stage=2, fc=(64,))
    convs = (3 * 16 + 16 * 16 + 16 * 32 + 32 * 32) * 3 * 3  # no conv bias before BatchNorm
    bn = 2 * (16 + 16 + 32 + 32)
    fc = (32 * 8 * 8) * 64 + 64 + 64 * 10 + 10  # two 2×2 pools: 32 → 8
    assert n_params(net) == convs + bn + fc

    plain = ConvNet(
        (1, 28, 28), 10, channels=(8,), convs_per_stage=1, batchnorm=False, pool=None, fc=()
    )
    assert n_params(plain) == (1 * 8 * 9 + 8) + (8 * 28 * 28 * 10 + 10)


@pytest.mark.parametrize("in_shape", SHAPES)
@pytest.mark.parametrize("name", ["mlp", "convnet", "convnet_small"])
def test_output_shapes(name, in_shape):
    m = models.create(name, num_classes=7, in_shape=in_shape)
    assert m(torch.randn(4, *in_shape)).shape == (4, 7)


@pytest.mark.parametrize(
    ("in_shape", "kwargs"),
    [
        ((1, 8, 8), {}),
        ((3, 13, 17), dict(channels=(4, 6, 8))),  # odd sizes: pools round down
        ((2, 9, 30), dict(pool="avg", kernel_size=5)),
        ((1, 8, 8), dict(channels=(4,) * 3)),  # 8 → 1
        ((3, 7, 7), dict(pool=None, channels=(4,) * 6)),
        ((3, 11, 6), dict(global_pool=True)),
    ],
)
def test_flattened_size_arithmetic_matches_running_the_features(in_shape, kwargs):
    net = ConvNet(in_shape, 5, **kwargs)
    feats = net.pool(net.features(torch.zeros(2, *in_shape)))
    assert tuple(feats.shape[1:]) == net.feature_shape
    assert feats[0].numel() == net.flat_features == net.classifier[0].in_features


def test_too_many_pooled_stages_says_how_many_fit():
    with pytest.raises(ConfigError, match=r"allows at most 3 stage"):
        ConvNet((1, 8, 8), 10, channels=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match=r"allows at most 4 stage"):
        models.create("convnet", in_shape=(1, 28, 28), channels=(4,) * 5)
    with pytest.raises(ConfigError, match=r"allows at most 0 stage"):
        ConvNet((1, 1, 9), 10, channels=(4,))
    ConvNet((1, 8, 8), 10, channels=(8, 8, 8, 8), pool=None)  # no pools: any depth


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(kernel_size=4), "kernel_size must be odd"),
        (dict(kernel_size=0), "kernel_size must be a positive integer"),
        (dict(channels=()), "channels must be a list of at least 1 integers"),
        (dict(channels=(8, 0)), "channels"),
        (dict(pool="median"), "pool must be True"),
        (dict(convs_per_stage=0), "convs_per_stage"),
        (dict(fc=(-1,)), "fc"),
        (dict(dropout=-0.5), "dropout"),
        (dict(activation="swish"), "unknown activation 'swish'"),
        (dict(global_pool="no"), "global_pool must be True or False"),
    ],
)
def test_convnet_bad_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        ConvNet((3, 32, 32), 10, **kwargs)


def test_convnet_layout_batchnorm_dropout_pools():
    net = ConvNet((3, 16, 16), 4, channels=(8, 16), convs_per_stage=2, fc=(32, 16), dropout=0.5)
    count = lambda kind: sum(isinstance(m, kind) for m in net.modules())  # noqa: E731
    assert count(nn.Conv2d) == 4 and count(nn.BatchNorm2d) == 4 and count(nn.MaxPool2d) == 2
    assert count(nn.Dropout) == 2 and count(nn.Linear) == 3
    assert isinstance(net.classifier[-1], nn.Linear)  # logits: no activation after
    lean = ConvNet((3, 16, 16), 4, batchnorm=False, pool="avg", fc=())
    absent = (nn.BatchNorm2d, nn.Dropout, nn.MaxPool2d)
    assert not any(isinstance(m, absent) for m in lean.modules())
    assert sum(isinstance(m, nn.AvgPool2d) for m in lean.modules()) == 2
    assert all(m.bias is not None for m in lean.modules() if isinstance(m, nn.Conv2d))
    with_dropout = ConvNet((3, 16, 16), 4, fc=(), dropout=0.2)
    assert isinstance(with_dropout.classifier[0], nn.Dropout)


@pytest.mark.parametrize("name", ["mlp", "convnet", "convnet_small"])
def test_channels_last_gives_the_same_output(name):
    torch.manual_seed(0)
    m = models.create(name, num_classes=10, in_shape=(3, 32, 32)).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        out = m.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp", "convnet_small"])
def test_bf16_autocast_on_cpu(name):
    torch.manual_seed(0)
    m = models.create(name, num_classes=10, in_shape=(1, 28, 28)).eval()
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m(x)
    assert out.dtype == torch.bfloat16 and out.shape == (8, 10)
    assert torch.isfinite(out).all()
    # bf16 keeps ~3 significant digits; the scores must still be the same scores
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05 * ref.abs().max().item())


@pytest.mark.parametrize(
    ("name", "in_shape", "init"),
    [
        ("mlp", (1, 8, 8), "default"),
        ("convnet_small", (1, 8, 8), "kaiming"),
        ("convnet", (3, 16, 16), "xavier"),
    ],
)
def test_gradients_flow_and_sgd_lowers_the_loss(name, in_shape, init):
    torch.manual_seed(0)
    m = models.create(name, num_classes=4, in_shape=in_shape, init=init)
    x = torch.randn(16, *in_shape)
    y = torch.arange(16) % 4
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        if not losses:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
