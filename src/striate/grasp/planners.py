"""Grasp candidates and planners on depth images, batched over images and candidates.

    cand, valid = antipodal_candidates(depth, 200, seed=0)     # N×M×4, N×M
    best = cem_plan(net, depth, seed=0)                         # N×4, Dex-Net 2.0's CEM

Antipodal sampling (Mahler et al. 2017, Sec. V-B): edge pixels of the depth image are where the
depth gradient (Sobel) is large; the 2-D surface normal at an edge pixel points down the depth
step, i.e. along the gradient (depth grows from the object to the table). Random pairs of edge
pixels whose normals are roughly opposite and whose axis lies within both friction cones (μ
`friction`, Dex-Net samples with a larger μ than it labels with) and which fit in the open
gripper are antipodal candidates; the grasp is their midpoint and axis.

The depth z of a candidate is the observed top at its centre plus a fraction of the way to the
observed table (the image's median depth: a single object covers a few percent of the image);
planners try `DEPTH_FRACTIONS` and keep the best-scored.

The cross-entropy method (Dex-Net 2.0, Sec. V-C; Rubinstein & Kroese 2004): sample candidates,
score them with the GQ-CNN, keep the top `elite_fraction`, fit a Gaussian mixture over (x, y, θ)
to the elites by EM, resample from it, and repeat; the best-scored grasp of the last round wins.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from striate.checks import integer, positive_int, probability
from striate.grasp.analytic import Gripper
from striate.grasp.gqcnn import GQCNN, aligned_crops

DEPTH_FRACTIONS = (0.25, 0.5, 0.75)
EDGE_THRESHOLD = 0.004  # metres of depth change per pixel (Sobel, normalised)


def depth_gradients(depth: torch.Tensor) -> torch.Tensor:
    """Sobel derivatives (d/dx, d/dy) of depth images N×1×H×W, in depth units per pixel:
    N×2×H×W (replicated borders)."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=depth.dtype) / 8
    kernels = torch.stack([k, k.T])[:, None].to(depth.device)
    return F.conv2d(F.pad(depth, (1, 1, 1, 1), mode="replicate"), kernels)


def table_depth(depth: torch.Tensor) -> torch.Tensor:
    """The observed table's depth per image (the median pixel): N."""
    return depth.flatten(1).median(1).values


def grasp_depths(
    depth: torch.Tensor, centres: torch.Tensor, fractions: torch.Tensor
) -> torch.Tensor:
    """z = top + f·(table − top) for centres N×M×2 (pixels) and fractions (broadcast to N×M),
    with `top` the observed depth at the centre (bilinear) and `table` the image's median."""
    n, m = centres.shape[:2]
    h, w = depth.shape[-2:]
    grid = torch.stack([(2 * centres[..., 0] + 1) / w - 1, (2 * centres[..., 1] + 1) / h - 1], -1)
    top = F.grid_sample(depth, grid[:, None], mode="bilinear", padding_mode="border",
                        align_corners=False)[:, 0, 0]  # fmt: skip
    table = table_depth(depth)[:, None]
    return top + fractions * (table - top)


def _pixels(index: torch.Tensor, width: int) -> torch.Tensor:
    return torch.stack([index % width, index // width], -1).float()


def antipodal_candidates(
    depth: torch.Tensor,
    pairs: int = 256,
    *,
    seed: int = 0,
    friction: float = 0.8,
    gripper: Gripper = Gripper(),
    edge_threshold: float = EDGE_THRESHOLD,
    fraction: float | torch.Tensor = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Antipodal candidates from depth edges (see the module docstring): `pairs` random pairs of
    edge pixels per image; returns grasps N×pairs×4 (x, y, θ in [0, π), z at `fraction`) and which
    pairs are antipodal (N×pairs). Images without edges give no valid pair."""
    positive_int("antipodal_candidates", "pairs", pairs)
    n, _, h, w = depth.shape
    g = torch.Generator(device=depth.device).manual_seed(seed)
    grad = depth_gradients(depth)
    magnitude = grad.norm(dim=1).flatten(1)
    edges = magnitude > edge_threshold
    weights = edges.float() + 1e-12  # multinomial needs a positive sum
    i1 = torch.multinomial(weights, pairs, replacement=True, generator=g)
    i2 = torch.multinomial(weights, pairs, replacement=True, generator=g)
    p1, p2 = _pixels(i1, w), _pixels(i2, w)
    normals = grad.flatten(2) / magnitude.clamp_min(1e-12)[:, None]  # N×2×HW
    n1 = normals.gather(2, i1[:, None].expand(-1, 2, -1)).transpose(1, 2)
    n2 = normals.gather(2, i2[:, None].expand(-1, 2, -1)).transpose(1, 2)
    d = p2 - p1
    dist = d.norm(dim=-1)
    u = d / dist.clamp_min(1e-12)[..., None]
    cos_cone = math.cos(math.atan(friction))
    valid = (
        edges.gather(1, i1)
        & edges.gather(1, i2)
        & ((n2 * u).sum(-1) > cos_cone)
        & ((-n1 * u).sum(-1) > cos_cone)
        & (dist > 2)
        & (dist < gripper.max_width - 2 * gripper.finger_depth)
    )
    centres = (p1 + p2) / 2
    theta = torch.atan2(u[..., 1], u[..., 0]) % math.pi
    fraction = torch.as_tensor(fraction, dtype=depth.dtype, device=depth.device)
    z = grasp_depths(depth, centres, fraction.expand(n, pairs))
    return torch.cat([centres, theta[..., None], z[..., None]], -1), valid


def random_candidates(
    depth: torch.Tensor, count: int, *, seed: int = 0, fraction: float | torch.Tensor = 0.5,
    margin: float = 0.005,
) -> torch.Tensor:  # fmt: skip
    """Random grasps N×count×4: centres at uniformly drawn foreground pixels (observed depth at
    least `margin` above the table; any pixel when there is none) plus uniform sub-pixel jitter,
    angles uniform in [0, π), depth at `fraction` (a number or N×count)."""
    positive_int("random_candidates", "count", count)
    n, _, h, w = depth.shape
    g = torch.Generator(device=depth.device).manual_seed(seed)
    fg = (depth.flatten(1) < table_depth(depth)[:, None] - margin).float() + 1e-9
    idx = torch.multinomial(fg, count, replacement=True, generator=g)
    centres = _pixels(idx, w) + torch.rand(n, count, 2, generator=g, device=depth.device) - 0.5
    theta = torch.rand(n, count, generator=g, device=depth.device) * math.pi
    fraction = torch.as_tensor(fraction, dtype=depth.dtype, device=depth.device)
    z = grasp_depths(depth, centres, fraction.expand(n, count))
    return torch.cat([centres, theta[..., None], z[..., None]], -1)


def score(
    net: GQCNN, depth: torch.Tensor, grasps: torch.Tensor, fractions=DEPTH_FRACTIONS
) -> tuple[torch.Tensor, torch.Tensor]:
    """GQ-CNN scores of grasps N×M×(≥3), each tried at every depth fraction: the best score
    (N×M) and the grasps with the depth that got it (N×M×4)."""
    n, m = grasps.shape[:2]
    f = torch.tensor(fractions, dtype=depth.dtype, device=depth.device)
    xyt = grasps[..., :3]
    z = grasp_depths(depth, xyt[..., :2].repeat(1, len(f), 1), f.repeat_interleave(m).expand(n, -1))
    z = z.reshape(n, len(f), m)
    flat = xyt.reshape(n * m, 3)
    index = torch.arange(n, device=depth.device).repeat_interleave(m)
    crops = aligned_crops(depth, flat, net.crop, index=index)
    p = net.probability(crops, z.permute(0, 2, 1).reshape(n * m, len(f))).reshape(n, m, len(f))
    best, which = p.max(-1)
    zbest = z.permute(0, 2, 1).gather(2, which[..., None])  # N×M×1
    return best, torch.cat([xyt, zbest], -1)


def elites(samples: torch.Tensor, scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top `fraction` of samples N×S×D by score N×S (at least one): N×E×D."""
    probability("elites", "fraction", fraction)
    e = max(1, math.ceil(fraction * samples.shape[1]))
    top = scores.topk(e, dim=1).indices
    return samples.gather(1, top[..., None].expand(-1, -1, samples.shape[-1]))


def fit_gmm(points: torch.Tensor, components: int = 3, iterations: int = 10, eps: float = 1e-3):
    """A diagonal Gaussian mixture per batch element fitted by EM to points N×E×D: weights N×K,
    means N×K×D, variances N×K×D. Means start at evenly spaced points of the (score-ranked)
    input; variances at the points' variance. After any M-step Σ_k π_k μ_k is the points' mean."""
    n, e, d = points.shape
    k = integer("fit_gmm", "components", components, low=1)
    k = min(k, e)
    start = torch.linspace(0, e - 1, k, device=points.device).round().long()
    means = points[:, start]
    var = points.var(1, unbiased=False, keepdim=True).expand(n, k, d) + eps
    weights = torch.full((n, k), 1 / k, device=points.device, dtype=points.dtype)
    for _ in range(iterations):
        diff = points[:, :, None] - means[:, None]  # N×E×K×D
        log_p = -0.5 * (diff**2 / var[:, None] + var[:, None].log() + math.log(2 * math.pi)).sum(-1)
        resp = (log_p + weights[:, None].log()).softmax(-1)  # N×E×K
        mass = resp.sum(1)  # N×K
        weights = mass / e
        means = (resp[..., None] * points[:, :, None]).sum(1) / mass.clamp_min(1e-12)[..., None]
        diff = points[:, :, None] - means[:, None]
        var = (resp[..., None] * diff**2).sum(1) / mass.clamp_min(1e-12)[..., None] + eps
    return weights, means, var


def sample_gmm(weights, means, var, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` samples per batch element from diagonal mixtures: N×count×D."""
    comp = torch.multinomial(weights.clamp_min(1e-12), count, replacement=True, generator=generator)
    d = means.shape[-1]
    mu = means.gather(1, comp[..., None].expand(-1, -1, d))
    sd = var.gather(1, comp[..., None].expand(-1, -1, d)).sqrt()
    noise = torch.randn(mu.shape, generator=generator, device=mu.device)
    return mu + sd * noise


def cem_plan(
    net: GQCNN,
    depth: torch.Tensor,
    *,
    samples: int = 100,
    iterations: int = 3,
    elite_fraction: float = 0.25,
    components: int = 3,
    seed: int = 0,
    gripper: Gripper = Gripper(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dex-Net 2.0's cross-entropy planner, batched over images: the best grasp per image (N×4)
    and its GQ-CNN score (N). Round 0 scores antipodal candidates (random foreground grasps where
    an image has too few); each later round resamples (x, y, θ) from the mixture fitted to the
    last round's elites."""
    positive_int("cem_plan", "samples", samples)
    integer("cem_plan", "iterations", iterations, low=0)
    g = torch.Generator(device=depth.device).manual_seed(seed)
    n, _, h, w = depth.shape
    cand, valid = antipodal_candidates(depth, samples * 4, seed=seed, gripper=gripper)
    fallback = random_candidates(depth, samples, seed=seed + 1)
    # the first `samples` valid antipodal pairs of each image, random ones after them
    order = valid.float() + torch.rand(valid.shape, generator=g, device=depth.device) * 0.5
    top = order.topk(samples, dim=1)
    picked = cand.gather(1, top.indices[..., None].expand(-1, -1, 4))
    use = (top.values >= 1)[..., None]
    current = torch.where(use, picked, fallback)[..., :3]
    scores, graded = score(net, depth, current)
    for _ in range(iterations):
        elite = elites(current, scores, elite_fraction)
        weights, means, var = fit_gmm(elite, components)
        current = sample_gmm(weights, means, var, samples, g)
        current = torch.stack(
            [current[..., 0].clamp(0, w - 1), current[..., 1].clamp(0, h - 1),
             current[..., 2] % math.pi], -1,
        )  # fmt: skip
        scores, graded = score(net, depth, current)
    best = scores.argmax(1)
    chosen = graded[torch.arange(n), best]
    return chosen, scores[torch.arange(n), best]
