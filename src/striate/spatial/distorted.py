"""The distorted MNIST sets of the spatial transformer paper (Jaderberg et al. 2015, sec. 4.1 and
appendix A.1), generated in batches with this package's grids and sampler, seeded.

- "R": rotated by an angle drawn from U(-90°, 90°); 28×28.
- "RTS": rotated by U(-45°, 45°), scaled by U(0.7, 1.2) and placed at a random position (the
  scaled 28×28 square inside the canvas) in a 42×42 canvas.
- "P": projective: scaled by U(0.75, 1.0), then each of the four corners moved by Gaussian noise
  of ``corner_std`` = 5 pixels (the four corner correspondences give the homography); 28×28.
- "E": elastic (Simard et al. 2003, sec. 2): a per-pixel displacement field of U(-1, 1) noise,
  smoothed by a Gaussian of σ = 4 pixels and scaled by α = 34 (Simard's MNIST values); 28×28.
- "cluttered": `striate.spatial.cluttered` (60×60, digit translated, 6×6 distractor crops).

Angles are counter-clockwise as the image is shown (y down). Every random number is drawn from
one ``torch.Generator(seed)`` (the per-image parameters for the whole set first; the elastic
noise chunk by chunk of the fixed `CHUNK`). Each function returns the uint8 images and the drawn
parameters (angles in degrees, scales, offsets in pixels) for tests and figures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from striate.checks import number, positive_number
from striate.errors import ConfigError
from striate.spatial.grid import affine_grid, base_grid, projective_grid
from striate.spatial.sampler import grid_sample

__all__ = [
    "CHUNK",
    "elastic",
    "gaussian_smooth",
    "homography_from_points",
    "projective",
    "rotated",
    "rotated_translated_scaled",
]

CHUNK = 2048  # images warped at once: bounds memory (the random draws do not depend on it)


def _float(images: torch.Tensor, owner: str) -> torch.Tensor:
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() != 4
        or images.dtype != torch.uint8
        or images.shape[2] != images.shape[3]
    ):
        raise ConfigError(
            f"{owner}: expected square uint8 images N×C×H×H, got "
            f"{getattr(images, 'dtype', type(images).__name__)} "
            f"{tuple(getattr(images, 'shape', ()))}"
        )
    return images.float()


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp(0, 255).to(torch.uint8)


def _warp_affine(images: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    x = _float(images, "distorted MNIST")
    out = []
    for i in range(0, len(x), CHUNK):  # chunks of a batch, not a loop over images
        grid = affine_grid(theta[i : i + CHUNK], size, align_corners=False)
        out.append(_to_uint8(grid_sample(x[i : i + CHUNK], grid, align_corners=False)))
    return torch.cat(out) if out else images.new_zeros(0, images.shape[1], *size)


def rotation_matrices(degrees: torch.Tensor) -> torch.Tensor:
    """N×2×2 matrices that turn image content counter-clockwise (as shown, y down)."""
    a = torch.deg2rad(degrees)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)


def rotated(
    images: torch.Tensor, seed: int = 0, max_degrees: float = 90.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """R: each image turned by an angle from U(-max_degrees, max_degrees) about its centre."""
    max_degrees = number("rotated", "max_degrees", max_degrees, low=0, high=180)
    _float(images[:0], "rotated")
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape
    angles = (torch.rand(n, generator=g) * 2 - 1) * max_degrees
    inverse = rotation_matrices(angles).transpose(1, 2)  # output point -> source point
    theta = torch.cat([inverse, torch.zeros(n, 2, 1)], dim=2)
    return _warp_affine(images, theta, (h, w)), {"angle": angles}


def rotated_translated_scaled(
    images: torch.Tensor,
    seed: int = 0,
    canvas: int = 42,
    max_degrees: float = 45.0,
    scale: tuple[float, float] = (0.7, 1.2),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RTS: turned by U(-max_degrees, max_degrees), scaled by U(*scale) and placed uniformly at
    random (the scaled square inside) in a canvas×canvas image."""
    owner = "rotated_translated_scaled"
    max_degrees = number(owner, "max_degrees", max_degrees, low=0, high=180)
    lo, hi = (positive_number(owner, "scale", s) for s in scale)
    _float(images[:0], owner)
    n, _, h, w = images.shape
    if hi * max(h, w) > canvas or lo > hi:
        raise ConfigError(
            f"{owner}: scale must be (low, high) with low <= high and high·{max(h, w)} <= canvas "
            f"{canvas}, got {scale}"
        )
    g = torch.Generator().manual_seed(seed)
    angles = (torch.rand(n, generator=g) * 2 - 1) * max_degrees
    scales = lo + torch.rand(n, generator=g) * (hi - lo)
    room = (canvas - scales[:, None] * torch.tensor([w, h])) / 2  # free pixels on each side
    offsets = (torch.rand(n, 2, generator=g) * 2 - 1) * room  # digit centre from canvas centre
    inverse = rotation_matrices(angles).transpose(1, 2)
    # canvas pixel q (from its centre) = offset + scale·R·p; normalised: q = t·canvas/2, p = u·w/2
    linear = inverse * (canvas / (scales * w))[:, None, None]
    shift = -(inverse @ offsets[:, :, None]) / (scales * w / 2)[:, None, None]
    theta = torch.cat([linear, shift], dim=2)
    out = _warp_affine(images, theta, (canvas, canvas))
    return out, {"angle": angles, "scale": scales, "offset": offsets}


def homography_from_points(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """N×3×3 homographies (``H[2, 2] = 1``) taking the N×4×2 `target` points to `source`: the
    8×8 linear system of the four correspondences, solved in float64."""
    t, s = target.double(), source.double()
    x, y, u, v = t[..., 0], t[..., 1], s[..., 0], s[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -x * u, -y * u], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -x * v, -y * v], -1)
    a = torch.cat([rows_u, rows_v], dim=1)  # N×8×8
    b = torch.cat([u, v], dim=1)
    h = torch.linalg.solve(a, b)
    return torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1).view(-1, 3, 3)


def projective(
    images: torch.Tensor,
    seed: int = 0,
    scale: tuple[float, float] = (0.75, 1.0),
    corner_std: float = 5.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """P: scaled by U(*scale) about the centre, then each corner moved by N(0, corner_std²)
    pixels; the image is warped by the homography of the four corners."""
    owner = "projective"
    corner_std = number(owner, "corner_std", corner_std, low=0)
    lo, hi = (positive_number(owner, "scale", s) for s in scale)
    x = _float(images, owner)
    n, _, h, w = images.shape
    g = torch.Generator().manual_seed(seed)
    scales = lo + torch.rand(n, generator=g) * (hi - lo)
    noise = torch.randn(n, 4, 2, generator=g) * corner_std
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    half = torch.tensor([w / 2, h / 2])
    moved = corners * scales[:, None, None] + noise / half  # where each corner goes, normalised
    hom = homography_from_points(moved, corners.expand(n, 4, 2)).float()
    out = []
    for i in range(0, n, CHUNK):
        grid = projective_grid(hom[i : i + CHUNK], (h, w), align_corners=False)
        out.append(_to_uint8(grid_sample(x[i : i + CHUNK], grid, align_corners=False)))
    images = torch.cat(out) if out else images.clone()
    return images, {"scale": scales, "corners": moved * half}


def gaussian_smooth(field: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """N×C×H×W fields smoothed by a Gaussian of `sigma` pixels, zeros outside, radius
    ``int(truncate·sigma + 0.5)`` (``scipy.ndimage.gaussian_filter(mode="constant")``)."""
    radius = int(truncate * sigma + 0.5)
    r = torch.arange(-radius, radius + 1, dtype=field.dtype)
    k = torch.exp(-0.5 * (r / sigma) ** 2)
    k = k / k.sum()
    c = field.shape[1]
    kx = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    ky = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    out = F.conv2d(field, kx, padding=(0, radius), groups=c)
    return F.conv2d(out, ky, padding=(radius, 0), groups=c)


def elastic(
    images: torch.Tensor, seed: int = 0, alpha: float = 34.0, sigma: float = 4.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """E: Simard et al.'s elastic distortion: output pixel p reads the input at p + α·(G_σ * r)(p),
    r uniform in [-1, 1]² per pixel, smoothed by the Gaussian G_σ."""
    owner = "elastic"
    alpha = number(owner, "alpha", alpha, low=0)
    sigma = positive_number(owner, "sigma", sigma)
    x = _float(images, owner)
    n, _, h, w = images.shape
    g = torch.Generator().manual_seed(seed)
    base = base_grid(h, w, align_corners=False)[..., :2]
    to_norm = torch.tensor([2 / w, 2 / h])
    out = []
    for i in range(0, n, CHUNK):  # noise drawn per chunk of the fixed CHUNK size
        m = min(CHUNK, n - i)
        noise = torch.rand(m, 2, h, w, generator=g) * 2 - 1
        shift = gaussian_smooth(noise, sigma).permute(0, 2, 3, 1) * alpha
        grid = base + shift * to_norm
        out.append(_to_uint8(grid_sample(x[i : i + m], grid, align_corners=False)))
    images = torch.cat(out) if out else images.clone()
    return images, {"alpha": torch.tensor(alpha), "sigma": torch.tensor(sigma)}
