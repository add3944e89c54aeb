"""DenseNet-BC: every layer of a dense block sees the feature maps of all the layers before it.

Huang et al. 2017, "Densely Connected Convolutional Networks" (arXiv:1608.06993); CS231n
lecture 9. Layer ℓ of a block computes ``x_ℓ = H_ℓ([x_0, x_1, ..., x_{ℓ-1}])`` on the channel
concatenation of the block's input and all earlier outputs, and adds ``growth_rate`` (k)
channels. ``H_ℓ`` is the "BC" bottleneck BN-ReLU-Conv1×1 (``bn_size``·k channels) -
BN-ReLU-Conv3×3 (k channels). Between blocks a transition BN-ReLU-Conv1×1 halves the channels
and a 2×2 average pool halves the size. The short paths to every earlier layer ease gradient
flow and reuse features, so the network is deep yet small (DenseNet-121: 8.0M parameters).

The layout and every module name are torchvision's (``features.conv0``/``norm0``/``relu0``/
``pool0``, ``features.denseblockB.denselayerL.norm1``/``relu1``/``conv1``/``norm2``/``relu2``/
``conv2``, ``features.transitionT.norm``/``relu``/``conv``/``pool``, ``features.norm5``,
``classifier``), so a torchvision state dict loads as it is (torchvision's old checkpoints
spell ``norm.1`` for ``norm1``; its loader renames those keys, and so must a caller here).

``stem="cifar"`` replaces the 7×7/2 ``conv0`` by a 3×3/1 conv and ``pool0`` by ``nn.Identity``,
for small images such as 32×32 CIFAR (the blocks then see 32, 16, 8 and 4 pixels a side). The
head is adaptive average pooling, so any input at least the stem's minimum
(`min_input_size`) works. ``memory_efficient=True`` recomputes each layer's concatenation and
bottleneck in the backward pass instead of storing them (gradient checkpointing; Pleiss et al.
2017, arXiv:1707.06990): less memory, a little more time.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from striate.checks import boolean, int_sequence, positive_int
from striate.models.registry import IMAGENET, builder_of, check_dropout, check_io, register_variant
from striate.models.stems import STEMS, check_min_side, check_stem

__all__ = [
    "STEMS",
    "DenseBlock",
    "DenseLayer",
    "DenseNet",
    "Transition",
    "densenet",
    "min_input_size",
]


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1×1 (bn_size·k) - BN-ReLU-Conv3×3 (k) on the concatenated earlier features."""

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int,
        dropout: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        width = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, width, kernel_size=1, stride=1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width, growth_rate, kernel_size=3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *features: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The ``growth_rate`` new channels computed from the list of earlier feature maps."""
        if self.memory_efficient and torch.is_grad_enabled():
            x = checkpoint(self._bottleneck, *features, use_reentrant=False)
        else:
            x = self._bottleneck(*features)
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.dropout > 0:
            x = F.dropout(x, p=self.dropout, training=self.training)
        return x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers ``denselayer1...``; the output concatenates input and all."""

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        bn_size: int,
        growth_rate: int,
        dropout: float = 0.0,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = DenseLayer(
                in_channels + i * growth_rate, growth_rate, bn_size, dropout, memory_efficient
            )
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×in×H×W to N×(in + num_layers·k)×H×W; the first ``in`` channels are ``x`` itself."""
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1×1 to ``out_channels``, then a 2×2 average pool with stride 2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(in_channels))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module(
            "conv", nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        )
        self.add_module("pool", nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(nn.Module):
    """DenseNet-BC with torchvision's names: ``features`` (stem, blocks, transitions, norm5)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int = 1000,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        dropout: float = 0.0,
        stem: str = "imagenet",
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        owner = "DenseNet"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        growth_rate = positive_int(owner, "growth_rate", growth_rate)
        block_config = int_sequence(owner, "block_config", block_config, min_len=1)
        num_init_features = positive_int(owner, "num_init_features", num_init_features)
        bn_size = positive_int(owner, "bn_size", bn_size)
        dropout = check_dropout(dropout, owner)
        memory_efficient = boolean(owner, "memory_efficient", memory_efficient)
        check_stem(stem, owner)
        check_min_side(
            owner,
            h,
            w,
            stem,
            min_input_size(stem, len(block_config)),
            min_input_size("cifar", len(block_config)),
            detail=f" with {len(block_config)} blocks",
            otherwise="larger images or fewer blocks",
        )
        self.stem = stem

        if stem == "imagenet":
            conv0 = nn.Conv2d(c, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
            pool0: nn.Module = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            conv0 = nn.Conv2d(c, num_init_features, kernel_size=3, stride=1, padding=1, bias=False)
            pool0 = nn.Identity()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv0", conv0),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", pool0),
                ]
            )
        )
        width = num_init_features
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, width, bn_size, growth_rate, dropout, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            width = block.out_channels
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(width, width // 2))
                width //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(width))
        self.classifier = nn.Linear(width, num_classes)
        self.num_features = width

        # torchvision's initialisation (He et al. 2015, arXiv:1502.01852, fan-in)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = F.relu(self.features(x), inplace=True)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def min_input_size(stem: str = "imagenet", blocks: int = 4) -> int:
    """The smallest height (and width) that DenseNet with ``stem`` and ``blocks`` accepts.

    Each of the ``blocks - 1`` transitions pools 2×2 with stride 2 and needs at least 2 pixels:
    ``2^(blocks-1)`` after the stem. The ImageNet stem maps ``s`` to ``⌊(s-1)/2⌋+1`` twice
    (7×7/2 conv with padding 3, then 3×3/2 max-pool with padding 1), so it needs
    ``4·(2^(blocks-1) - 1) + 1``.
    """
    check_stem(stem, "min_input_size")
    blocks = positive_int("min_input_size", "blocks", blocks)
    after_stem = 2 ** (blocks - 1)
    return after_stem if stem == "cifar" else 4 * (after_stem - 1) + 1


densenet = builder_of(
    "densenet", DenseNet, "A DenseNet-BC (Huang et al. 2017) in torchvision's layout."
)


# name: (growth rate, blocks, initial features, parameters for 1000 classes)
_VARIANTS = {
    "densenet121": (32, (6, 12, 24, 16), 64, "8.0M"),
    "densenet169": (32, (6, 12, 32, 32), 64, "14.1M"),
    "densenet201": (32, (6, 12, 48, 32), 64, "20.0M"),
    "densenet161": (48, (6, 12, 36, 24), 96, "28.7M"),
}
for _name, (_k, _blocks, _features, _params) in _VARIANTS.items():
    register_variant(
        _name,
        densenet,
        f"DenseNet-{_name.removeprefix('densenet')} (BC, k={_k}), torchvision layout; "
        f"{_params} parameters for 1000 classes.",
        defaults={"growth_rate": _k, "block_config": _blocks, "num_init_features": _features},
        **IMAGENET,
    )
