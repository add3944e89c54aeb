"""The small convolutional backbone both detectors share, and the checks of what they take: a few
3×3 conv–BN–ReLU blocks that take a 64-pixel image to an 8×8 map of features (stride 8), cheap
enough to train on two cores; images B×C×H×W and targets (boxes B×M×4, labels B×M).

    net = Backbone(3, widths=(32, 64, 128))          # stride 2 ** len(widths) = 8
    features = net(x)                                # B×128×H/8×W/8
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import int_sequence, positive_int
from striate.errors import InputError


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3×3 convolution (no bias), batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class Backbone(nn.Module):
    """A stride-2 block, then per further width a stride-2 block and a stride-1 block, so the
    stride is 2 ** len(widths) (8 at the default widths; receptive field 39 pixels, the size of
    the largest digits of the scenes); `stride` and `out_channels` say what comes out. The first
    block halves the image at once: full-resolution layers would cost most of the time."""

    def __init__(self, in_channels: int = 3, widths: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        in_channels = positive_int("Backbone", "in_channels", in_channels)
        widths = int_sequence("Backbone", "widths", widths, low=1, min_len=1)
        blocks = [conv_block(in_channels, widths[0], 2)]
        for a, b in zip(widths, widths[1:], strict=False):
            blocks += [conv_block(a, b, 2), conv_block(b, b)]
        self.body = nn.Sequential(*blocks)
        self.stride = 2 ** len(widths)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def check_images(x: torch.Tensor, channels: int) -> None:
    """A one-line InputError unless `x` is a B×`channels`×H×W tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"detector: images must be a B×{channels}×H×W tensor, got {got}")


def check_targets(targets, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes B×M×4 float, labels B×M int) or a one-line InputError."""
    try:
        boxes, labels = targets
    except (TypeError, ValueError):
        raise InputError(
            "detector: targets must be (boxes B×M×4, labels B×M), as DetectionLoader yields"
        ) from None
    if (
        not isinstance(boxes, torch.Tensor)
        or not isinstance(labels, torch.Tensor)
        or boxes.dim() != 3
        or boxes.shape[-1] != 4
        or labels.shape != boxes.shape[:2]
        or len(boxes) != batch
    ):
        raise InputError(
            f"detector: targets must be boxes B×M×4 and labels B×M for a batch of {batch}, got "
            f"{tuple(getattr(boxes, 'shape', ()))} and {tuple(getattr(labels, 'shape', ()))}"
        )
    return boxes.float(), labels.long()
