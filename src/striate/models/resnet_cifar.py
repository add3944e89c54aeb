"""ResNets for CIFAR-sized images: the 6n+2 ResNets, pre-activation ResNets and wide ResNets.

**CIFAR ResNets** (He et al. 2016, arXiv:1512.03385, section 4.2): a 3×3 convolution to 16
channels, then three stages of ``n`` basic blocks with 16, 32 and 64 channels on 32×32, 16×16 and
8×8 maps (the first block of stages 2 and 3 has stride 2), global average pooling and a linear
layer: ``6n + 2`` weighted layers. Registered as ``resnet20``, ``resnet32``, ``resnet44``,
``resnet56``, ``resnet110`` (n = 3, 5, 7, 9, 18; 269,722 / 464,154 / 658,586 / 853,018 /
1,727,962 parameters for 10 classes with option A, the paper's 0.27M...1.7M) and ``cifar_resnet``
(any depth). Where a shortcut changes the shape:

- ``shortcut="A"`` (default, as the paper's CIFAR nets): the identity with extra zero channels,
  parameter-free: subsample by 2 (take every other pixel, i.e. a 1×1 stride-2 "convolution" with
  the identity) and append the missing channels as zeros (the layout of fb.resnet.torch's
  shortcut type A; ``ZeroPadShortcut``).
- ``shortcut="B"``: a projection ``downsample = [1×1 conv with stride 2, BatchNorm]``.

The names follow torchvision's ResNet (``conv1, bn1, layer1..layer3, fc``; blocks are
`striate.models.resnet.BasicBlock`).

**Pre-activation ResNets** (He et al. 2016b, "Identity Mappings in Deep Residual Networks",
arXiv:1603.05027): each block is BN-ReLU-conv-BN-ReLU-conv and adds its input untouched
(``x + F(x)``, no ReLU after the addition), so the signal passes from any block to any later one
unchanged; a BN-ReLU (``bn``, ``relu``) follows the last block. A shortcut that changes the shape
is a 1×1 convolution (``downsample.0``) applied to the pre-activated input. Registered:

- ``preact_resnet18``: ResNet-18's widths (64...512) and blocks [2, 2, 2, 2] on a 3×3 stem,
  the common CIFAR baseline; ``stem="imagenet"`` gives the 7×7/2 conv + max-pool stem instead (no
  BN-ReLU after it: the first block pre-activates).
- ``preact_resnet20``, ``preact_resnet110``: the paper's CIFAR nets (16/32/64 channels, 6n+2
  layers); pre-activation ResNet-110 is the net of the paper's Table 2/3.

**Wide ResNets** (Zagoruyko & Komodakis 2016, arXiv:1605.07146): pre-activation basic blocks
``k`` times wider (16k, 32k, 64k channels after a 16-channel 3×3 stem), ``(depth - 4) / 6`` per
stage, dropout between the two convolutions of a block (the paper uses 0.3 for its best CIFAR
results; the default here is 0). Registered as ``wide_resnet`` (any ``depth``/``widen_factor``),
``wrn_16_4`` (2,748,890 parameters for 10 classes) and ``wrn_28_10`` (36,479,194).

All convolutions are Kaiming-normal (fan-out) initialised, BatchNorm to 1 and 0, as torchvision's
ResNet.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import int_sequence, integer, positive_int
from striate.errors import ConfigError
from striate.models.registry import CIFAR, check_dropout, check_io, register, register_variant
from striate.models.resnet import BasicBlock, conv1x1, conv3x3, kaiming_init
from striate.models.stems import check_min_size, check_stem, stem_stride

__all__ = [
    "SHORTCUTS",
    "CifarResNet",
    "PreActBlock",
    "PreActResNet",
    "ZeroPadShortcut",
    "cifar_resnet",
    "preact_resnet18",
    "preact_resnet20",
    "preact_resnet110",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "wide_resnet",
    "wrn_16_4",
    "wrn_28_10",
]

SHORTCUTS = ("A", "B")


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: ``x[:, :, ::stride, ::stride]`` followed by ``extra`` zero channels."""

    def __init__(self, stride: int, extra: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The subsampled input with zero channels appended; no parameters."""
        s = self.stride
        # F.pad's last pair pads dimension -3, the channels: (0 before, extra after)
        return F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra={self.extra}"


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016 (section 4.2): 6n+2 layers, 16/32/64 channels."""

    def __init__(
        self,
        depth: int = 20,
        in_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        *,
        shortcut: str = "A",
    ) -> None:
        super().__init__()
        owner = f"CIFAR ResNet-{depth}"
        depth = integer("CIFAR ResNet", "depth", depth, low=8)
        if (depth - 2) % 6:
            raise ConfigError(
                f"CIFAR ResNet: depth must be 6n+2 (8, 14, 20, 32, 44, 56, 110...), got {depth}; "
                f"the nearest are {_nearest(depth, 6, 2)}"
            )
        if shortcut not in SHORTCUTS:
            raise ConfigError(
                f"{owner}: unknown shortcut {shortcut!r}; choose 'A' (zero-padding identity, "
                f"parameter-free) or 'B' (1x1 conv + BN projection where the shape changes)"
            )
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        self.min_size = 4  # two stride-2 stages
        check_min_size(h, w, self.min_size, owner)
        n = (depth - 2) // 6

        self.depth = depth
        self.shortcut = shortcut
        self.inplanes = 16
        self.conv1 = conv3x3(c, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        kaiming_init(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != planes:
            if self.shortcut == "A":
                downsample = ZeroPadShortcut(stride, planes - self.inplanes)
            else:
                downsample = nn.Sequential(
                    conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes)
                )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class PreActBlock(nn.Module):
    """``x' + conv2(drop(relu(bn2(conv1(x')))))``, ``x' = relu(bn1(x))`` (He et al. 2016b)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv3x3(planes, planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output; the identity path adds ``x`` itself, not its activation."""
        out = self.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet: stem conv, stages of `PreActBlock`, BN-ReLU, avg-pool, fc.

    Stage ``i`` has ``blocks[i]`` blocks of width ``widths[i]``; the first stage keeps the size,
    each later one halves it. ``stem`` is "cifar" (3×3/1 conv to ``stem_width``) or "imagenet"
    (7×7/2 conv and 3×3/2 max-pool). ``dropout`` sits between a block's two convolutions.
    """

    def __init__(
        self,
        widths: Sequence[int],
        blocks: Sequence[int],
        in_shape: Sequence[int] = (3, 32, 32),
        num_classes: int = 10,
        *,
        stem_width: int = 16,
        stem: str = "cifar",
        dropout: float = 0.0,
        owner: str = "PreActResNet",
    ) -> None:
        super().__init__()
        widths = int_sequence(owner, "widths", widths, min_len=1)
        blocks = int_sequence(owner, "blocks", blocks, min_len=1)
        if len(widths) != len(blocks):
            raise ConfigError(
                f"{owner}: widths and blocks give one entry per stage and must have the same "
                f"length, got {len(widths)} widths and {len(blocks)} block counts"
            )
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        stem_width = positive_int(owner, "stem_width", stem_width)
        stem = check_stem(stem, owner)
        dropout = check_dropout(dropout, owner)
        self.min_size = stem_stride(stem) * 2 ** (len(widths) - 1)
        check_min_size(h, w, self.min_size, owner, stem)

        self.stem = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(c, stem_width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = conv3x3(c, stem_width)
            self.maxpool = nn.Identity()
        inplanes = stem_width
        for i, (width, n) in enumerate(zip(widths, blocks, strict=True)):
            stage = [PreActBlock(inplanes, width, 1 if i == 0 else 2, dropout)]
            stage += [PreActBlock(width, width, 1, dropout) for _ in range(1, n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            inplanes = width
        self.num_stages = len(widths)
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.maxpool(self.conv1(x))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _nearest(value: int, step: int, offset: int) -> str:
    """The valid values ``step·n + offset`` on either side of ``value``, as text."""
    below = (value - offset) // step * step + offset
    return " and ".join(str(v) for v in (below, below + step) if v >= step + offset)


# --------------------------------------------------------------------------- CIFAR ResNets


cifar_resnet = register_variant(
    "cifar_resnet",
    CifarResNet,
    "CIFAR ResNet of any depth 6n+2 (He et al. 2016, sec. 4.2): 16/32/64 channels.",
    **CIFAR,
)


def _cifar_doc(depth: int, parameters: str) -> str:
    return (
        f"CIFAR ResNet-{depth} (He et al. 2016, sec. 4.2), {parameters} parameters; "
        "shortcut 'A' or 'B'."
    )


resnet20 = register_variant("resnet20", cifar_resnet, _cifar_doc(20, "0.27M"), depth=20, **CIFAR)
resnet32 = register_variant("resnet32", cifar_resnet, _cifar_doc(32, "0.46M"), depth=32, **CIFAR)
resnet44 = register_variant("resnet44", cifar_resnet, _cifar_doc(44, "0.66M"), depth=44, **CIFAR)
resnet56 = register_variant("resnet56", cifar_resnet, _cifar_doc(56, "0.85M"), depth=56, **CIFAR)
resnet110 = register_variant("resnet110", cifar_resnet, _cifar_doc(110, "1.7M"), depth=110, **CIFAR)


# --------------------------------------------------------------------------- pre-activation


@register("preact_resnet18", **CIFAR)
def preact_resnet18(
    num_classes: int, in_shape: tuple[int, int, int], stem: str = "cifar"
) -> PreActResNet:
    """Pre-activation ResNet-18 (He et al. 2016b), 64..512 channels, 3x3 CIFAR stem."""
    return PreActResNet(
        (64, 128, 256, 512),
        (2, 2, 2, 2),
        in_shape,
        num_classes,
        stem_width=64,
        stem=stem,
        owner="preact_resnet18",
    )


def _preact_cifar(depth: int, num_classes: int, in_shape: tuple[int, int, int]) -> PreActResNet:
    n = (depth - 2) // 6
    return PreActResNet(
        (16, 32, 64), (n, n, n), in_shape, num_classes, owner=f"preact_resnet{depth}"
    )


@register("preact_resnet20", **CIFAR)
def preact_resnet20(num_classes: int, in_shape: tuple[int, int, int]) -> PreActResNet:
    """Pre-activation CIFAR ResNet-20 (He et al. 2016b): 16/32/64 channels, 3 blocks a stage."""
    return _preact_cifar(20, num_classes, in_shape)


@register("preact_resnet110", **CIFAR)
def preact_resnet110(num_classes: int, in_shape: tuple[int, int, int]) -> PreActResNet:
    """Pre-activation CIFAR ResNet-110 (He et al. 2016b): 16/32/64 channels, 18 blocks a stage."""
    return _preact_cifar(110, num_classes, in_shape)


# --------------------------------------------------------------------------- wide ResNets


@register("wide_resnet", **CIFAR)
def wide_resnet(
    num_classes: int,
    in_shape: tuple[int, int, int],
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.0,
) -> PreActResNet:
    """Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016): pre-activation, 16k/32k/64k wide."""
    owner = "wide_resnet"
    depth = integer(owner, "depth", depth, low=10)
    if (depth - 4) % 6:
        raise ConfigError(
            f"{owner}: depth must be 6n+4 (10, 16, 22, 28, 40...), got {depth}; the nearest "
            f"are {_nearest(depth, 6, 4)}"
        )
    k = positive_int(owner, "widen_factor", widen_factor)
    n = (depth - 4) // 6
    return PreActResNet(
        (16 * k, 32 * k, 64 * k),
        (n, n, n),
        in_shape,
        num_classes,
        stem_width=16,
        dropout=dropout,
        owner=f"WRN-{depth}-{k}",
    )


@register("wrn_16_4", **CIFAR)
def wrn_16_4(
    num_classes: int, in_shape: tuple[int, int, int], dropout: float = 0.0
) -> PreActResNet:
    """Wide ResNet WRN-16-4 (Zagoruyko & Komodakis 2016), 2.7M parameters, for CIFAR."""
    return wide_resnet(num_classes, in_shape, 16, 4, dropout)


@register("wrn_28_10", **CIFAR)
def wrn_28_10(
    num_classes: int, in_shape: tuple[int, int, int], dropout: float = 0.0
) -> PreActResNet:
    """Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016), 36.5M parameters, for CIFAR."""
    return wide_resnet(num_classes, in_shape, 28, 10, dropout)
