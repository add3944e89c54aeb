"""SqueezeNet 1.0 and 1.1: AlexNet-level accuracy from Fire modules, in torchvision's layout.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model
size" (arXiv:1602.07360). A Fire module *squeezes* its input to ``s`` maps with 1×1 filters, then
*expands* them with ``e1`` 1×1 and ``e3`` 3×3 filters (pad 1) side by side, each followed by a
ReLU, and concatenates: ``e1 + e3`` output maps of the input's size. There is no FC layer: a
1×1 convolution to the classes, a ReLU and global average pooling give the scores.

Version 1.0 has the paper's 7×7/2 first convolution (96 maps) and pools after fire4 and fire8;
1.1 (DeepScale's SqueezeNet v1.1: 3×3/2, 64 maps, pools after fire3 and fire5) needs 2.4× less
computation for the same accuracy. Modules and names are torchvision's (``features.N`` with
``squeeze``, ``expand1x1``, ``expand3x3`` in each Fire, ``classifier.1`` the final convolution),
so its state dicts load as they are: 1,248,424 and 1,235,496 parameters for 1000 classes.
Weights start as torchvision's: Kaiming-uniform convolutions, N(0, 0.01²) final convolution,
zero biases. The max-pools round up (``ceil_mode``, as in Caffe).

``stem="cifar"`` replaces the first convolution by a 3×3/1 one (pad 1, same width) and the first
max-pool by an identity (indices unchanged); inputs from 4×4 then work, against 21×21 (1.0) and
17×17 (1.1) with the ImageNet stem.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import positive_int
from striate.errors import ConfigError
from striate.models.alexnet import check_input_size, check_stem, min_input_size
from striate.models.registry import IMAGENET, check_dropout, check_io, register_variant

__all__ = ["Fire", "SqueezeNet", "squeezenet1_0", "squeezenet1_1"]

_VERSIONS = ("1_0", "1_1")


class Fire(nn.Module):
    """Squeeze with 1×1 filters, expand with 1×1 and 3×3 filters, concatenate the two."""

    def __init__(self, inplanes: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        for arg, v in (
            ("inplanes", inplanes),
            ("squeeze", squeeze),
            ("expand1x1", expand1x1),
            ("expand3x3", expand3x3),
        ):
            positive_int("Fire", arg, v)
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×(expand1x1 + expand3x3)×H×W maps for N×inplanes×H×W inputs."""
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            1,
        )


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def _stem(version: str, stem: str, in_channels: int) -> list[nn.Module]:
    """First convolution, its ReLU and the first pool (an identity with the CIFAR stem)."""
    width = 96 if version == "1_0" else 64
    if stem == "cifar":
        return [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Identity()]
    kernel = 7 if version == "1_0" else 3
    return [nn.Conv2d(in_channels, width, kernel, stride=2), nn.ReLU(), _pool()]


# after the stem: Fire modules fire2...fire9 as (inplanes, squeeze, expand), each expanding to
# `expand` 1×1 and `expand` 3×3 maps; "M" a max-pool (torchvision's layout)
_FIRES: dict[str, list[tuple[int, int, int] | str]] = {
    "1_0": [(96, 16, 64), (128, 16, 64), (128, 32, 128), "M", (256, 32, 128), (256, 48, 192),
            (384, 48, 192), (384, 64, 256), "M", (512, 64, 256)],
    "1_1": [(64, 16, 64), (128, 16, 64), "M", (128, 32, 128), (256, 32, 128), "M",
            (256, 48, 192), (384, 48, 192), (384, 64, 256), (512, 64, 256)],
}  # fmt: skip


def _fires(version: str) -> list[nn.Module]:
    """The layers after the stem: Fire modules (fire2...fire9) and two max-pools."""
    return [_pool() if v == "M" else Fire(v[0], v[1], v[2], v[2]) for v in _FIRES[version]]


class SqueezeNet(nn.Module):
    """SqueezeNet ``version`` "1_0" or "1_1": a stem, eight Fire modules, a 1×1 conv classifier."""

    def __init__(
        self,
        version: str = "1_0",
        in_shape: Sequence[int] = (3, 224, 224),
        num_classes: int = 1000,
        *,
        stem: str = "imagenet",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if not isinstance(version, str) or version not in _VERSIONS:
            raise ConfigError(
                f"SqueezeNet: unknown version {version!r}; choose one of "
                f"{', '.join(map(repr, _VERSIONS))}"
            )
        self.owner = f"SqueezeNet {version.replace('_', '.')}"
        (c, h, w), num_classes = check_io(in_shape, num_classes, self.owner)
        self.stem = check_stem(stem, self.owner)
        dropout = check_dropout(dropout, self.owner)
        fires = _fires(version)
        self.features = nn.Sequential(*_stem(version, self.stem, c), *fires)
        self.min_size = min_input_size(self.features)
        self.cifar_min = min_input_size(_stem(version, "cifar", c) + fires)
        check_input_size(self.owner, h, w, self.stem, self.min_size, self.cifar_min)
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1))
        )
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    if m is final_conv:
                        nn.init.normal_(m.weight, 0.0, 0.01)
                    else:
                        nn.init.kaiming_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores, N×num_classes (≥ 0: a ReLU precedes the pooling), for N×C×H×W."""
        check_input_size(
            self.owner, x.shape[-2], x.shape[-1], self.stem, self.min_size, self.cifar_min
        )
        return torch.flatten(self.classifier(self.features(x)), 1)


squeezenet1_0 = register_variant(
    "squeezenet1_0",
    SqueezeNet,
    "SqueezeNet 1.0 (Iandola et al. 2016): Fire modules, 1.25M parameters, torchvision's.",
    version="1_0",
    **IMAGENET,
)
squeezenet1_1 = register_variant(
    "squeezenet1_1",
    SqueezeNet,
    "SqueezeNet 1.1: 2.4x less computation than 1.0 at the same accuracy, torchvision's.",
    version="1_1",
    **IMAGENET,
)
