"""The differentiable bilinear sampler of the spatial transformer (Jaderberg et al. 2015, eqs.
3-5), vectorised: the four neighbours of every sample point are gathered at once.

A grid point (x, y) in [-1, 1] is first turned into pixel coordinates

    align_corners=True:   i = (x + 1)(W - 1) / 2      (-1 and 1 are the corner pixels' centres)
    align_corners=False:  i = ((x + 1) W - 1) / 2     (-1 and 1 are their outer edges)

and the output is ``V = Σ_nm U_nm max(0, 1 - |i - m|) max(0, 1 - |j - n|)``: the four pixels
around (i, j), each weighted by the area of the opposite rectangle. A neighbour outside the
image reads 0 (``padding_mode="zeros"``) or, with ``"border"``, the point is first clamped into
the image (its coordinate then gets no gradient), as in `torch.nn.functional.grid_sample`, which
this equals in values and gradients.

The STN post in ../shared/reference (000, "Spatial Transformer Networks - Part I") gets both
steps wrong: it builds the grid with ``linspace(-1, 1, W)`` (the align_corners=True grid) but
maps it to pixels with ``(x + 1) W / 2``, so its identity transform stretches the image by
W/(W-1) and reads pixel W at the right edge; and it clips the neighbour indices into the image
*before* computing the weights from them, so at the right and bottom edges x0 = x1 = W-1 and the
weights ``(x1 - x)`` and ``(x - x0)`` no longer sum to 1 (they can be negative). Scaling by W-1
(or using the align_corners=False formula with its own grid) and weighting with the unclipped
neighbours, zeroing the ones outside, is right; the tests show the difference.
"""

from __future__ import annotations

import torch

from striate.checks import boolean, one_of
from striate.errors import ConfigError

__all__ = ["PADDING_MODES", "grid_sample", "to_pixels"]

PADDING_MODES = ("zeros", "border")


def to_pixels(coord: torch.Tensor, size: int, align_corners: bool) -> torch.Tensor:
    """Normalised coordinates in [-1, 1] to pixel coordinates along an axis of `size` pixels."""
    if align_corners:
        return (coord + 1) * (size - 1) / 2
    return ((coord + 1) * size - 1) / 2


def _clip(coord: torch.Tensor, size: int) -> torch.Tensor:
    """Clamp into [0, size-1]; no gradient on or beyond the bounds (as torch's border mode)."""
    inside = (coord > 0) & (coord < size - 1)
    return torch.where(inside, coord, coord.detach().clamp(0, size - 1))


def grid_sample(
    input: torch.Tensor,
    grid: torch.Tensor,
    align_corners: bool = False,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Bilinear samples of N×C×H×W `input` at the N×Ho×Wo×2 `grid` (x, y in [-1, 1]): N×C×Ho×Wo.

    Equals ``F.grid_sample(input, grid, "bilinear", padding_mode, align_corners)``.
    """
    owner = "grid_sample"
    align_corners = boolean(owner, "align_corners", align_corners)
    one_of(owner, "padding_mode", padding_mode, PADDING_MODES)
    if (
        input.dim() != 4
        or grid.dim() != 4
        or grid.shape[-1] != 2
        or grid.shape[0] != input.shape[0]
    ):
        raise ConfigError(
            f"{owner}: expected input N×C×H×W and grid N×Ho×Wo×2 with the same N, got "
            f"{tuple(input.shape)} and {tuple(grid.shape)}"
        )
    n, c, h, w = input.shape
    ho, wo = grid.shape[1:3]
    x = to_pixels(grid[..., 0], w, align_corners)
    y = to_pixels(grid[..., 1], h, align_corners)
    if padding_mode == "border":
        x, y = _clip(x, w), _clip(y, h)
    # far-away (or infinite) points only ever read zeros: keep their indices small and finite
    x = torch.nan_to_num(x, nan=-2.0).clamp(-2, w + 1)
    y = torch.nan_to_num(y, nan=-2.0).clamp(-2, h + 1)
    x0, y0 = x.detach().floor(), y.detach().floor()
    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = x0.long(), y0.long()
    flat = input.reshape(n, c, h * w)
    out = input.new_zeros(n, c, ho * wo)
    for dy, wy in ((0, wy0), (1, wy1)):
        for dx, wx in ((0, wx0), (1, wx1)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).view(n, 1, ho * wo)
            values = flat.gather(2, index.expand(n, c, ho * wo))
            weight = (wx * wy * inside).view(n, 1, ho * wo)
            out = out + values * weight
    return out.view(n, c, ho, wo)
