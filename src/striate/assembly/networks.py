"""Form2Fit's three fully convolutional networks at small scale (Zakka et al. 2019): a suction
network and a place network, each a per-pixel success logit map of a heightmap, and a two-stream
matching network of per-pixel descriptors (one stream for the kit, one for object crops).

Each stream keeps the input's resolution: 3×3 convolutions with dilations 1, 2, 4, 8, 1 (a
receptive field of 33 pixels, a whole piece and its surroundings) with ReLUs, and a 1×1 head.
The paper's networks are ResNet-based encoder–decoders on 480×640 heightmaps; at 48×48 a few
dilated layers see as much, relative to a piece.

    rotate(crops, angles)              # the object crop turned about its centre pixel
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from striate.assembly.sim import rotation


class DenseNet(nn.Sequential):
    """Dilated convolutions at full resolution ending in a 1×1 head of `out` channels per pixel.
    The heightmap is shifted by −0.5 on the way in (floor −0.5, plate 0, pieces 0.5)."""

    def __init__(
        self, out: int = 1, width: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 1)
    ) -> None:
        layers: list[nn.Module] = []
        channels = 1
        for d in dilations:
            layers += [nn.Conv2d(channels, width, 3, padding=d, dilation=d), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(width, out, 1))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x - 0.5)


class MatchingNet(nn.Module):
    """Two streams of `dim`-dimensional per-pixel descriptors: `kit(k)` for kit heightmaps and
    `object(o)` for (rotated) object crops; `forward` returns both."""

    def __init__(self, dim: int = 16, width: int = 32) -> None:
        super().__init__()
        self.kit_stream = DenseNet(dim, width)
        self.object_stream = DenseNet(dim, width)

    def kit(self, x: torch.Tensor) -> torch.Tensor:
        return self.kit_stream(x)

    def object(self, x: torch.Tensor) -> torch.Tensor:
        return self.object_stream(x)

    def forward(self, kit: torch.Tensor, obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.kit(kit), self.object(obj)


def rotate(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) turned by `angles` (N,) radians about their centre, in the
    simulator's y-down axes (a point at offset u from the centre moves to R(θ)·u), bilinear,
    zero outside: out(x) = in(R(−θ)·x). For square images of odd side the centre is the middle
    pixel's centre, so the middle pixel stays in place."""
    n = len(images)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, :, :2] = rotation(-angles.to(images.dtype))
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotation_angles(rotations: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The discretised turns 2πk/R, k = 0..R−1."""
    return torch.arange(rotations, device=device) * (2 * torch.pi / rotations)


def rotated_stack(crops: torch.Tensor, rotations: int) -> torch.Tensor:
    """Each crop (N, C, h, w) at every discretised turn: (N·R, C, h, w), crop-major."""
    n = len(crops)
    angles = rotation_angles(rotations, crops.device).repeat(n)
    return rotate(crops.repeat_interleave(rotations, 0), angles)
