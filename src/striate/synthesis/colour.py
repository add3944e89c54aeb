"""Luminance and colour, for style transfer that keeps the content's colours.

Gatys, Bethge, Hertzmann & Shechtman (2016), "Preserving Color in Neural Artistic Style Transfer",
§3 (luminance-only transfer): transfer the style between the luminance channels (YIQ's Y) only,
after matching the style's luminance to the content's in mean and standard deviation, then put the
result's luminance together with the content's I and Q. The YIQ matrix is NTSC's, as
``skimage.color.rgb2yiq`` has it.
"""

from __future__ import annotations

import torch

from striate.errors import InputError

__all__ = ["match_luminance", "rgb_to_yiq", "with_colour_of", "yiq_to_rgb"]

_YIQ_FROM_RGB = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.59590059, -0.27455667, -0.32134392],
        [0.21153661, -0.52273617, 0.31119955],
    ],
    dtype=torch.float64,
)
_RGB_FROM_YIQ = torch.linalg.inv(_YIQ_FROM_RGB)


def _convert(matrix: torch.Tensor, image: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.dim() < 3 or image.shape[-3] != 3:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{name}: give an image …×3×H×W, got {got}")
    m = matrix.to(device=image.device, dtype=image.dtype if image.is_floating_point() else None)
    return torch.einsum("ij,...jhw->...ihw", m, image.to(m.dtype))


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """…×3×H×W RGB → YIQ (Y in 0–1 for RGB in 0–1; I, Q signed)."""
    return _convert(_YIQ_FROM_RGB, image, "rgb_to_yiq")


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """…×3×H×W YIQ → RGB (not clamped: YIQ holds colours outside the RGB cube)."""
    return _convert(_RGB_FROM_YIQ, image, "yiq_to_rgb")


def match_luminance(luminance: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`luminance` shifted and scaled to the mean and standard deviation of `reference` (each
    image of the batch on its own): L' = σ_r/σ_l · (L − μ_l) + μ_r (Gatys et al. 2016, eq. 1)."""
    dims = tuple(range(1, luminance.dim()))
    mu_l, sd_l = luminance.mean(dims, keepdim=True), luminance.std(dims, keepdim=True)
    mu_r, sd_r = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
    return (luminance - mu_l) * (sd_r / sd_l.clamp_min(1e-8)) + mu_r


def with_colour_of(luminance_image: torch.Tensor, colour_image: torch.Tensor) -> torch.Tensor:
    """The Y of `luminance_image` with the I, Q of `colour_image` (same size), back in RGB and
    clamped to 0–1."""
    y = rgb_to_yiq(luminance_image)[..., :1, :, :]
    iq = rgb_to_yiq(colour_image)[..., 1:, :, :]
    return yiq_to_rgb(torch.cat([y, iq], dim=-3)).clamp(0, 1)
