"""Fully convolutional networks that downsample then upsample inside (lecture 11), scaled down for
64×64 scenes on a CPU.

    FCN(num_classes=11, skips=2)            # FCN-8s pattern: coarse scores + two finer pool scores
    DeconvNet(num_classes=11, unpool="max") # a mirrored decoder of max unpooling + convolutions

`FCN` follows Long et al. 2015 (FCN-32s/16s/8s): a VGG-like backbone of `len(channels)` stages,
each of 3×3 convolutions then 2×2 max pooling, a convolutional "fc" head and 1×1 class scores at
stride 2^S; `skips` of the earlier pools' outputs are scored by 1×1 convolutions (initialised to
zero, §4.2) and added after each ×2 learned upsampling (a transposed convolution initialised to
bilinear); the last upsampling back to the input is fixed bilinear interpolation, as in the
paper's FCN-8s. With S = 4 stages and skips = 2 the scores come at strides 16, 8 and 4: the
paper's 32/16/8 pattern with one stage fewer.

`DeconvNet` follows Noh et al. 2015: the decoder mirrors the encoder, each stage undoing a pooling
("max": with the pooling's indices; "nearest", "bed_of_nails" or a learned "transpose"
convolution: the slides' other ways) followed by convolutions. Both add batch normalisation
after each convolution (the papers predate it; it lets a small network train in a few CPU
minutes). Any input size works: the input is zero-padded to a multiple of 2^S and the scores
cropped back.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import int_sequence, integer, one_of, positive_int
from striate.models.registry import check_io, register_variant
from striate.segmentation.upsampling import UNPOOLS, Upsample, bilinear_kernel, pad_to_multiple

SCENES = {"in_shape": (3, 64, 64), "num_classes": 11}  # digit scenes: background + "0".."9"


def conv_block(c_in: int, c_out: int, convs: int = 2, batch_norm: bool = True) -> nn.Sequential:
    """`convs` × (3×3 convolution, padding 1 → batch norm → ReLU): the size is kept."""
    layers: list[nn.Module] = []
    for i in range(convs):
        conv = nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=not batch_norm)
        layers.append(conv)
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Encoder(nn.Module):
    """Stages of `conv_block` then 2×2 max pooling; returns every pooled output and its indices."""

    def __init__(self, in_channels: int, channels: Sequence[int], convs: int, bn: bool) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.stages = nn.ModuleList(
            conv_block(a, b, convs, bn) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def forward(self, x: torch.Tensor):
        pooled, indices, sizes = [], [], []
        for stage in self.stages:
            x = stage(x)
            sizes.append(tuple(x.shape[-2:]))
            x, idx = F.max_pool2d(x, 2, return_indices=True)
            pooled.append(x)
            indices.append(idx)
        return pooled, indices, sizes


class FCN(nn.Module):
    """Long et al. 2015's FCN (skips=2: the FCN-8s pattern), scaled down; see the module
    docstring."""

    def __init__(
        self,
        num_classes: int = 11,
        in_shape: Sequence[int] = (3, 64, 64),
        channels: Sequence[int] = (32, 64, 128, 256),
        skips: int = 2,
        convs: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        (c, _, _), k = check_io(in_shape, num_classes, "FCN")
        channels = tuple(int_sequence("FCN", "channels", channels, min_len=1))
        self.skips = integer("FCN", "skips", skips, low=0, high=len(channels) - 1)
        positive_int("FCN", "convs", convs)
        self.num_classes, self.depth = k, len(channels)
        self.encoder = _Encoder(c, channels, convs, batch_norm)
        top = channels[-1]
        self.head = conv_block(top, top, 1, batch_norm)  # fc6/fc7 as convolutions, in small
        self.score = nn.Conv2d(top, k, 1)
        self.skip_scores = nn.ModuleList(
            nn.Conv2d(channels[-2 - i], k, 1) for i in range(self.skips)
        )
        for layer in self.skip_scores:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(k, k, 4, stride=2, padding=1, bias=False) for _ in range(self.skips)
        )
        for up in self.ups:
            up.weight.data.copy_(bilinear_kernel(k, 4))
        self.final_factor = 2 ** (self.depth - self.skips)
        f = self.final_factor
        # fixed, not learned (FCN-8s): a buffer, so it is not in the weights file either
        self.register_buffer("final_up", bilinear_kernel(k, 2 * f), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes×H×W."""
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        pooled, _, _ = self.encoder(x)
        scores = self.score(self.head(pooled[-1]))
        for i in range(self.skips):
            scores = self.ups[i](scores) + self.skip_scores[i](pooled[-2 - i])
        f = self.final_factor
        if f > 1:
            scores = F.conv_transpose2d(
                scores, self.final_up.to(scores.dtype), stride=f, padding=f // 2
            )
        return scores[..., :h, :w]


class DeconvNet(nn.Module):
    """Noh et al. 2015's encoder–decoder with unpooling, scaled down; see the module docstring."""

    def __init__(
        self,
        num_classes: int = 11,
        in_shape: Sequence[int] = (3, 64, 64),
        channels: Sequence[int] = (32, 64, 128),
        unpool: str = "max",
        convs: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        (c, _, _), k = check_io(in_shape, num_classes, "DeconvNet")
        channels = tuple(int_sequence("DeconvNet", "channels", channels, min_len=1))
        self.unpool = one_of("DeconvNet", "unpool", unpool, UNPOOLS)
        positive_int("DeconvNet", "convs", convs)
        self.depth = len(channels)
        self.encoder = _Encoder(c, channels, convs, batch_norm)
        widths = [channels[0], *channels]
        self.ups = nn.ModuleList(
            Upsample(widths[i + 1], widths[i + 1], unpool) for i in reversed(range(self.depth))
        )
        self.blocks = nn.ModuleList(
            conv_block(widths[i + 1], widths[i], convs, batch_norm)
            for i in reversed(range(self.depth))
        )
        self.score = nn.Conv2d(channels[0], k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes×H×W."""
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        pooled, indices, sizes = self.encoder(x)
        y = pooled[-1]
        for j, (up, block) in enumerate(zip(self.ups, self.blocks, strict=True)):
            i = self.depth - 1 - j
            y = block(up(y, indices[i], sizes[i]))
        return self.score(y)[..., :h, :w]


register_variant(
    "fcn",
    FCN,
    "FCN (Long et al. 2015): pooled backbone, class scores upsampled with FCN-8s-style skips.",
    **SCENES,
)
register_variant(
    "deconvnet",
    DeconvNet,
    "DeconvNet (Noh et al. 2015): encoder, mirrored decoder of max unpooling + convolutions.",
    **SCENES,
)
