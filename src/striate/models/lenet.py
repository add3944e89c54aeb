"""LeNet-5, the convolutional network of LeCun et al. 1998, on 32×32 inputs ("lenet5").

LeCun, Bottou, Bengio & Haffner, "Gradient-based learning applied to document recognition"
(Proc. IEEE 1998); CS231n lecture 9: [CONV-POOL-CONV-POOL-FC-FC], 5×5 filters at stride 1 and
2×2 subsampling at stride 2::

    input 1@32x32 → C1 6@28x28 (5x5) → S2 6@14x14 → C3 16@10x10 (5x5) → S4 16@5x5
                  → C5 120@1x1 (5x5) → F6 84 → output 10

Parameters for 10 classes: C1 6·(25+1) = 156, C3 16·(6·25+1) = 2,416, C5 120·(16·25+1) =
48,120, F6 84·(120+1) = 10,164, output 10·(84+1) = 850; 61,706 in all. This is the usual modern
reading: C3 sees all six S2 maps (the paper connects each to a subset), S2/S4 are plain average
(or max) pools without the paper's trainable coefficient and bias, the activation is a plain
``tanh`` (or ``relu``...) rather than ``1.7159·tanh(2a/3)``, and the output is a Linear layer
(logits; the softmax is in the loss) instead of Euclidean RBF units.

C5 is a convolution whose kernel covers all of S4 (5×5 for a 32×32 input), so it is a full
connection between S4 and C5 as in the paper; for another input size its kernel is S4's size.
The model is therefore built for one input size. ``padding`` pads C1: ``None`` (automatic) pads
28×28 inputs (MNIST) by 2, which puts the digit in a 32×32 field as LeCun did, and others by 0.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import non_negative_int
from striate.errors import ConfigError
from striate.models.alexnet import min_input_size, spatial_size
from striate.models.mlp import make_activation
from striate.models.registry import check_io, register_variant

__all__ = ["LeNet5", "lenet5"]

_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Sequential):
    """C1-S2-C3-S4-C5-F6-output, named as in the paper (``c1``, ``s2``, ..., ``f6``, ``output``)."""

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 32, 32),
        num_classes: int = 10,
        *,
        activation: str = "tanh",
        pool: str = "avg",
        padding: int | None = None,
    ) -> None:
        owner = "LeNet5"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        make_activation(activation, owner)  # checks the name
        if not isinstance(pool, str) or pool not in _POOLS:
            raise ConfigError(
                f"{owner}: unknown pool {pool!r}; choose 'avg' (the paper's subsampling) or 'max'"
            )
        if padding is None:
            padding = 2 if (h, w) == (28, 28) else 0
        padding = non_negative_int(
            owner, "padding (of C1)", padding, hint="or None: 2 for 28×28 inputs, else 0"
        )

        c1 = nn.Conv2d(c, 6, 5, padding=padding)
        head = [c1, nn.Identity(), _POOLS[pool](2, 2), nn.Conv2d(6, 16, 5), nn.Identity()]
        head.append(_POOLS[pool](2, 2))
        s4 = (spatial_size(head, h, 0), spatial_size(head, w, 1))
        if min(s4) < 1:
            m = min_input_size(head)
            raise ConfigError(
                f"{owner}: a {h}×{w} input with padding={padding} is too small: C1 to S4 need at "
                f"least {m}×{m} (32×32 is the design size); pass a larger padding (32×32 after "
                f"padding is LeNet's input) or larger images"
            )
        super().__init__(
            OrderedDict(
                [
                    ("c1", c1),
                    ("act1", make_activation(activation)),
                    ("s2", head[2]),
                    ("c3", head[3]),
                    ("act3", make_activation(activation)),
                    ("s4", head[5]),
                    ("c5", nn.Conv2d(16, 120, s4)),  # kernel = S4's size: fully connected
                    ("act5", make_activation(activation)),
                    ("flatten", nn.Flatten()),
                    ("f6", nn.Linear(120, 84)),
                    ("act6", make_activation(activation)),
                    ("output", nn.Linear(84, num_classes)),
                ]
            )
        )
        self.in_shape = (c, h, w)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W of the built size."""
        if tuple(x.shape[-3:]) != self.in_shape:
            c, h, w = self.in_shape
            raise ConfigError(
                f"LeNet5 was built for {c}×{h}×{w} inputs (C5 covers the whole S4 map), got "
                f"{'×'.join(map(str, x.shape[-3:]))}; build it with in_shape set to the image "
                f"shape or resize the images"
            )
        return super().forward(x)


lenet5 = register_variant(
    "lenet5",
    LeNet5,
    "LeNet-5 (LeCun et al. 1998): CONV-POOL-CONV-POOL-FC-FC on 32x32 (28x28 padded by 2).",
    in_shape=(1, 32, 32),
    num_classes=10,
)
