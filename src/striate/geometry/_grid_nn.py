"""Exact nearest neighbours of 3D points through a uniform grid, vectorised, for large clouds.

The references y are binned into cubic cells of side h (every cloud of a batch in its own copy of
one grid) and sorted by cell. Each query x compares itself with the references of the 3×3×3 block
of cells around its own: the nearest found there, at distance d, is the nearest of all when d is
at most the distance from x to the block's outside, h + min over the axes of x's distance to its
own cell's faces, since a reference outside the block differs from x by at least that much along
some axis. The queries this does not certify (no reference in the block, or one too far:
clustered or distant points) are left to the brute force. h is chosen so that a reference's cell
holds 2–4 references on average (`LOAD`): the cloud's volume alone would make the cells too small
for points on a surface (a thin shell of the grid) and too large for a dense core (a Gaussian's);
only occupied cells are stored.

Only the search is here; `metrics.nearest_neighbors` recomputes the chosen distances
differentiably.
"""

from __future__ import annotations

import torch

LOAD = (2.0, 4.0)  # how many references a reference's cell should hold on average
MAX_PAIRS = 1 << 23  # (query, candidate) pairs compared at once
NONE = torch.iinfo(torch.long).max
# how many times more pairs a second the brute force's matrix products compare than the gathers
# here (measured on a 2-core CPU: about 75): a grid that compares more than B·N·M / BRUTE_SPEEDUP
# pairs is slower than the brute force
BRUTE_SPEEDUP = 100
OFFSETS = torch.tensor(
    [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=torch.long
)


class Grid:
    """The references of B clouds (B, M, 3) in cells of side `h`: their coordinates sorted by
    cell (`points`, `order` maps back), and for each occupied cell (its key, ascending) the
    position of its first reference and their count."""

    def __init__(self, y: torch.Tensor, coarser: float = 1.0) -> None:
        b, m, _ = y.shape
        self.lo = y.amin((0, 1))
        extent = (y.amax((0, 1)) - self.lo).double()
        # a scale for the rounding slack of the certificate: coordinates are this large at most
        self.scale = float(torch.maximum(self.lo.abs(), self.lo.abs() + extent).max()) or 1.0
        self.h = self._cell_side(y[0] - self.lo, extent, m, b) * coarser
        cells = self.cell(y)
        # the grid as the references were binned (rounding may put the farthest one a cell on)
        self.dims = cells.amax((0, 1)) + 1
        self.cells = int(self.dims.prod())
        key = self._flat(cells, torch.arange(b, device=y.device)[:, None]).reshape(-1)
        self.order = key.argsort(stable=True)
        self.points = y.reshape(-1, 3)[self.order]
        self.keys, self.count = torch.unique_consecutive(key[self.order], return_counts=True)
        self.start = self.count.cumsum(0) - self.count
        self.dense = b * self.cells <= 8 * b * m  # then a direct table beats a binary search
        if self.dense:
            self.first = torch.zeros(b * self.cells + 1, dtype=torch.long, device=y.device)
            self.many = torch.zeros_like(self.first)  # the last entry: cells outside the grid
            self.first[self.keys], self.many[self.keys] = self.start, self.count

    def _cell_side(self, sample: torch.Tensor, extent: torch.Tensor, m: int, b: int) -> float:
        """The side at which a reference of the first cloud (`sample`, relative to the grid's
        corner) shares its cell with LOAD references on average (Σ count² / M, so that dense
        regions decide): from the bounding volume, shrunk or grown by √2 until it does (or until
        B grids' cells would overflow an int64 key)."""
        longest = float(extent.max()) or 1.0
        volume = float(extent.clamp_min(longest * 1e-3).prod())
        h = (volume * LOAD[0] / m) ** (1 / 3)
        direction = 0
        for _ in range(64):
            dims = (extent / h).floor().long() + 2
            if float(dims.double().prod()) * b >= 2.0**60:
                h *= 2.0 ** (1 / 2)
                continue
            cells = (sample / h).floor().long().clamp_min(0).minimum(dims - 1)
            flat = cells[:, 0] + dims[0] * (cells[:, 1] + dims[1] * cells[:, 2])
            load = float((torch.unique(flat, return_counts=True)[1].double() ** 2).sum()) / m
            step = -1 if load > LOAD[1] else 1 if load < LOAD[0] and h < longest else 0
            if step == 0 or step == -direction:
                break
            direction = step
            h *= 2.0 ** (step / 2)
        return h

    def cell(self, p: torch.Tensor) -> torch.Tensor:
        """Integer cell coordinates (…, 3) of points; far outside the grid, clamped (still
        outside) so that they cannot overflow."""
        return ((p - self.lo) / self.h).floor().clamp(-2, 2.0**40).long()

    def _flat(self, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """A key for cell (…, 3) of cloud `batch`, unique over the B grids; -1 outside."""
        dims = self.dims.to(cell.device)
        inside = ((cell >= 0) & (cell < dims)).all(-1)
        flat = cell[..., 0] + dims[0] * (cell[..., 1] + dims[1] * cell[..., 2])
        return torch.where(inside, batch * self.cells + flat, -1)

    def lookup(self, cell: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first position and the count of the references in cell (…, 3) of cloud `batch`
        (count 0 where it holds none)."""
        key = self._flat(cell, batch)
        if self.dense:
            return self.first[key], self.many[key]  # key -1: the last entry, count 0
        at = torch.searchsorted(self.keys, key).clamp_max(len(self.keys) - 1)
        hit = self.keys[at] == key
        return self.start[at], torch.where(hit, self.count[at], 0)


def grid_nearest(
    x: torch.Tensor, y: torch.Tensor, coarser: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For queries x (B, N, 3) and references y (B, M, 3): the index (B, N) of each query's
    nearest reference found in its block of cells, and whether that is certified the nearest of
    all (B, N) bool. Uncertified indices are 0. `coarser` multiplies the cells' side (for the
    queries of sparse regions that the first grid left uncertified). None when the blocks hold
    more than B·N·M / BRUTE_SPEEDUP pairs (clustered clouds, a batch of clouds of very different
    sizes sharing the first one's cells, coarse cells): the brute force is then quicker."""
    if x.dtype not in (torch.float32, torch.float64):
        x, y = x.float(), y.float()
    b, n, _ = x.shape
    m = y.shape[1]
    grid = Grid(y, coarser)
    flat = x.reshape(-1, 3)
    batch = torch.arange(b, device=x.device).repeat_interleave(n)
    own = grid.cell(flat)
    first, count = grid.lookup(own[:, None] + OFFSETS.to(x.device), batch[:, None])  # (B·N, 27)
    pairs = count.sum(1)
    if int(pairs.sum()) > b * n * m // BRUTE_SPEEDUP:
        return None
    best = torch.full((b * n,), float("inf"), dtype=torch.float64, device=x.device)
    index = torch.zeros(b * n, dtype=torch.long, device=x.device)
    for lo, hi in _chunks(pairs, MAX_PAIRS):  # the pairs vectorised, a chunk at a time
        counts = count[lo:hi].reshape(-1)
        total = int(counts.sum())
        if total == 0:
            continue
        query = torch.arange(hi - lo, device=x.device).repeat_interleave(27)
        query = query.repeat_interleave(counts)
        # each pair's position in the sorted references: its cell's first plus its rank there
        shift = (first[lo:hi].reshape(-1) - (counts.cumsum(0) - counts)).repeat_interleave(counts)
        position = torch.arange(total, device=x.device) + shift
        d2 = ((flat[lo:hi][query] - grid.points[position]) ** 2).sum(-1, dtype=torch.float32)
        # (distance, position) in one int64 that orders as the pair does (a non-negative
        # float32's bits order as its value): one minimum finds each query's nearest
        key = (d2.view(torch.int32).long() << 32) | position
        least = torch.full((hi - lo,), NONE, dtype=torch.long, device=x.device)
        least.scatter_reduce_(0, query, key, "amin")
        found = least != NONE
        near = (least >> 32).int().view(torch.float32).double()
        best[lo:hi] = torch.where(found, near, float("inf"))
        index[lo:hi] = grid.order[torch.where(found, least & 0xFFFFFFFF, 0)] - batch[lo:hi] * m
    frac = (flat.double() - grid.lo.double()) / grid.h - own.double()
    to_face = torch.minimum(frac, 1 - frac).clamp(0, 1).amin(-1)
    outside = grid.h * (1 + to_face) - 1e-6 * grid.scale  # rounding slack of x, lo and h
    certified = best.sqrt() <= outside
    index = torch.where(certified, index, 0)
    return index.view(b, n), certified.view(b, n)


def _chunks(sizes: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Consecutive ranges of rows whose sizes add up to at most `budget` (a row alone may exceed
    it)."""
    ends = sizes.cumsum(0)
    bounds, lo, done = [], 0, 0
    while lo < len(sizes):
        hi = max(int(torch.searchsorted(ends, done + budget, right=True)), lo + 1)
        bounds.append((lo, hi))
        done, lo = int(ends[hi - 1]), hi
    return bounds
