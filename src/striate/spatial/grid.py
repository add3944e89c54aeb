"""Sampling grids of the spatial transformer (Jaderberg et al. 2015, eq. 1): for every pixel of
the output, the point of the input to read, in normalised coordinates.

Coordinates are torch's: x across the width, y down the height, both in [-1, 1]. With
``align_corners=True`` -1 and 1 are the centres of the corner pixels (pixel i of W sits at
``2i/(W-1) - 1``); with ``align_corners=False`` they are the outer edges of the corner pixels
(pixel i sits at ``(2i+1)/W - 1``), so a grid means the same region whatever the resolution. The
grids here equal `torch.nn.functional.affine_grid` for the same ``theta`` and convention.

- `affine_grid`: ``[x_s, y_s]ᵀ = θ [x_t, y_t, 1]ᵀ``, θ a 2×3 matrix (6 parameters).
- `projective_grid`: ``[u, v, w]ᵀ = H [x_t, y_t, 1]ᵀ``, ``(x_s, y_s) = (u/w, v/w)``, H a 3×3
  homography with ``H[2, 2] = 1`` (8 parameters).

The thin-plate spline grid is in `striate.spatial.tps`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from striate.checks import boolean
from striate.errors import ConfigError

__all__ = ["IDENTITY_AFFINE", "IDENTITY_PROJECTIVE", "affine_grid", "base_grid", "projective_grid"]

IDENTITY_AFFINE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
IDENTITY_PROJECTIVE = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def check_size(size: Sequence[int], owner: str) -> tuple[int, int]:
    """(H, W) from an (H, W) or (N, C, H, W) size, both positive."""
    if isinstance(size, torch.Size):
        size = tuple(size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) not in (2, 4)
        or not all(isinstance(s, int) and s >= 1 for s in size)
    ):
        raise ConfigError(
            f"{owner}: size must be (H, W) or (N, C, H, W) of positive integers, got {size!r}"
        )
    return int(size[-2]), int(size[-1])


def pixel_centres(n: int, align_corners: bool, *, dtype=None, device=None) -> torch.Tensor:
    """The normalised coordinates of the centres of `n` pixels along one axis."""
    i = torch.arange(n, dtype=dtype or torch.get_default_dtype(), device=device)
    if align_corners:
        return 2 * i / (n - 1) - 1 if n > 1 else torch.zeros_like(i)
    return (2 * i + 1) / n - 1


def base_grid(
    height: int, width: int, align_corners: bool = False, *, dtype=None, device=None
) -> torch.Tensor:
    """The identity grid, H×W×3 of homogeneous target coordinates ``(x_t, y_t, 1)``."""
    xs = pixel_centres(width, align_corners, dtype=dtype, device=device)
    ys = pixel_centres(height, align_corners, dtype=dtype, device=device)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], dim=-1)


def affine_grid(
    theta: torch.Tensor, size: Sequence[int], align_corners: bool = False
) -> torch.Tensor:
    """N×H×W×2 source coordinates ``θ [x_t, y_t, 1]ᵀ`` for N×2×3 (or N×6) ``theta``; `size` is
    the output's (H, W) or (N, C, H, W). Equals ``F.affine_grid(theta, size, align_corners)``."""
    h, w = check_size(size, "affine_grid")
    align_corners = boolean("affine_grid", "align_corners", align_corners)
    theta = _matrices(theta, (2, 3), "affine_grid", "an N×2×3 (or N×6) affine matrix")
    base = base_grid(h, w, align_corners, dtype=theta.dtype, device=theta.device)
    return torch.einsum("hwk,njk->nhwj", base, theta)


def projective_grid(
    homography: torch.Tensor, size: Sequence[int], align_corners: bool = False
) -> torch.Tensor:
    """N×H×W×2 source coordinates of the homography: N×3×3, or N×8 (``H[2, 2] = 1``). The
    identity homography gives the identity grid; points mapped to infinity (w = 0) give ±inf,
    which the sampler reads as outside the image."""
    h, w = check_size(size, "projective_grid")
    align_corners = boolean("projective_grid", "align_corners", align_corners)
    if homography.dim() == 2 and homography.shape[-1] == 8:
        ones = homography.new_ones(homography.shape[0], 1)
        homography = torch.cat([homography, ones], dim=1)
    hom = _matrices(homography, (3, 3), "projective_grid", "an N×3×3 (or N×8) homography")
    base = base_grid(h, w, align_corners, dtype=hom.dtype, device=hom.device)
    uvw = torch.einsum("hwk,njk->nhwj", base, hom)
    return uvw[..., :2] / uvw[..., 2:]


def _matrices(m: torch.Tensor, shape: tuple[int, int], owner: str, what: str) -> torch.Tensor:
    if not isinstance(m, torch.Tensor) or not m.is_floating_point():
        raise ConfigError(f"{owner}: expected {what} as a float tensor, got {type(m).__name__}")
    if m.dim() == 2 and m.shape[-1] == shape[0] * shape[1]:
        m = m.view(-1, *shape)
    if m.dim() != 3 or tuple(m.shape[1:]) != shape:
        raise ConfigError(f"{owner}: expected {what}, got shape {tuple(m.shape)}")
    return m
