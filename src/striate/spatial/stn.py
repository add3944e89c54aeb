"""The spatial transformer layer and a classifier behind it (Jaderberg et al. 2015, sec. 3).

`SpatialTransformer` = localisation network → grid generator → sampler. The localisation
network (a small CNN, or an MLP) regresses the transformation's parameters from the input; its
last layer starts with zero weights and the identity as its bias, so that the untrained layer
passes its input through unchanged (resampled to ``output_size``) and training starts from the
plain classifier. ``transform`` is "affine" (6 parameters), "projective" (8) or "tps" (a
thin-plate spline with ``tps_points``² control points, 2 parameters each).

`STN(classifier, in_shape, ...)` puts one in front of any classifier (a zoo model built for the
transformer's output size); ``stn.warp(x)`` returns the transformed images (for figures).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import boolean, int_sequence, integer, one_of
from striate.errors import ConfigError
from striate.spatial.grid import IDENTITY_AFFINE, IDENTITY_PROJECTIVE, affine_grid, projective_grid
from striate.spatial.sampler import PADDING_MODES, grid_sample
from striate.spatial.tps import TPSGrid

__all__ = ["LOCALIZATIONS", "STN", "TRANSFORMS", "SpatialTransformer", "localization_network"]

TRANSFORMS = ("affine", "projective", "tps")
LOCALIZATIONS = ("cnn", "mlp")


def localization_network(
    in_shape: Sequence[int], kind: str = "cnn", channels: int = 20, hidden: int = 50
) -> tuple[nn.Sequential, int]:
    """The paper's localisation networks for MNIST, before their regression layer, and the
    width of their output. "cnn": [2×2 max pool when the input is wider than 40 pixels] - conv
    5×5 (channels) - ReLU - 2×2 max pool - conv 5×5 (channels) - ReLU - [2×2 max pool] - FC
    (hidden) - ReLU; "mlp": FC (hidden) - ReLU - FC (hidden) - ReLU."""
    c, h, w = in_shape
    if kind == "mlp":
        body = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU())
        body.append(nn.Linear(hidden, hidden))
        body.append(nn.ReLU())
        return body, hidden
    layers: list[nn.Module] = []
    if min(h, w) > 40:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.Conv2d(c, channels, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [nn.Conv2d(channels, channels, 5, padding=2), nn.ReLU()]
    with torch.no_grad():
        size = nn.Sequential(*layers)(torch.zeros(1, c, h, w)).shape[-1]
    if size >= 8:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Flatten())
    with torch.no_grad():
        features = nn.Sequential(*layers)(torch.zeros(1, c, h, w)).shape[1]
    layers += [nn.Linear(features, hidden), nn.ReLU()]
    return nn.Sequential(*layers), hidden


class SpatialTransformer(nn.Module):
    """Localisation network, grid generator and bilinear sampler for C×H×W inputs; the output is
    C×output_size (default: the input's size)."""

    def __init__(
        self,
        in_shape: Sequence[int],
        transform: str = "affine",
        output_size: Sequence[int] | None = None,
        localization: str = "cnn",
        tps_points: int = 4,
        align_corners: bool = False,
        padding_mode: str = "zeros",
        channels: int = 20,
        hidden: int = 50,
    ) -> None:
        super().__init__()
        owner = "SpatialTransformer"
        in_shape = tuple(int_sequence(owner, "in_shape", in_shape, min_len=3))
        if len(in_shape) != 3:
            raise ConfigError(f"{owner}: in_shape must be (C, H, W), got {in_shape}")
        self.transform = one_of(owner, "transform", transform, TRANSFORMS)
        one_of(owner, "localization", localization, LOCALIZATIONS)
        self.padding_mode = one_of(owner, "padding_mode", padding_mode, PADDING_MODES)
        self.align_corners = boolean(owner, "align_corners", align_corners)
        if output_size is None:
            output_size = in_shape[1:]
        output_size = tuple(int_sequence(owner, "output_size", output_size, min_len=2))
        if len(output_size) != 2:
            raise ConfigError(f"{owner}: output_size must be (H, W), got {output_size}")
        self.in_shape, self.output_size = in_shape, output_size
        channels = integer(owner, "channels", channels, low=1)
        hidden = integer(owner, "hidden", hidden, low=1)
        self.tps = None
        if self.transform == "tps":
            self.tps = TPSGrid(output_size, tps_points, self.align_corners)
            identity = torch.zeros(self.tps.num_params)
        elif self.transform == "projective":
            identity = torch.tensor(IDENTITY_PROJECTIVE)
        else:
            identity = torch.tensor(IDENTITY_AFFINE)
        self.register_buffer("identity", identity, persistent=False)
        self.localization, width = localization_network(in_shape, localization, channels, hidden)
        self.regression = nn.Linear(width, len(identity))
        self.reset_to_identity()

    def reset_to_identity(self) -> None:
        """Zero weights and the identity as the bias of the regression layer (sec. 4.1)."""
        with torch.no_grad():
            self.regression.weight.zero_()
            self.regression.bias.copy_(self.identity)

    def after_init(self) -> None:
        """`models.create` calls this after a generic weight initialisation."""
        self.reset_to_identity()

    def params(self, x: torch.Tensor) -> torch.Tensor:
        """N×P transformation parameters for the images `x`."""
        return self.regression(self.localization(x))

    def grid(self, params: torch.Tensor) -> torch.Tensor:
        """N×Ho×Wo×2 sampling grid of the parameters."""
        size = self.output_size
        if self.transform == "affine":
            return affine_grid(params.view(-1, 2, 3), size, self.align_corners)
        if self.transform == "projective":
            return projective_grid(params, size, self.align_corners)
        return self.tps(params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = self.params(x)
        # coordinates in bf16 would be off by up to half a pixel at 28 pixels: float32 here
        with torch.autocast(x.device.type, enabled=False):
            grid = self.grid(params.float())
            out = grid_sample(x.float(), grid, self.align_corners, self.padding_mode)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"transform={self.transform!r}, in_shape={self.in_shape}, "
            f"output_size={self.output_size}, align_corners={self.align_corners}"
        )


class STN(nn.Module):
    """A spatial transformer in front of `classifier`, which must take C×output_size inputs."""

    def __init__(
        self,
        classifier: nn.Module,
        in_shape: Sequence[int],
        transform: str = "affine",
        output_size: Sequence[int] | None = None,
        **options,
    ) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise ConfigError(f"STN: classifier must be a torch.nn.Module, got {type(classifier)}")
        self.transformer = SpatialTransformer(in_shape, transform, output_size, **options)
        self.classifier = classifier

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """The transformed images the classifier sees."""
        return self.transformer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transformer(x))

    def after_init(self) -> None:
        self.transformer.reset_to_identity()
        if callable(getattr(self.classifier, "after_init", None)):
            self.classifier.after_init()
