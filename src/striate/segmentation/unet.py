"""U-Net (Ronneberger et al. 2015), small: a contracting path and an expanding path joined by
skip connections that *concatenate* the contracting path's features (FCN adds scores instead).

    UNet(num_classes=11, base=16, depth=3)    # 16 → 32 → 64 → 128 channels, 64 px → 8 px → 64 px

Each level is two 3×3 convolutions (+ batch norm, ReLU); 2×2 max pooling goes down, a 2×2
stride-2 transposed convolution ("up-convolution", halving the channels) goes up, then the
features of the same level are concatenated and convolved twice; a 1×1 convolution gives the
class scores. Differences from the paper, which predates batch normalisation and tiles large
microscopy images: the convolutions are padded, so the output has the input's size (the paper's
unpadded ones shrink a 572×572 input to a 388×388 map and crop the skip features to fit),
widths start at `base` instead of 64, and there are `depth` poolings instead of 4.

`coarse_scores=True` (not in the paper) adds FCN-style class scores of the bottleneck, brought
to the input's size by fixed bilinear interpolation, to the output. On the digit scenes the plain
U-Net learns *where* digits are long before *which*: base 8, 6 epochs of 7,500 scenes, it had
test mIoU 0.19 (4 epochs at lr 1e-2: every pixel still most likely background, the right digit
first among the digits at chance). The coarse scores give the deep features the gradient of every
pixel they cover, as in FCN: the same run reached mIoU 0.68 (FCN 0.50). See
docs/segmentation/README.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import integer, positive_int
from striate.models.registry import check_io, register_variant
from striate.segmentation.fcn import SCENES, conv_block
from striate.segmentation.upsampling import bilinear_kernel, pad_to_multiple


class UNet(nn.Module):
    """Ronneberger et al. 2015's U-Net with padded convolutions; see the module docstring."""

    def __init__(
        self,
        num_classes: int = 11,
        in_shape: Sequence[int] = (3, 64, 64),
        base: int = 16,
        depth: int = 3,
        batch_norm: bool = True,
        coarse_scores: bool = False,
    ) -> None:
        super().__init__()
        (c, _, _), k = check_io(in_shape, num_classes, "UNet")
        base = positive_int("UNet", "base", base)
        self.depth = integer("UNet", "depth", depth, low=1, high=6)
        widths = [base * 2**i for i in range(self.depth + 1)]
        self.down = nn.ModuleList(
            conv_block(a, b, 2, batch_norm)
            for a, b in zip([c, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottom = conv_block(widths[-2], widths[-1], 2, batch_norm)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
            for i in reversed(range(self.depth))
        )
        self.merge = nn.ModuleList(
            conv_block(2 * widths[i], widths[i], 2, batch_norm) for i in reversed(range(self.depth))
        )
        self.score = nn.Conv2d(widths[0], k, 1)
        self.coarse = nn.Conv2d(widths[-1], k, 1) if coarse_scores else None
        if coarse_scores:
            f = 2**self.depth
            self.register_buffer("coarse_up", bilinear_kernel(k, 2 * f), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes×H×W."""
        x, (h, w) = pad_to_multiple(x, 2**self.depth)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        coarse = None if self.coarse is None else self.coarse(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips), strict=True):
            x = merge(torch.cat([skip, up(x)], 1))
        scores = self.score(x)
        if coarse is not None:
            f = 2**self.depth
            up_w = self.coarse_up.to(coarse.dtype)
            scores = scores + F.conv_transpose2d(coarse, up_w, stride=f, padding=f // 2)
        return scores[..., :h, :w]


register_variant(
    "unet",
    UNet,
    "U-Net (Ronneberger et al. 2015), small, padded: concatenating skips, output at input size.",
    **SCENES,
)
