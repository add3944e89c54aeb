"""Network in Network: the released CIFAR-10 layout and parameter count, mlpconv as a per-pixel
MLP (torch's Linear at every position), and global average pooling as the class scores."""

from __future__ import annotations

import torch
from torch import nn

from striate import models
from striate.models.nin import NiN, mlpconv

# (kernel, in, out) of every convolution of the authors' cifar10_nin model
LAYERS = [
    (5, 3, 192), (1, 192, 160), (1, 160, 96),
    (5, 96, 192), (1, 192, 192), (1, 192, 192),
    (3, 192, 192), (1, 192, 192), (1, 192, 10),
]  # fmt: skip


def test_parameter_count_of_the_released_model():
    by_hand = sum(k * k * c_in * c_out + c_out for k, c_in, c_out in LAYERS)
    assert by_hand == 966_986
    net = models.create("nin")
    assert models.parameter_count(net) == (by_hand, by_hand)  # (all, trainable)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size[0], m.in_channels, m.out_channels) for m in convs] == LAYERS
    assert not any(isinstance(m, nn.Linear) for m in net.modules())  # no FC layer


def test_shapes_and_other_inputs():
    net = NiN(num_classes=100).eval()
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert NiN(in_shape=(1, 28, 28)).eval()(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    summary = str(models.summary(models.create("nin"), (3, 32, 32)))
    assert "966,986" in summary and "mlpconv3.cccp2" in summary


def test_mlpconv_is_a_per_pixel_mlp():
    torch.manual_seed(0)
    block = mlpconv(4, (6, 5, 3), 1)
    x = torch.randn(2, 4, 7, 7)
    mlp = nn.Sequential()
    for conv in (block.conv, block.cccp1, block.cccp2):
        linear = nn.Linear(conv.in_channels, conv.out_channels)
        linear.weight.data = conv.weight.data.flatten(1)
        linear.bias.data = conv.bias.data
        mlp.extend([linear, nn.ReLU()])
    expect = mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), expect, rtol=1e-5, atol=1e-6)


def test_scores_are_the_averaged_class_maps():
    torch.manual_seed(0)
    net = NiN().eval()
    x = torch.randn(3, 3, 32, 32)
    maps = nn.Sequential(*list(net)[:7])(x)  # through mlpconv3: one map per class
    assert maps.shape == (3, 10, 8, 8)
    torch.testing.assert_close(net(x), maps.mean((2, 3)))
