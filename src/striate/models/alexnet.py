"""AlexNet, twice: torchvision's layout ("alexnet") and the 2012 paper's network ("alexnet_2012").

``"alexnet"`` is torchvision's ``AlexNet`` module for module (``features.N``, ``avgpool``,
``classifier.N``; 61,100,840 parameters for 1000 classes), so its ImageNet state dict loads as it
is. Its widths 64-192-384-256-256 are those of Krizhevsky's single-GPU "one weird trick" network
(arXiv:1404.5997), not of the 2012 paper.

``"alexnet_2012"`` is the network of Krizhevsky, Sutskever & Hinton, "ImageNet Classification with
Deep Convolutional Neural Networks" (NIPS 2012), as laid out in CS231n lecture 9, on 227×227
inputs::

    [55x55x96]  conv1  96 11x11 filters at stride 4, pad 0     (11·11·3)·96 + 96 = 34,944
    [27x27x96]  pool1  3x3 max at stride 2
    [27x27x96]  norm1  local response normalisation
    [27x27x256] conv2  256 5x5, pad 2          [13x13x256] pool2, norm2
    [13x13x384] conv3, [13x13x384] conv4, [13x13x256] conv5: 3x3, pad 1
    [6x6x256]   pool3  3x3 max at stride 2
    [4096] fc6, [4096] fc7, [1000] fc8 (class scores)

Single-GPU and ungrouped by default, as the lecture counts it: 62,378,344 parameters for 1000
classes. ``grouped=True`` restores the paper's two-GPU connectivity (conv2, conv4 and conv5 see
only the half of the previous maps on their GPU: ``groups=2``), 60,965,224 parameters. The norm
follows the pool as in the lecture's table (and Caffe); the paper normalises before pooling,
which gives the same shapes. The response normalisation is the paper's
``b = a / (k + α·Σ a²)^β`` over n = 5 neighbouring maps, k = 2, α = 1e-4, β = 0.75; PyTorch's
`LocalResponseNorm` divides α by n, so it is built with α·n. Dropout 0.5 follows fc6 and fc7.
Weights start as in the paper: N(0, 0.01²), biases 1 in conv2, conv4, conv5, fc6 and fc7, else 0.

Small inputs: both take ``stem="cifar"``, which replaces the 11×11/4 first convolution by a
3×3/1 one (padding 1, same width) and the first max-pool by an identity (the layer indices and
names stay torchvision's). Adaptive average pooling to 6×6 before the classifier makes any input
at least the minimum work: 63×63 (torchvision) or 67×67 (2012) with the ImageNet stem, 7×7 with
the CIFAR stem.

This file also holds the helpers the other ImageNet-style families share (`STEMS`, `check_stem`,
`spatial_size`, `min_input_size`, `check_input_size`): the convolution arithmetic
``out = floor((n + 2p - d·(k - 1) - 1) / s) + 1`` (CS231n lecture 5's ``(N - F) / stride + 1``
with padding and dilation; ceil instead of floor for a ``ceil_mode`` pool, PyTorch's rule).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from striate.checks import boolean
from striate.errors import ConfigError
from striate.models.registry import IMAGENET, check_dropout, check_io, register_variant

__all__ = [
    "STEMS",
    "AlexNet",
    "AlexNet2012",
    "alexnet",
    "alexnet_2012",
    "check_input_size",
    "check_stem",
    "min_input_size",
    "spatial_size",
]

STEMS = {
    "imagenet": "the published first layers, for ImageNet-sized inputs (224×224)",
    "cifar": "a 3×3/1 first convolution and no early pooling, for small inputs such as 32×32",
}

_MAX_SIZE = 1 << 14  # the search for a minimum input size gives up beyond this


# --------------------------------------------------------------------------- shared helpers


def check_stem(stem: object, owner: str) -> str:
    """``stem`` if it names one of `STEMS`, else a ConfigError listing them."""
    if not isinstance(stem, str) or stem not in STEMS:
        choices = "; ".join(f"{k!r}: {v}" for k, v in STEMS.items())
        raise ConfigError(f"{owner}: unknown stem {stem!r}; choose {choices}")
    return stem


def spatial_size(layers: Iterable[nn.Module], size: int, dim: int = 0) -> int:
    """The side of the feature map after ``layers`` for an input side ``size``; 0 if it vanishes.

    Convolutions and max/avg pools change the size (``dim`` 0: height, 1: width); adaptive pools
    set it; every other layer (activations, norms, Fire modules...) keeps it.
    """
    for layer in layers:
        if size < 1:
            return 0
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k, s, p = layer.kernel_size, layer.stride, layer.padding
            k = k if isinstance(k, int) else k[dim]
            s = s if isinstance(s, int) else s[dim]
            p = p if isinstance(p, int) else p[dim]
            d = getattr(layer, "dilation", 1)
            d = d if isinstance(d, int) else d[dim]
            ceil = getattr(layer, "ceil_mode", False)
            span = size + 2 * p - d * (k - 1) - 1
            out = (span + (s - 1 if ceil else 0)) // s + 1
            # PyTorch: in ceil mode the last window must start inside the (left-padded) input
            if ceil and (out - 1) * s >= size + p:
                out -= 1
            size = out
        elif isinstance(layer, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            o = layer.output_size
            o = o if isinstance(o, int) or o is None else o[dim]
            size = size if o is None else o
    return max(size, 0)


def min_input_size(layers: Sequence[nn.Module], dim: int = 0) -> int:
    """The smallest input side for which no layer of ``layers`` gets too small an input."""
    for size in range(1, _MAX_SIZE + 1):
        if spatial_size(layers, size, dim) >= 1:
            return size
    raise ConfigError(f"these layers accept no input up to {_MAX_SIZE} pixels a side")


def check_input_size(
    owner: str, h: int, w: int, stem: str, minimum: int, cifar_minimum: int
) -> None:
    """Raise a ConfigError if an ``h``×``w`` input is below ``minimum`` for ``stem``."""
    if h >= minimum and w >= minimum:
        return
    if stem == "cifar":
        raise ConfigError(
            f"{owner}: a {h}×{w} input is too small even for stem='cifar', which needs at "
            f"least {minimum}×{minimum}; resize or pad the images"
        )
    raise ConfigError(
        f"{owner}: a {h}×{w} input is too small for stem={stem!r}, which needs at least "
        f"{minimum}×{minimum}; pass stem='cifar' (3×3/1 first convolution, no early pooling; "
        f"at least {cifar_minimum}×{cifar_minimum}) for small images such as CIFAR's 32×32, "
        f"or resize the images"
    )


def _size_check(model: nn.Module, x: torch.Tensor) -> None:
    """The forward-time check of a model with ``owner``, ``stem``, ``min_size``, ``cifar_min``."""
    check_input_size(
        model.owner, x.shape[-2], x.shape[-1], model.stem, model.min_size, model.cifar_min
    )


# --------------------------------------------------------------------------- torchvision's


def _alexnet_stem(stem: str, in_channels: int, width: int, imagenet: nn.Conv2d) -> list:
    """First conv, its ReLU and the first pool (an identity with the CIFAR stem)."""
    if stem == "cifar":
        return [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Identity()]
    return [imagenet, nn.ReLU(), nn.MaxPool2d(3, 2)]


class AlexNet(nn.Module):
    """torchvision's AlexNet: 5 convolutions (64-192-384-256-256) and 3 FC layers with dropout."""

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        *,
        stem: str = "imagenet",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.owner = "AlexNet"
        (c, h, w), num_classes = check_io(in_shape, num_classes, self.owner)
        self.stem = check_stem(stem, self.owner)
        dropout = check_dropout(dropout, self.owner)
        rest = [
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
        ]
        conv1 = nn.Conv2d(c, 64, 11, stride=4, padding=2)
        self.features = nn.Sequential(*_alexnet_stem(self.stem, c, 64, conv1), *rest)
        self.min_size = min_input_size(self.features)
        self.cifar_min = min_input_size(_alexnet_stem("cifar", c, 64, conv1) + rest)
        check_input_size(self.owner, h, w, self.stem, self.min_size, self.cifar_min)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        _size_check(self, x)
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------- the 2012 paper's


class AlexNet2012(nn.Sequential):
    """The 2012 paper's AlexNet with the lecture's layer names (conv1, pool1, norm1, ..., fc8)."""

    def __init__(
        self,
        in_shape: Sequence[int] = (3, 227, 227),
        num_classes: int = 1000,
        *,
        stem: str = "imagenet",
        dropout: float = 0.5,
        grouped: bool = False,
    ) -> None:
        owner = "AlexNet2012"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        stem = check_stem(stem, owner)
        dropout = check_dropout(dropout, owner)
        groups = 2 if boolean(owner, "grouped", grouped) else 1

        conv1, relu1, pool1 = _alexnet_stem(stem, c, 96, nn.Conv2d(c, 96, 11, stride=4))
        layers = [
            ("conv1", conv1),
            ("relu1", relu1),
            ("pool1", pool1),
            # the paper's k, n, α, β; PyTorch's LRN uses α/n, so α is passed as α·n
            ("norm1", nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)),
            ("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=groups)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(3, 2)),
            ("norm2", nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)),
            ("conv3", nn.Conv2d(256, 384, 3, padding=1)),
            ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=groups)),
            ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=groups)),
            ("relu5", nn.ReLU()),
            ("pool3", nn.MaxPool2d(3, 2)),
        ]
        min_size = min_input_size([m for _, m in layers])
        rest = [m for _, m in layers[3:]]
        cifar_min = min_input_size(_alexnet_stem("cifar", c, 96, conv1) + rest)
        check_input_size(owner, h, w, stem, min_size, cifar_min)  # before the big FC layers
        head = [
            ("avgpool", nn.AdaptiveAvgPool2d((6, 6))),
            ("flatten", nn.Flatten()),
            ("fc6", nn.Linear(256 * 6 * 6, 4096)),
            ("relu6", nn.ReLU()),
            ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(4096, 4096)),
            ("relu7", nn.ReLU()),
            ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(4096, num_classes)),
        ]
        super().__init__(OrderedDict(layers + head))
        self.owner, self.stem, self.grouped = owner, stem, groups == 2
        self.min_size, self.cifar_min = min_size, cifar_min
        self._init_as_in_the_paper()

    @torch.no_grad()
    def _init_as_in_the_paper(self) -> None:
        """N(0, 0.01²) weights; biases 1 in conv2, conv4, conv5, fc6, fc7 (ReLUs start active)."""
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
        for name, m in self.named_children():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.constant_(m.bias, 1.0 if name in ones else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        _size_check(self, x)
        return super().forward(x)


# --------------------------------------------------------------------------- registry


alexnet = register_variant(
    "alexnet",
    AlexNet,
    "AlexNet in torchvision's layout (its weights load); stem='cifar' for 32x32 inputs.",
    **IMAGENET,
)
alexnet_2012 = register_variant(
    "alexnet_2012",
    AlexNet2012,
    "AlexNet as in Krizhevsky et al. 2012 / CS231n: 227x227 input, LRN, 96-256-384-384-256.",
    in_shape=(3, 227, 227),
    num_classes=1000,
)
