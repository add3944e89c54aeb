"""Network in Network (Lin, Chen and Yan, ICLR 2014, arXiv:1312.4400): its CIFAR-10 model ("nin").

An *mlpconv* layer is a convolution followed by a small multilayer perceptron shared across
positions, i.e. 1×1 convolutions ("cascaded cross channel parametric pooling", cccp), each with a
ReLU. There is no fully connected classifier: the last mlpconv has one map per class and *global
average pooling* turns each map into its class's score (the paper's §3.2), which the paper
argues regularises like dropout and makes the maps confidence maps of the classes.

The layout is the authors' released CIFAR-10 model (Caffe ``cifar10_nin``; the paper describes
three stacked mlpconv layers with dropout between them but gives no sizes)::

    mlpconv1  conv 5×5 192 (pad 2) → cccp 160 → cccp 96   maxpool 3/2   dropout 0.5
    mlpconv2  conv 5×5 192 (pad 2) → cccp 192 → cccp 192  avgpool 3/2   dropout 0.5
    mlpconv3  conv 3×3 192 (pad 1) → cccp 192 → cccp C    global average pool

Pools round up as Caffe's do (32 → 16 → 8). Weights start as torch's defaults (not the released
model's hand-set Gaussians; `striate.models.init_weights` offers others). Parameters for 10
classes: 966,986; the paper gives no count, this is the sum over the released model's layers,
which the tests recompute by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from striate.models.registry import check_dropout, check_io, register_variant

__all__ = ["NiN", "mlpconv"]


def mlpconv(c_in: int, widths: Sequence[int], kernel: int) -> nn.Sequential:
    """A k×k convolution to ``widths[0]`` maps, then a 1×1 convolution to each later width, each
    followed by a ReLU (padding keeps the size)."""
    layers: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(c_in, widths[0], kernel, padding=kernel // 2)),
        ("relu", nn.ReLU()),
    ]
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
        layers += [(f"cccp{i}", nn.Conv2d(a, b, 1)), (f"relu{i}", nn.ReLU())]
    return nn.Sequential(OrderedDict(layers))


class NiN(nn.Sequential):
    """Three mlpconv layers and global average pooling (the authors' CIFAR-10 model)."""

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        *,
        dropout: float = 0.5,
    ) -> None:
        (c, _, _), num_classes = check_io(in_shape, num_classes, "NiN")
        dropout = check_dropout(dropout, "NiN")
        super().__init__(
            OrderedDict(
                [
                    ("mlpconv1", mlpconv(c, (192, 160, 96), 5)),
                    ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
                    ("drop1", nn.Dropout(dropout)),
                    ("mlpconv2", mlpconv(96, (192, 192, 192), 5)),
                    ("pool2", nn.AvgPool2d(3, 2, ceil_mode=True)),
                    ("drop2", nn.Dropout(dropout)),
                    ("mlpconv3", mlpconv(192, (192, 192, num_classes), 3)),
                    ("gap", nn.AdaptiveAvgPool2d(1)),
                    ("flatten", nn.Flatten()),
                ]
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores N×num_classes: each class map of mlpconv3 averaged over its positions."""
        return super().forward(x)


nin = register_variant(
    "nin",
    NiN,
    "Network in Network (Lin et al. 2014): 3 mlpconv layers (conv + 1x1 convs), global average "
    "pooling, no FC layer; CIFAR-10's model, 0.97M parameters.",
)
