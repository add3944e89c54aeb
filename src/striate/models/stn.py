"""The distorted-MNIST networks of the spatial transformer paper (Jaderberg et al. 2015, appendix
A.1): the CNN baseline ("mnist_cnn") and the same CNN behind an affine (or projective, or
thin-plate-spline) spatial transformer ("st_cnn").

mnist_cnn: conv 9×9 (32) - ReLU - 2×2 max pool - conv 7×7 (32) - ReLU - 2×2 max pool - FC
(classes), unpadded convolutions; any input of at least 22×22 (28, 42, 60...).

st_cnn: `striate.spatial.STN` with the paper's CNN localisation network (conv 5×5 (20) twice with
max pooling, FC 50, the regression layer at the identity) in front of mnist_cnn. The transformer
samples its output at ``output_size`` (default: 28×28, or the input when smaller), so on the
42×42 RTS and 60×60 cluttered canvases it first sees the whole canvas shrunk and must learn to
zoom in on the digit.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from striate.checks import int_sequence
from striate.errors import ConfigError
from striate.models.registry import check_io, register
from striate.spatial.stn import STN

__all__ = ["MnistCNN", "mnist_cnn", "st_cnn"]

MNIST = {"in_shape": (1, 28, 28), "num_classes": 10}


class MnistCNN(nn.Sequential):
    """conv (k₁, c₁) - ReLU - max pool 2 - conv (k₂, c₂) - ReLU - max pool 2 - FC, unpadded."""

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        channels: Sequence[int] = (32, 32),
        kernels: Sequence[int] = (9, 7),
    ) -> None:
        owner = "MnistCNN"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        channels = int_sequence(owner, "channels", channels, min_len=2)
        kernels = int_sequence(owner, "kernels", kernels, min_len=2)
        if len(channels) != 2 or len(kernels) != 2:
            raise ConfigError(f"{owner}: channels and kernels take two values each")
        size = [h, w]
        for k in kernels:
            size = [(s - k + 1) // 2 for s in size]
        if min(size) < 1:
            raise ConfigError(
                f"{owner}: a {h}×{w} input is too small for {kernels[0]}×{kernels[0]} and "
                f"{kernels[1]}×{kernels[1]} unpadded convolutions with pooling; use at least "
                f"{2 * (kernels[1] + 1) + kernels[0] - 1}×{2 * (kernels[1] + 1) + kernels[0] - 1}"
            )
        super().__init__(
            nn.Conv2d(c, channels[0], kernels[0]),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels[0], channels[1], kernels[1]),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(channels[1] * size[0] * size[1], num_classes),
        )


@register("mnist_cnn", **MNIST)
def mnist_cnn(
    num_classes: int,
    in_shape: tuple[int, int, int],
    channels: Sequence[int] = (32, 32),
    kernels: Sequence[int] = (9, 7),
) -> nn.Module:
    """The CNN baseline of the STN paper's distorted-MNIST table (conv 9×9, conv 7×7, FC)."""
    return MnistCNN(in_shape, num_classes, channels, kernels)


@register("st_cnn", **MNIST)
def st_cnn(
    num_classes: int,
    in_shape: tuple[int, int, int],
    transform: str = "affine",
    output_size: Sequence[int] | None = None,
    localization: str = "cnn",
    tps_points: int = 4,
    channels: Sequence[int] = (32, 32),
    kernels: Sequence[int] = (9, 7),
) -> nn.Module:
    """The STN paper's ST-CNN: a spatial transformer (identity at start) before mnist_cnn."""
    (c, h, w), num_classes = check_io(in_shape, num_classes, "st_cnn")
    if output_size is None:
        output_size = (min(h, 28), min(w, 28))
    output_size = tuple(int_sequence("st_cnn", "output_size", output_size, min_len=2))
    classifier = MnistCNN((c, *output_size), num_classes, channels, kernels)
    return STN(
        classifier,
        (c, h, w),
        transform,
        output_size,
        localization=localization,
        tps_points=tps_points,
    )
