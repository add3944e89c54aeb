"""VGG-11/13/16/19, with and without batch norm, in torchvision's layout.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition"
(ICLR 2015, arXiv:1409.1556), configurations A, B, D and E: only 3×3 convolutions (stride 1,
pad 1) and 2×2 max-pools (stride 2), then three FC layers (CS231n lecture 9). A stack of three
3×3 convolutions sees a 7×7 window with ``3·(3²C²)`` weights instead of ``7²C²``.

The modules and parameter names are torchvision's (``features.N`` from its ``make_layers``,
``avgpool``, ``classifier.0/3/6``), so its ImageNet state dicts load as they are; the counts for
1000 classes are vgg11 132,863,336, vgg11_bn 132,868,840, vgg13 133,047,848, vgg13_bn
133,053,736, vgg16 138,357,544, vgg16_bn 138,365,992, vgg19 143,667,240, vgg19_bn 143,678,248.
Weights start as torchvision's: Kaiming-normal (fan-out, ReLU) convolutions, N(0, 0.01²) linear
layers, zero biases.

Options: ``classifier_width`` (4096) sets the two hidden FC layers; ``dropout`` (0.5) follows
each of them. ``stem="imagenet"`` (default) pools the 512 final maps to 7×7 (25,088 features; a
32×32 input, the smallest it takes, reaches 1×1 and is copied 49 times). ``stem="cifar"`` is
the usual CIFAR VGG head: the convolutions stay, the last max-pool is an identity (same indices)
and the maps are averaged to 1×1, so the classifier sees 512 features and inputs from 16×16 work
(a 32×32 image ends at 2×2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import boolean, positive_int
from striate.errors import ConfigError
from striate.models.alexnet import check_input_size, check_stem, min_input_size
from striate.models.registry import IMAGENET, builder_of, check_dropout, check_io, register_variant

__all__ = [
    "VGG",
    "VGG_CFGS",
    "vgg",
]

# widths of the 3×3 convolutions; "M" a 2×2/2 max-pool (torchvision's cfgs, the paper's table 1)
VGG_CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}  # fmt: skip
_DEPTHS = {"A": 11, "B": 13, "D": 16, "E": 19}


def _make_layers(cfg: list[int | str], in_channels: int, batchnorm: bool) -> list[nn.Module]:
    """torchvision's ``make_layers``: CONV-[BN]-RELU per width, a max-pool per "M"."""
    layers: list[nn.Module] = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(in_channels, v, 3, padding=1))
        if batchnorm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU())
        in_channels = v
    return layers


class VGG(nn.Module):
    """VGG of configuration ``cfg`` ("A", "B", "D", "E" = 11, 13, 16, 19 layers), torchvision's."""

    def __init__(
        self,
        cfg: str,
        in_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        *,
        batchnorm: bool = False,
        stem: str = "imagenet",
        classifier_width: int = 4096,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if not isinstance(cfg, str) or cfg not in VGG_CFGS:
            choices = ", ".join(f"{k!r} (VGG-{d})" for k, d in _DEPTHS.items())
            raise ConfigError(f"VGG: unknown configuration {cfg!r}; choose one of {choices}")
        self.owner = f"VGG-{_DEPTHS[cfg]}"
        (c, h, w), num_classes = check_io(in_shape, num_classes, self.owner)
        self.stem = check_stem(stem, self.owner)
        batchnorm = boolean(self.owner, "batchnorm", batchnorm)
        width = positive_int(self.owner, "classifier_width", classifier_width)
        dropout = check_dropout(dropout, self.owner)

        layers = _make_layers(VGG_CFGS[cfg], c, batchnorm)
        last_pool = len(layers) - 1
        cifar_layers = [*layers[:last_pool], nn.Identity()]
        if self.stem == "cifar":
            layers = cifar_layers
        self.features = nn.Sequential(*layers)
        self.min_size = min_input_size(layers)
        self.cifar_min = min_input_size(cifar_layers)
        check_input_size(self.owner, h, w, self.stem, self.min_size, self.cifar_min)
        side = 7 if self.stem == "imagenet" else 1
        self.avgpool = nn.AdaptiveAvgPool2d((side, side))
        self.classifier = nn.Sequential(
            nn.Linear(512 * side * side, width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),
        )
        self._init_as_torchvision()

    @torch.no_grad()
    def _init_as_torchvision(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        check_input_size(
            self.owner, x.shape[-2], x.shape[-1], self.stem, self.min_size, self.cifar_min
        )
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


vgg = builder_of(
    "vgg",
    VGG,
    "VGG of configuration `cfg` (A, B, D, E: 11, 13, 16, 19 layers), torchvision's layout.",
    defaults={"cfg": "D"},
)


for _depth, _cfg in (("11", "A"), ("13", "B"), ("16", "D"), ("19", "E")):
    _paper = "Simonyan & Zisserman 2014" + ("; ~138M parameters" if _depth == "16" else "")
    register_variant(
        f"vgg{_depth}",
        vgg,
        f"VGG-{_depth} (configuration {_cfg}, {_paper}), torchvision's layout.",
        cfg=_cfg,
        batchnorm=False,
        **IMAGENET,
    )
    register_variant(
        f"vgg{_depth}_bn",
        vgg,
        f"VGG-{_depth} (configuration {_cfg}) with batch norm after each "
        "convolution, torchvision's layout.",
        cfg=_cfg,
        batchnorm=True,
        **IMAGENET,
    )
