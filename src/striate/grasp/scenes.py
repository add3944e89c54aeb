"""Table scenes for parallel-jaw grasping: one extruded polygon on a table, seen from above.

    scenes = random_scenes(256, seed=0)                  # polygons, heights, clean depth
    depth = observe(scenes.depth, seed=1)                 # + Dex-Net's observation noise

A scene is a polygon of up to `MAX_VERTICES` vertices (counter-clockwise, in pixel coordinates
of a 64×64 top-down image: x to the right, y down, pixel (i, j)'s centre at x=j, y=i) extruded
to a height `h` (metres) above a table at `TABLE_DEPTH` metres from the camera. Polygons with
fewer vertices repeat their last vertex (zero-length edges, which no test counts). Convex
polygons put their vertices on an ellipse (points in angular order on an ellipse bound a convex
polygon); the others are stars with random radii, so most of them are not convex.

The observation model is that of Dex-Net 2.0 (Mahler et al. 2017, Sec. V-A: "depth images
corrupted with multiplicative and Gaussian process noise"; the gqcnn code's `gamma_shape=1000`,
`gp_sigma=0.005`, `gp_rescale_factor=4`): depth × Gamma(k, 1/k) (mean 1, variance 1/k; one factor
per image) plus a
correlated additive field, Gaussian noise on a grid `rescale` times coarser, upsampled bicubically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from striate.checks import (
    fail,
    integer,
    is_number,
    number,
    positive_int,
    positive_number,
    probability,
)

TABLE_DEPTH = 0.7  # metres from the camera
IMAGE_SIZE = 64
MAX_VERTICES = 10


@dataclass
class Scenes:
    """A batch of scenes: `vertices` N×V×2 (pixels, counter-clockwise), `heights` N (metres),
    `convex` N (bool), `depth` N×1×H×W the noise-free depth image (metres)."""

    vertices: torch.Tensor
    heights: torch.Tensor
    convex: torch.Tensor
    depth: torch.Tensor

    def __len__(self) -> int:
        return len(self.vertices)

    def __getitem__(self, index) -> Scenes:
        return Scenes(
            self.vertices[index], self.heights[index], self.convex[index], self.depth[index]
        )

    @property
    def top_depth(self) -> torch.Tensor:
        """Depth of each object's top face (metres), N."""
        return TABLE_DEPTH - self.heights


def polygon_area(vertices: torch.Tensor) -> torch.Tensor:
    """Signed area (shoelace formula) of polygons ...×V×2; positive when counter-clockwise in
    (x, y) with y up, i.e. as written here."""
    x, y = vertices[..., 0], vertices[..., 1]
    return 0.5 * (x * y.roll(-1, -1) - x.roll(-1, -1) * y).sum(-1)


def inside(vertices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Whether `points` (N×P×2) lie inside polygons `vertices` (N×V×2): the crossing-number test
    (a ray to +x crosses the boundary an odd number of times), vectorised over points and edges.
    Zero-length edges never count."""
    a = vertices.unsqueeze(1)  # N×1×V×2
    b = vertices.roll(-1, 1).unsqueeze(1)
    px, py = points[..., 0:1], points[..., 1:2]  # N×P×1
    straddles = (a[..., 1] > py) != (b[..., 1] > py)
    dy = b[..., 1] - a[..., 1]
    safe = torch.where(straddles, dy, torch.ones_like(dy))
    x_cross = a[..., 0] + (py - a[..., 1]) * (b[..., 0] - a[..., 0]) / safe
    crossings = (straddles & (px < x_cross)).sum(-1)
    return crossings % 2 == 1


def pixel_centres(size: int = IMAGE_SIZE, device: torch.device | str | None = None) -> torch.Tensor:
    """The (x, y) of every pixel's centre, row by row: (size²)×2."""
    i, j = torch.meshgrid(
        torch.arange(size, device=device, dtype=torch.float32),
        torch.arange(size, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([j.flatten(), i.flatten()], -1)


def render(vertices: torch.Tensor, heights: torch.Tensor, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Noise-free top-down depth N×1×size×size: the table at `TABLE_DEPTH`, the object's top
    face at TABLE_DEPTH − height where a pixel's centre is inside its polygon."""
    n = len(vertices)
    grid = pixel_centres(size, vertices.device).expand(n, -1, -1)
    out = []
    for start in range(0, n, 256):  # chunks bound the N×P×V test's memory
        mask = inside(vertices[start : start + 256], grid[start : start + 256])
        out.append(TABLE_DEPTH - mask.float() * heights[start : start + 256, None])
    return torch.cat(out).reshape(n, 1, size, size) if out else torch.zeros(0, 1, size, size)


def random_scenes(
    n: int,
    *,
    seed: int = 0,
    convex_fraction: float = 0.6,
    min_radius: float = 7.0,
    max_radius: float = 15.0,
    min_height: float = 0.02,
    max_height: float = 0.08,
    size: int = IMAGE_SIZE,
) -> Scenes:
    """`n` seeded scenes: one polygon of 3 to MAX_VERTICES vertices near the image centre (a
    `convex_fraction` of them on an ellipse, the rest stars with radii in [0.45, 1] × R), rotated
    at random, extruded to a height in [min_height, max_height] metres."""
    n = integer("random_scenes", "n", n, low=0)
    probability("random_scenes", "convex_fraction", convex_fraction)
    positive_number("random_scenes", "min_radius", min_radius)
    number("random_scenes", "max_radius", max_radius, low=min_radius)
    positive_number("random_scenes", "min_height", min_height)
    number("random_scenes", "max_height", max_height, low=min_height, high=TABLE_DEPTH)
    positive_int("random_scenes", "size", size)
    g = torch.Generator().manual_seed(seed)
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    v = MAX_VERTICES
    count = torch.randint(3, v + 1, (n,), generator=g)
    gaps = 0.5 + u(n, v)
    gaps = gaps * (torch.arange(v) < count[:, None])  # unused vertices get no angle
    angles = 2 * math.pi * (gaps.cumsum(1) - gaps) / gaps.sum(1, keepdim=True)
    convex = u(n) < convex_fraction
    radius = min_radius + (max_radius - min_radius) * u(n)
    aspect = 0.5 + 0.5 * u(n)  # ellipse b/a
    star = 0.45 + 0.55 * u(n, v)
    rx = torch.where(convex[:, None], radius[:, None], radius[:, None] * star)
    ry = torch.where(convex[:, None], (radius * aspect)[:, None], radius[:, None] * star)
    local = torch.stack([rx * angles.cos(), ry * angles.sin()], -1)  # CCW (angles increase)
    phi = 2 * math.pi * u(n)
    rot = torch.stack([phi.cos(), -phi.sin(), phi.sin(), phi.cos()], -1).reshape(n, 1, 2, 2)
    centre = size / 2 - 0.5 + (u(n, 2) - 0.5) * 12
    vertices = (rot @ local.unsqueeze(-1)).squeeze(-1) + centre[:, None]
    last = vertices.gather(1, (count - 1).reshape(n, 1, 1).expand(n, 1, 2))
    vertices = torch.where((torch.arange(v) < count[:, None])[..., None], vertices, last)
    heights = min_height + (max_height - min_height) * u(n)
    return Scenes(vertices, heights, convex, render(vertices, heights, size))


def observe(
    depth: torch.Tensor,
    *,
    seed: int = 0,
    gamma_shape: float = 1000.0,
    gp_sigma: float = 0.005,
    gp_rescale: int = 4,
) -> torch.Tensor:
    """Dex-Net 2.0's observation noise on depth images N×1×H×W (see the module docstring):
    one multiplicative Gamma(k, 1/k) factor per image (the camera's depth scale; gqcnn draws one
    per image), then Gaussian noise of std `gp_sigma` on an
    (H/rescale)×(W/rescale) grid, upsampled bicubically (a cheap Gaussian-process-like field
    correlated over about `gp_rescale` pixels). `gamma_shape=inf` / `gp_sigma=0` turn a part off."""
    if not (is_number(gamma_shape) and gamma_shape >= 1):  # inf allowed: no gamma noise
        raise fail("observe", "gamma_shape", "a number >= 1 (or inf)", gamma_shape)
    number("observe", "gp_sigma", gp_sigma, low=0)
    positive_int("observe", "gp_rescale", gp_rescale)
    g = torch.Generator(device=depth.device).manual_seed(seed)
    out = depth
    if math.isfinite(gamma_shape):
        k = torch.full((len(depth), 1, 1, 1), gamma_shape, device=depth.device)
        # torch's Gamma sampler takes no generator: draw it from seeded normals instead, via
        # Marsaglia–Tsang (2000), exact for k >= 1 (one accept step; redraws are vanishingly rare
        # for k = 1000 and fall back to the Gaussian approximation).
        z = torch.randn(k.shape, generator=g, device=depth.device)
        uu = torch.rand(k.shape, generator=g, device=depth.device)
        d = k - 1 / 3
        c = 1 / torch.sqrt(9 * d)
        vv = (1 + c * z) ** 3
        log_vv = vv.clamp_min(1e-12).log()
        ok = (vv > 0) & (uu.clamp_min(1e-12).log() < 0.5 * z**2 + d - d * vv + d * log_vv)
        sample = torch.where(ok, d * vv, k + k.sqrt() * z)
        out = out * (sample / k)
    if gp_sigma > 0:
        n, c_, h, w = depth.shape
        coarse = torch.randn(
            n, c_, max(h // gp_rescale, 1), max(w // gp_rescale, 1), generator=g,
            device=depth.device,
        ) * gp_sigma  # fmt: skip
        out = out + F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return out
