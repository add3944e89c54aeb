"""Metrics between 3D shapes (lecture 11, "Metrics"): voxel IoU, Chamfer distance, F1@t and
normal consistency.

    chamfer_distance(pred, gt)                   # (B,) or a scalar: squared NN distances, both ways
    f_score(pred, gt, t=0.1)                     # (f1, precision, recall)
    normal_consistency(pred, pred_n, gt, gt_n)   # mean |cos| to the nearest neighbour's normal
    voxel_iou(pred_grid, gt_grid)

Point clouds are (N, 3) or batched (B, N, 3) against (B, M, 3). Large 3D clouds are searched
through a uniform grid whose answers are certified nearest (`_grid_nn`); the rest by brute force,
the N×M distances computed a chunk of rows at a time (at most `chunk_bytes` of distances at once,
64 MiB by default), so two 10^5-point clouds fit in memory; inside a chunk it is one matrix
product (‖x‖² − 2x·y + ‖y‖², about y's centre). That ranking carries float32 rounding of about
1e-7·‖y − centre‖²: where candidates are closer than that (points far from the centre of a cloud
much larger than their spacing) the brute force may pick a neighbour that much farther than the
nearest. The chosen neighbour's distance is then recomputed as ‖x − y_j‖², which is exact (zero
for equal points) and differentiable in both clouds.
"""

from __future__ import annotations

import torch

from striate.checks import positive_number
from striate.errors import InputError
from striate.geometry._grid_nn import grid_nearest

CHUNK_BYTES = 64 * 2**20
GRID_MIN_PAIRS = 1 << 22  # below, the brute force is as quick as building a grid


def _batched(
    x: torch.Tensor, y: torch.Tensor, owner: str
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    if x.dim() != y.dim() or x.dim() not in (2, 3) or x.shape[-1] != y.shape[-1]:
        raise InputError(
            f"{owner}: point clouds must both be (N, D) or both (B, N, D) with the same D, got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.dim() == 3 and len(x) != len(y):
        raise InputError(f"{owner}: batch sizes differ: {len(x)} and {len(y)}")
    if x.shape[-2] == 0 or y.shape[-2] == 0:
        raise InputError(
            f"{owner}: point clouds must not be empty, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    single = x.dim() == 2
    return (x[None], y[None], True) if single else (x, y, False)


def nearest_neighbors(
    x: torch.Tensor, y: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each point of x (B, N, D) its nearest point in y (B, M, D): the squared distances
    (B, N), differentiable in x and y, and the indices (B, N) int64. (N, D) and (M, D) work too.

    3D clouds (not float64) with N·M ≥ GRID_MIN_PAIRS are searched through a grid (`_grid_nn`);
    the queries it does not certify, and every other case, by the brute force."""
    x3, y3, single = _batched(x, y, "nearest_neighbors")
    b, n, d = x3.shape
    with torch.no_grad():
        xd, yd = x3.detach(), y3.detach()
        gridded = d == 3 and n * y3.shape[1] >= GRID_MIN_PAIRS and xd.dtype != torch.float64
        found = grid_nearest(xd, yd) if gridded and _finite(xd, yd) else None
        if found is None:
            idx = _brute_nearest(xd, yd, chunk_bytes)
        else:
            idx, certified = found
            for coarser in (4.0, 16.0, None):  # sparse regions' queries: coarser cells, then all
                left = int((~certified).sum(1).max())
                if not left:
                    break
                # each cloud's uncertified queries first, searched together
                rows = (~certified).long().argsort(dim=1, descending=True, stable=True)[:, :left]
                queries = torch.gather(xd, 1, rows[..., None].expand(-1, -1, d))
                redo = ~torch.gather(certified, 1, rows)
                if coarser is None:
                    sub, ok = _brute_nearest(queries, yd, chunk_bytes), redo
                else:
                    again = grid_nearest(queries, yd, coarser)
                    if again is None:
                        continue
                    sub, ok = again[0], redo & again[1]
                idx.scatter_(1, rows, torch.where(ok, sub, torch.gather(idx, 1, rows)))
                certified.scatter_(1, rows, ok | ~redo)
    nearest = torch.gather(y3, 1, idx[..., None].expand(-1, -1, y3.shape[-1]))
    d2 = ((x3 - nearest) ** 2).sum(-1)
    return (d2[0], idx[0]) if single else (d2, idx)


def _finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _brute_nearest(
    x: torch.Tensor, y: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> torch.Tensor:
    """The index (B, N) of each x's nearest y, from all the distances, a chunk of rows at once."""
    b, n, _ = x.shape
    m = y.shape[1]
    rows = max(1, int(chunk_bytes) // (4 * b * m))
    centre = y.mean(1, keepdim=True)  # ‖y‖² − 2x·y loses less to rounding about the cloud
    x, y = x - centre, y - centre
    y2 = (y * y).sum(-1)[:, None, :]  # (B, 1, M)
    parts = []
    # one buffer for every chunk: no allocation churn (striate.allocator turns malloc's mmap off,
    # under which freed 64 MiB blocks fragment the heap)
    buf = torch.empty(b * min(rows, n) * m, dtype=x.dtype, device=x.device)
    for start in range(0, n, rows):  # a chunk of rows at a time; vectorised inside
        xc = x[:, start : start + rows]
        d2 = buf[: b * xc.shape[1] * m].view(b, xc.shape[1], m)
        torch.baddbmm(y2, xc, y.transpose(1, 2), alpha=-2, out=d2)  # ‖y‖² − 2x·y
        parts.append(d2.argmin(-1))  # + ‖x‖² is the same for the whole row
    return torch.cat(parts, 1)


def chamfer_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    squared: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """The symmetric Chamfer distance (Fan et al. 2017, eq. 1):
    1/|x| Σ_i min_j ‖x_i − y_j‖² + 1/|y| Σ_j min_i ‖x_i − y_j‖², per cloud (B,) or a scalar for
    unbatched clouds. `squared=False` averages the (unsquared) distances instead (the form of
    F-score papers and of scipy's KD-tree distances). Differentiable in both clouds."""
    d_xy, _ = nearest_neighbors(x, y, chunk_bytes)
    d_yx, _ = nearest_neighbors(y, x, chunk_bytes)
    if not squared:
        d_xy, d_yx = _sqrt(d_xy), _sqrt(d_yx)
    return d_xy.mean(-1) + d_yx.mean(-1)


def _sqrt(d2: torch.Tensor) -> torch.Tensor:
    """√d² with a zero (not NaN) gradient at coincident points."""
    safe = torch.where(d2 > 0, d2, torch.ones_like(d2))
    return torch.where(d2 > 0, safe.sqrt(), torch.zeros_like(d2))


def f_score(
    pred: torch.Tensor, gt: torch.Tensor, t: float, chunk_bytes: int = CHUNK_BYTES
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F1@t (Tatarchenko et al. 2019, "What do single-view 3D reconstruction networks learn?",
    §4; the lecture's formula is truncated): precision@t is the fraction of predicted points within
    distance t of the ground truth, recall@t the fraction of ground-truth points within t of the
    prediction, F1@t = 2·P·R / (P + R) (0 when both are 0). Returns (f1, precision, recall), each
    (B,) or a scalar."""
    t = positive_number("f_score", "t", t, error=InputError)
    d_pg, _ = nearest_neighbors(pred, gt, chunk_bytes)
    d_gp, _ = nearest_neighbors(gt, pred, chunk_bytes)
    precision = (d_pg.detach() <= t * t).float().mean(-1)
    recall = (d_gp.detach() <= t * t).float().mean(-1)
    total = precision + recall
    f1 = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-12), 0.0)
    return f1, precision, recall


def normal_consistency(
    x: torch.Tensor,
    x_normals: torch.Tensor,
    y: torch.Tensor,
    y_normals: torch.Tensor,
    chunk_bytes: int = CHUNK_BYTES,
) -> torch.Tensor:
    """The mean |cos| between each point's normal and its nearest neighbour's normal in the other
    cloud, averaged over both directions (Mescheder et al. 2019, Occupancy Networks, §4: 1 for
    matching surfaces, orientation-blind). (B,) or a scalar."""
    if x_normals.shape != x.shape or y_normals.shape != y.shape:
        raise InputError(
            f"normal_consistency: normals must have their points' shapes, got {tuple(x.shape)} "
            f"with {tuple(x_normals.shape)} and {tuple(y.shape)} with {tuple(y_normals.shape)}"
        )

    def one_way(p, pn, q, qn):
        _, idx = nearest_neighbors(p, q, chunk_bytes)
        other = torch.gather(qn, -2, idx[..., None].expand(*idx.shape, qn.shape[-1]))
        a = pn / pn.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        b = other / other.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (a * b).sum(-1).abs().mean(-1)

    return (one_way(x, x_normals, y, y_normals) + one_way(y, y_normals, x, x_normals)) / 2


def voxel_iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Intersection over union of occupancy grids (…, R, R, R) (bool, or floats thresholded at
    0.5), per grid: |pred ∧ gt| / |pred ∨ gt|, 1 when both are empty."""
    if pred.shape != gt.shape or pred.dim() < 3:
        raise InputError(
            f"voxel_iou: grids must have the same shape (…, R, R, R), got {tuple(pred.shape)} "
            f"and {tuple(gt.shape)}"
        )
    p = pred if pred.dtype == torch.bool else pred >= 0.5
    g = gt if gt.dtype == torch.bool else gt >= 0.5
    inter = (p & g).flatten(-3).sum(-1).float()
    union = (p | g).flatten(-3).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), 1.0)
