"""ResNet, ResNeXt and wide ResNet for ImageNet-sized images, in torchvision's exact layout.

He et al. 2016, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385): a block learns
a residual ``F(x)`` added to its input, ``y = relu(F(x) + shortcut(x))``, so a deeper net can
start from the identity and very deep stacks still train (CS231n lecture 9). ``BasicBlock`` is two
3×3 convolutions (ResNet-18/34); ``Bottleneck`` is 1×1 (reduce) - 3×3 - 1×1 (expand ×4)
(ResNet-50/101/152). Following torchvision ("ResNet v1.5"), a downsampling bottleneck puts the
stride on its 3×3 convolution rather than the first 1×1, and a shortcut that changes the shape is
a projection ``downsample = [1×1 conv with the stride, BatchNorm]`` (the paper's option B).

The module and parameter names are torchvision's (``conv1, bn1, relu, maxpool, layer1..layer4,
avgpool, fc``; blocks ``conv1/bn1/conv2/bn2[/conv3/bn3][/downsample.0/downsample.1]``), so a
torchvision state dict loads as it is; so are its initialisation (Kaiming-normal, fan-out, for
convolutions; BatchNorm weight 1, bias 0) and ``zero_init_residual`` (the last BatchNorm of every
residual branch starts at 0, so each block starts as the identity; Goyal et al. 2017,
arXiv:1706.02677). Registered variants, with their parameter counts for 1000 classes:

=====================  ==========  ==========================================================
name                   parameters  blocks
=====================  ==========  ==========================================================
``resnet18``           11,689,512  basic [2, 2, 2, 2]
``resnet34``           21,797,672  basic [3, 4, 6, 3]
``resnet50``           25,557,032  bottleneck [3, 4, 6, 3]
``resnet101``          44,549,160  bottleneck [3, 4, 23, 3]
``resnet152``          60,192,808  bottleneck [3, 8, 36, 3]
``resnext50_32x4d``    25,028,904  bottleneck [3, 4, 6, 3], 32 groups of width 4 (Xie et al.
                                   2017, arXiv:1611.05431: "cardinality")
``resnext101_32x8d``   88,791,336  bottleneck [3, 4, 23, 3], 32 groups of width 8
``wide_resnet50_2``    68,883,240  bottleneck [3, 4, 6, 3], inner 3×3 twice as wide
                                   (Zagoruyko & Komodakis 2016, arXiv:1605.07146)
=====================  ==========  ==========================================================

Options of every variant:

- ``stem="imagenet"`` (default): 7×7/2 convolution and 3×3/2 max-pool, total stride 32, for
  224×224 images; inputs must be at least 32×32. ``stem="cifar"``: one 3×3/1 convolution and no
  max-pool (``maxpool`` is an ``nn.Identity``), total stride 8, the usual way to run these nets on
  32×32 CIFAR images; inputs must be at least 8×8. The head is adaptive average pooling, so any
  size above the minimum works.
- ``se=True``: a squeeze-and-excitation module (Hu et al. 2018, arXiv:1709.01507) at the end of
  each residual branch, before the addition: ``x · σ(W₂ relu(W₁ mean_hw(x) + b₁) + b₂)`` with
  ``W₁`` reducing the channels 16-fold. Its parameters are ``<block>.se.fc1`` and ``<block>.se.fc2``
  (1×1 convolutions with bias, timm's names and shapes), so the key set is torchvision's plus
  these; SE-ResNet-50 has 28,088,024 parameters, as timm's ``seresnet50``.
- ``zero_init_residual=True``: as torchvision. It survives ``create(..., init=...)``: the
  registry calls the model's ``after_init`` once the scheme has reset the BatchNorm weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import boolean, int_sequence, positive_int
from striate.errors import ConfigError
from striate.models.registry import IMAGENET, builder_of, check_io, register_variant
from striate.models.stems import STEMS, check_min_size, check_stem, stem_stride

__all__ = [
    "STEMS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "SqueezeExcitation",
    "resnet",
]

SE_REDUCTION = 16  # Hu et al. 2018, section 6.1


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3×3 convolution, padding 1, no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution, no bias."""
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class SqueezeExcitation(nn.Module):
    """Channel gate ``x · σ(fc2(relu(fc1(mean_hw(x)))))`` (Hu et al. 2018, arXiv:1709.01507)."""

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` rescaled channel by channel by a gate in (0, 1) computed from its mean."""
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(s))))


class _Residual(nn.Module):
    """A residual block: ``relu(se(branch(x)) + shortcut(x))``; subclasses build the branch."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        se: bool = False,
    ) -> None:
        super().__init__()
        self._build_branch(inplanes, planes, stride, groups, base_width)
        self.se = SqueezeExcitation(planes * self.expansion) if se else None
        self.downsample = downsample
        self.stride = stride

    def _build_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int
    ) -> None:  # pragma: no cover - every block defines it
        raise NotImplementedError

    def _branch(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output for a batch N×inplanes×H×W."""
        out = self._branch(x)
        if self.se is not None:
            out = self.se(out)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class BasicBlock(_Residual):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, two 3×3 convolutions."""

    expansion = 1

    def _build_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int
    ) -> None:
        if groups != 1 or base_width != 64:
            raise ConfigError(
                f"BasicBlock supports only groups=1 and base_width=64 (got {groups} and "
                f"{base_width}); grouped or wider blocks need block='bottleneck'"
            )
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


class Bottleneck(_Residual):
    """1×1 reduce - 3×3 (stride, groups) - 1×1 expand ×4, plus the shortcut, then ReLU."""

    expansion = 4

    def _build_branch(
        self, inplanes: int, planes: int, stride: int, groups: int, base_width: int
    ) -> None:
        width = int(planes * (base_width / 64.0)) * groups  # torchvision's formula
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)

    def _branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class ResNet(nn.Module):
    """torchvision's ResNet: stem, four stages of residual blocks (widths 64..512), avg-pool, fc.

    ``block`` is ``"basic"`` or ``"bottleneck"``, ``layers`` the number of blocks per stage;
    ``groups`` and ``width_per_group`` make ResNeXt and wide variants. See the module docstring
    for ``stem``, ``se`` and ``zero_init_residual``.
    """

    def __init__(
        self,
        block: str,
        layers: Sequence[int],
        in_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        *,
        groups: int = 1,
        width_per_group: int = 64,
        stem: str = "imagenet",
        se: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        owner = "ResNet"
        if block not in _BLOCKS:
            raise ConfigError(
                f"{owner}: unknown block {block!r}; choose one of {', '.join(map(repr, _BLOCKS))}"
            )
        block_cls = _BLOCKS[block]
        layers = int_sequence(owner, "layers", layers)
        if len(layers) != 4:
            raise ConfigError(
                f"{owner}: layers must give the number of blocks of each of the 4 stages, such "
                f"as [2, 2, 2, 2] (ResNet-18), got {list(layers)}"
            )
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        groups = positive_int(owner, "groups", groups)
        width_per_group = positive_int(owner, "width_per_group", width_per_group)
        se = boolean(owner, "se", se)
        zero_init_residual = boolean(owner, "zero_init_residual", zero_init_residual)
        stem = check_stem(stem, owner)
        self.min_size = stem_stride(stem) * 8  # three stride-2 stages follow the stem
        check_min_size(h, w, self.min_size, owner, stem)

        self.in_shape = (c, h, w)
        self.stem = stem
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = 64
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(c, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        if stem == "imagenet":
            self.maxpool: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.maxpool = nn.Identity()  # kept so that the module list matches torchvision's
        self.layer1 = self._make_layer(block_cls, 64, layers[0], 1, se)
        self.layer2 = self._make_layer(block_cls, 128, layers[1], 2, se)
        self.layer3 = self._make_layer(block_cls, 256, layers[2], 2, se)
        self.layer4 = self._make_layer(block_cls, 512, layers[3], 2, se)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block_cls.expansion, num_classes)

        self.zero_init_residual = zero_init_residual
        kaiming_init(self)
        self.after_init()

    @torch.no_grad()
    def after_init(self) -> None:
        """With ``zero_init_residual``, zero the last BatchNorm weight of every residual branch,
        so each block starts as the identity (Goyal et al. 2017, arXiv:1706.02677 §5.1)."""
        if not self.zero_init_residual:
            return
        for m in self.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        se: bool,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        kw = dict(groups=self.groups, base_width=self.base_width, se=se)
        layers = [block(self.inplanes, planes, stride, downsample, **kw)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, **kw) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --------------------------------------------------------------------------- shared with
# resnet_cifar.py


def kaiming_init(model: nn.Module) -> None:
    """torchvision's ResNet initialisation: convolutions Kaiming-normal (fan-out), BN 1 and 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- registered variants


resnet = builder_of(
    "resnet",
    ResNet,
    'A ResNet of `block`s ("basic" or "bottleneck") in four stages of `layers` blocks.',
    defaults={"block": "basic", "layers": (2, 2, 2, 2)},
)


_BOTTLENECK = "bottlenecks, v1.5"
# name: (block, layers, groups, width per group, what it is)
_VARIANTS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64, "ResNet-18 (He et al. 2016)"),
    "resnet34": ("basic", (3, 4, 6, 3), 1, 64, "ResNet-34 (He et al. 2016)"),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64, f"ResNet-50 (He et al. 2016; {_BOTTLENECK})"),
    "resnet101": (
        "bottleneck",
        (3, 4, 23, 3),
        1,
        64,
        f"ResNet-101 (He et al. 2016; {_BOTTLENECK})",
    ),
    "resnet152": (
        "bottleneck",
        (3, 8, 36, 3),
        1,
        64,
        f"ResNet-152 (He et al. 2016; {_BOTTLENECK})",
    ),
    "resnext50_32x4d": (
        "bottleneck",
        (3, 4, 6, 3),
        32,
        4,
        "ResNeXt-50 32x4d (Xie et al. 2017): grouped 3x3",
    ),
    "resnext101_32x8d": (
        "bottleneck",
        (3, 4, 23, 3),
        32,
        8,
        "ResNeXt-101 32x8d (Xie et al. 2017): grouped 3x3",
    ),
    "wide_resnet50_2": (
        "bottleneck",
        (3, 4, 6, 3),
        1,
        128,
        "Wide ResNet-50-2 (Zagoruyko & Komodakis 2016): 2x wider bottlenecks",
    ),
}
for _name, (_block, _layers, _groups, _width, _what) in _VARIANTS.items():
    register_variant(
        _name,
        resnet,
        f"{_what}, torchvision layout; stem='cifar' for 32x32 images.",
        block=_block,
        layers=_layers,
        groups=_groups,
        width_per_group=_width,
        **IMAGENET,
    )
