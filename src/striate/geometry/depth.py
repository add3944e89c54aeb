"""Depth maps (lecture 11, "Depth Map"): rendering primitives by ray casting, and the
scale-invariant loss that answers the map's scale/depth ambiguity.

    cam = Camera(eye=(3, 2, 1.5), size=(64, 64), fov=50)
    depth = render_depth("torus", cam)                  # (64, 64), 0 where the ray misses
    depth = render_mesh_depth(vertices, faces, cam)     # any triangle mesh
    scale_invariant_loss(pred, target, lam=0.5)         # Eigen et al. 2014, eq. 4

Depth is the z-depth along the camera's optical axis (what a depth sensor reports), not the
distance along the ray. Every pixel's ray is cast at once: the analytic primitives by sphere
tracing their signed distance functions (Hart 1996) for a fixed number of steps, meshes by the
Möller–Trumbore ray–triangle test against every face, a chunk of rays at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from striate.checks import number, positive_int
from striate.errors import InputError
from striate.geometry.primitives import icosphere, sdf


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at `eye` looking at `target` with `up` roughly up; `fov` is the vertical
    field of view in degrees, `size` the image (H, W)."""

    eye: Sequence[float] = (3.0, 2.0, 1.5)
    target: Sequence[float] = (0.0, 0.0, 0.0)
    up: Sequence[float] = (0.0, 0.0, 1.0)
    size: tuple[int, int] = (64, 64)
    fov: float = 50.0

    def rays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The origin (3,), unit ray directions (H, W, 3) (row 0 at the top) and the optical axis
        (3,)."""
        h = positive_int("Camera", "height", self.size[0], error=InputError)
        w = positive_int("Camera", "width", self.size[1], error=InputError)
        fov = number("Camera", "fov", self.fov, low=0, high=180, low_open=True, high_open=True,
                     error=InputError)  # fmt: skip
        eye = torch.tensor(self.eye, dtype=torch.float32)
        forward = torch.tensor(self.target, dtype=torch.float32) - eye
        if float(forward.norm()) == 0:
            raise InputError("Camera: eye and target must differ")
        forward = forward / forward.norm()
        right = torch.linalg.cross(forward, torch.tensor(self.up, dtype=torch.float32))
        if float(right.norm()) < 1e-6:
            raise InputError("Camera: up must not be parallel to the viewing direction")
        right = right / right.norm()
        up = torch.linalg.cross(right, forward)
        half = math.tan(math.radians(fov) / 2)
        ys = (1 - 2 * (torch.arange(h) + 0.5) / h) * half
        xs = (2 * (torch.arange(w) + 0.5) / w - 1) * half * w / h
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        d = forward + xx[..., None] * right + yy[..., None] * up
        return eye, d / d.norm(dim=-1, keepdim=True), forward


def render_depth(
    shape: str,
    camera: Camera = Camera(),
    *,
    half: float | Sequence[float] = 1.0,
    steps: int = 128,
    far: float = 100.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """The depth map (H, W) of a primitive ("sphere", "box", "cylinder", "torus"; "icosphere"
    goes through its mesh) by sphere tracing its signed distance for `steps` steps; 0 where the
    ray misses."""
    steps = positive_int("render_depth", "steps", steps, error=InputError)
    if shape == "icosphere":
        return render_mesh_depth(*icosphere(2), camera)
    eye, d, forward = camera.rays()
    t = torch.zeros(d.shape[:-1])
    for _ in range(steps):  # every ray at once; a ray that hit stops moving (its distance ~0)
        dist = sdf(shape, eye + t[..., None] * d, half)
        t = torch.where(t < far, t + dist, t)
    dist = sdf(shape, eye + t[..., None] * d, half)
    hit = (dist.abs() < 1e-3) & (t < far)
    return torch.where(hit, t * (d @ forward), 0.0)


def render_mesh_depth(
    vertices: torch.Tensor, faces: torch.Tensor, camera: Camera = Camera(), chunk: int = 4096
) -> torch.Tensor:
    """The depth map (H, W) of a triangle mesh: the nearest hit of each pixel's ray over all faces
    (Möller & Trumbore 1997), a chunk of `chunk` rays at a time; 0 where the ray misses."""
    chunk = positive_int("render_mesh_depth", "chunk", chunk, error=InputError)
    eye, d, forward = camera.rays()
    dirs = d.reshape(-1, 3)
    a, b, c = vertices.detach().float()[faces].unbind(1)  # (F, 3) each
    e1, e2 = b - a, c - a
    s = eye - a  # (F, 3)
    q = torch.linalg.cross(s, e1)  # (F, 3)
    t_num = (e2 * q).sum(-1)  # (F,)
    out = []
    for start in range(0, len(dirs), chunk):
        r = dirs[start : start + chunk, None, :]  # (R, 1, 3)
        p = torch.linalg.cross(r.expand(-1, len(e2), -1), e2.expand(len(r), -1, -1))  # (R, F, 3)
        det = (e1 * p).sum(-1)
        ok = det.abs() > 1e-12
        inv = 1 / torch.where(ok, det, 1.0)
        u = (s * p).sum(-1) * inv
        v = (r * q).sum(-1) * inv
        t = t_num * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-6)
        t = torch.where(hit, t, math.inf).amin(-1)
        out.append(t)
    t = torch.cat(out).view(d.shape[:-1])
    return torch.where(torch.isfinite(t), t * (d @ forward), 0.0)


def scale_invariant_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    lam: float = 0.5,
    log_pred: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """The scale-invariant depth loss of Eigen, Puhrsch and Fergus 2014, "Depth Map Prediction
    from a Single Image using a Multi-Scale Deep Network", eq. 4:

        D(y, y*) = 1/n Σ_i d_i² − λ/n² (Σ_i d_i)²,   d_i = log y_i − log y*_i,

    over each image's n valid pixels, averaged over the images. λ = 1 is the scale-invariant
    error of their eq. 1–3 (a global scale of the prediction adds the same constant to every d_i
    and cancels); λ = 0 the plain mean squared log error; the paper trains with λ = 0.5.
    `pred`, `target` (H, W) or (B, …) positive depths (`log_pred`: `pred` is already log depth);
    `mask` marks valid pixels (default: target > 0, so missing depth counts nowhere). An image
    without valid pixels contributes 0."""
    lam = number("scale_invariant_loss", "lam", lam, low=0, high=1, error=InputError)
    if pred.shape != target.shape:
        raise InputError(
            f"scale_invariant_loss: pred and target must have the same shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mask is None:
        mask = target > 0
    elif mask.shape != target.shape:
        raise InputError(
            f"scale_invariant_loss: mask must have the target's shape {tuple(target.shape)}, "
            f"got {tuple(mask.shape)}"
        )
    single = pred.dim() <= 2
    p, y, m = (x.reshape(1, -1) if single else x.flatten(1) for x in (pred, target, mask.bool()))
    log_p = p if log_pred else p.clamp_min(eps).log()
    d = torch.where(m, log_p - y.clamp_min(eps).log(), 0.0)
    n = m.sum(1).float()
    safe_n = n.clamp_min(1)
    per_image = (d * d).sum(1) / safe_n - lam * d.sum(1) ** 2 / safe_n**2
    per_image = torch.where(n > 0, per_image, 0.0)
    return per_image.mean()
