"""The analytic grasp model: does a top-down parallel-jaw grasp hold a polygon, and how robustly.

    g = torch.tensor([[32.0, 30.0, 0.3, 0.66]])          # centre x, y (pixels), angle, depth z
    ok = grasp_success(vertices, heights, g, mu=0.5)      # one Boolean per grasp
    r = robustness(vertices, heights, g, samples=64, seed=0)   # P(success) under perturbation

A grasp is a centre (x, y) in pixels, an angle θ of the grasp axis u = (cos θ, sin θ) in the image
plane and a depth z (metres from the camera) of the jaw tips. The jaws open to `max_width`
pixels and close along u. Success (Dex-Net 2.0, Mahler et al. 2017, Sec. III: force closure
subject to collision freedom) is, on the true polygon:

- contacts: the axis line meets the boundary between the open jaws (|t| < max_width/2, t the
  parameter along u from the centre); the closing jaws stop at the outermost such crossings
  t₊, t₋ — a line that misses the object there has no contacts;
- antipodal / force closure with Coulomb friction: the segment between the contacts lies in both
  friction cones, i.e. the angle between each contact's outward normal and the direction out of
  the object along the axis is below atan(μ) (Nguyen 1988: two-finger force closure in 2-D);
- no collision and the width limit: the open jaws (rectangles `finger_depth` thick along u and
  2·`finger_half` wide across it, just outside ±max_width/2) contain no point of the object, so
  an object wider than the jaws open fails because a jaw lands on it;
- reachable depth: the jaw tips reach at least `min_grip` below the object's top face and stay
  `table_clearance` above the table.

Robustness is the probability of success when the grasp centre, angle and depth and the
friction coefficient are perturbed (Dex-Net 2.0, Sec. III-B: "robustness ... the probability of
force closure under uncertainty in object pose, gripper pose, and friction"), estimated by Monte
Carlo with all candidates × samples in one batch of tensor operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from striate.checks import positive_int
from striate.errors import InputError
from striate.grasp.scenes import TABLE_DEPTH, inside


@dataclass(frozen=True)
class Gripper:
    """The parallel-jaw gripper and the success constraints, in pixels and metres."""

    max_width: float = 28.0
    finger_depth: float = 2.0
    finger_half: float = 2.0
    min_grip: float = 0.005
    table_clearance: float = 0.003


@dataclass(frozen=True)
class Uncertainty:
    """Standard deviations of the Monte-Carlo perturbations and the friction model (Dex-Net's
    friction coefficient is a Gaussian around its mean, here 0.5 ± 0.1)."""

    centre: float = 1.0  # pixels
    angle: float = 0.1  # radians
    depth: float = 0.002  # metres
    mu_mean: float = 0.5
    mu_std: float = 0.1


def _check_grasps(grasps: torch.Tensor, n: int, owner: str) -> None:
    if grasps.dim() != 2 or grasps.shape[1] != 4 or len(grasps) != n:
        raise InputError(
            f"{owner}: grasps must be N×4 (x, y, angle, depth), one per polygon ({n}), "
            f"got {tuple(grasps.shape)}"
        )


def contacts(vertices: torch.Tensor, grasps: torch.Tensor, half: float = float("inf")):
    """Where each grasp axis meets its polygon between the open jaws (|t| < `half`): (t₊, t₋,
    n₊, n₋, hits) with t the outermost such crossings along u from the centre (meaningless where
    `hits` is False), n the outward unit normals of the edges crossed there, `hits` whether the
    line crosses the boundary there at least twice."""
    c = grasps[:, None, :2]
    theta = grasps[:, 2]
    u = torch.stack([theta.cos(), theta.sin()], -1)[:, None]  # N×1×2
    a = vertices
    e = vertices.roll(-1, 1) - a  # N×V×2 edges
    cross = lambda p, q: p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]  # noqa: E731
    denom = cross(u, e)  # N×V
    valid = denom.abs() > 1e-9
    safe = torch.where(valid, denom, torch.ones_like(denom))
    t = cross(a - c, e) / safe
    s = cross(a - c, u) / safe
    valid = valid & (s >= 0) & (s < 1) & (t.abs() < half)
    big = torch.finfo(t.dtype).max
    t_plus, i_plus = torch.where(valid, t, torch.full_like(t, -big)).max(1)
    t_minus, i_minus = torch.where(valid, t, torch.full_like(t, big)).min(1)
    length = e.norm(dim=-1).clamp_min(1e-12)
    normal = torch.stack([e[..., 1], -e[..., 0]], -1) / length[..., None]  # outward (CCW)
    n_plus = normal.gather(1, i_plus.reshape(-1, 1, 1).expand(-1, 1, 2)).squeeze(1)
    n_minus = normal.gather(1, i_minus.reshape(-1, 1, 1).expand(-1, 1, 2)).squeeze(1)
    hits = valid.sum(1) >= 2
    return t_plus, t_minus, n_plus, n_minus, hits


def jaw_points(grasps: torch.Tensor, gripper: Gripper, per_side: int = 3) -> torch.Tensor:
    """Sample points of both open jaws (N×P×2): a per_side×per_side grid over each rectangle."""
    c, theta = grasps[:, :2], grasps[:, 2]
    u = torch.stack([theta.cos(), theta.sin()], -1)
    v = torch.stack([-theta.sin(), theta.cos()], -1)
    along = gripper.max_width / 2 + torch.linspace(0, gripper.finger_depth, per_side)
    across = torch.linspace(-gripper.finger_half, gripper.finger_half, per_side)
    a, b = torch.meshgrid(torch.cat([along, -along]), across, indexing="ij")
    a, b = a.flatten().to(grasps), b.flatten().to(grasps)
    return c[:, None] + a[None, :, None] * u[:, None] + b[None, :, None] * v[:, None]


def grasp_success(
    vertices: torch.Tensor,
    heights: torch.Tensor,
    grasps: torch.Tensor,
    mu: torch.Tensor | float,
    gripper: Gripper = Gripper(),
) -> torch.Tensor:
    """Whether each grasp (N×4) holds its polygon (N×V×2, height N) with friction `mu` (a
    number or N): contacts inside the jaws, both in their friction cones, open jaws free of the
    object, depth reachable (see the module docstring). Returns N Booleans."""
    _check_grasps(grasps, len(vertices), "grasp_success")
    mu = torch.as_tensor(mu, dtype=grasps.dtype, device=grasps.device).expand(len(grasps))
    half = gripper.max_width / 2
    t_plus, t_minus, n_plus, n_minus, hits = contacts(vertices, grasps, half)
    width_ok = hits  # crossings beyond the open jaws matter only if a jaw lands on the object
    theta = grasps[:, 2]
    u = torch.stack([theta.cos(), theta.sin()], -1)
    cos_cone = torch.cos(torch.atan(mu.clamp_min(0)))
    # the jaw at t+ pushes along -u: the contact holds when u is within the cone around n+
    cone_ok = ((n_plus * u).sum(-1) > cos_cone) & ((-n_minus * u).sum(-1) > cos_cone)
    free = ~inside(vertices, jaw_points(grasps, gripper)).any(1)
    z = grasps[:, 3]
    top = TABLE_DEPTH - heights
    depth_ok = (z >= top + gripper.min_grip) & (z <= TABLE_DEPTH - gripper.table_clearance)
    return width_ok & cone_ok & free & depth_ok


def perturb(
    grasps: torch.Tensor, samples: int, uncertainty: Uncertainty, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`samples` perturbed copies of each grasp (N×S×4) and friction coefficients (N×S)."""
    n = len(grasps)
    noise = torch.randn(n, samples, 4, generator=generator, device=grasps.device)
    scale = torch.tensor(
        [uncertainty.centre, uncertainty.centre, uncertainty.angle, uncertainty.depth],
        dtype=grasps.dtype,
        device=grasps.device,
    )
    mu = uncertainty.mu_mean + uncertainty.mu_std * torch.randn(
        n, samples, generator=generator, device=grasps.device
    )
    return grasps[:, None] + noise * scale, mu.clamp_min(0)


def robustness(
    vertices: torch.Tensor,
    heights: torch.Tensor,
    grasps: torch.Tensor,
    *,
    samples: int = 64,
    seed: int = 0,
    uncertainty: Uncertainty = Uncertainty(),
    gripper: Gripper = Gripper(),
    chunk: int = 65536,
) -> torch.Tensor:
    """Monte-Carlo robustness of each grasp (N): the fraction of `samples` perturbed grasps and
    friction coefficients (`perturb`) that succeed. The N×S trials run as one batch (in chunks of
    `chunk` trials to bound memory)."""
    _check_grasps(grasps, len(vertices), "robustness")
    positive_int("robustness", "samples", samples)
    g = torch.Generator(device=grasps.device).manual_seed(seed)
    trials, mu = perturb(grasps, samples, uncertainty, g)
    n = len(grasps)
    flat = trials.reshape(n * samples, 4)
    index = torch.arange(n, device=grasps.device).repeat_interleave(samples)
    ok = torch.cat(
        [
            grasp_success(
                vertices[index[i : i + chunk]],
                heights[index[i : i + chunk]],
                flat[i : i + chunk],
                mu.reshape(-1)[i : i + chunk],
                gripper,
            )
            for i in range(0, n * samples, chunk)
        ]
    ) if n else torch.zeros(0, dtype=torch.bool)  # fmt: skip
    return ok.reshape(n, samples).float().mean(1)
