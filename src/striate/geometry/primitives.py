"""Synthetic 3D primitives in four representations: surface point clouds (with normals), triangle
meshes, voxel grids and signed distance functions (what the depth renderer ray-casts).

    points, normals = sample_surface("torus", 2048, seed=0)
    vertices, faces = icosphere(3)                       # 642 vertices, 1280 faces
    grid = voxel_grid("cylinder", 32)                    # 32×32×32 bool occupancy
    grid, lo, hi = voxelize(points, 32)                  # a point cloud's occupied cells

Canonical sizes (all centred on the origin, z up): sphere radius 1; box half-extents 1 (a cube of
side 2; `half=(a, b, c)` for others); cylinder radius 1 and height 2 along z, with caps; torus of
major radius 1 and minor radius 0.35 in the xy-plane; icosphere of radius 1 (`subdivisions`
times subdivided icosahedron, Pixel2Mesh's initial mesh: Wang et al. 2018, §3.1). Surface
samples are uniform by area; every draw takes a seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from striate.checks import integer, one_of, positive_int
from striate.errors import InputError

SHAPES = ("sphere", "box", "cylinder", "torus", "icosphere")
TORUS_MINOR = 0.35


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(integer("geometry", "seed", seed, error=InputError))


def _shape(name: str) -> str:
    return one_of("geometry", "shape", name, SHAPES, error=InputError)


def _half(half: float | Sequence[float]) -> torch.Tensor:
    h = torch.as_tensor(half, dtype=torch.float32).expand(3).clone()
    if not bool((h > 0).all()):
        raise InputError(f"geometry: box half-extents must be positive, got {half!r}")
    return h


# ---------------------------------------------------------------------------------------- meshes


def icosahedron() -> tuple[torch.Tensor, torch.Tensor]:
    """The regular icosahedron on the unit sphere: vertices (12, 3) float32, faces (20, 3) int64,
    counter-clockwise seen from outside (normals point out)."""
    p = (1 + math.sqrt(5)) / 2
    v = torch.tensor(
        [[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p],
         [0, -1, -p], [0, 1, -p], [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]],
        dtype=torch.float32,
    )  # fmt: skip
    f = torch.tensor(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=torch.int64,
    )  # fmt: skip
    return v / v.norm(dim=1, keepdim=True), f


def subdivide(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Loop-style 1→4 split of every triangle at its edge midpoints (no smoothing); each edge's
    midpoint is made once, shared by the two faces beside it."""
    v, f = vertices, faces
    edges = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])  # (3F, 2): face k's edges
    key = edges.sort(dim=1).values
    unique, inverse = torch.unique(key, dim=0, return_inverse=True)
    mids = (v[unique[:, 0]] + v[unique[:, 1]]) / 2
    m = (inverse + len(v)).view(3, -1)  # midpoint index of edge (01, 12, 20) per face
    a, b, c = f.unbind(1)
    m01, m12, m20 = m
    new_faces = torch.cat(
        [
            torch.stack([a, m01, m20], 1),
            torch.stack([b, m12, m01], 1),
            torch.stack([c, m20, m12], 1),
            torch.stack([m01, m12, m20], 1),
        ]
    )
    return torch.cat([v, mids]), new_faces


def icosphere(subdivisions: int = 2, radius: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """An icosahedron subdivided `subdivisions` times, its vertices pushed onto the sphere:
    10·4^s + 2 vertices and 20·4^s faces."""
    s = integer("icosphere", "subdivisions", subdivisions, low=0, high=7, error=InputError)
    v, f = icosahedron()
    for _ in range(s):
        v, f = subdivide(v, f)
        v = v / v.norm(dim=1, keepdim=True)
    return v * radius, f


def _grid_faces(rows: int, cols: int, wrap_rows: bool, wrap_cols: bool = True) -> torch.Tensor:
    """Two triangles per cell of a rows×cols vertex grid (vertex i·cols + j), the rows and columns
    wrapping around when asked."""
    i, j = torch.meshgrid(
        torch.arange(rows if wrap_rows else rows - 1),
        torch.arange(cols if wrap_cols else cols - 1),
        indexing="ij",
    )
    i2, j2 = (i + 1) % rows, (j + 1) % cols
    a, b, c, d = i * cols + j, i * cols + j2, i2 * cols + j2, i2 * cols + j
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([a, c, d], -1)], -2).reshape(-1, 3)


def mesh(
    shape: str, detail: int = 2, half: float | Sequence[float] = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A triangle mesh of a primitive: vertices (V, 3) float32, faces (F, 3) int64, outward
    normals. `detail` is the icosphere's subdivisions, the box's subdivisions per edge (2^detail
    squares a side), the cylinder's and torus's resolution (8·2^detail segments around)."""
    shape = _shape(shape)
    d = integer("mesh", "detail", detail, low=0, high=6, error=InputError)
    if shape in ("sphere", "icosphere"):
        return icosphere(d)
    if shape == "box":
        k = 2**d + 1
        t = torch.linspace(-1, 1, k)
        u, w = torch.meshgrid(t, t, indexing="ij")
        u, w = u.reshape(-1), w.reshape(-1)
        one = torch.ones_like(u)
        verts, faces = [], []
        quads = _grid_faces(k, k, False, False)
        for axis in range(3):
            for sign in (1.0, -1.0):
                p = torch.zeros(len(u), 3)
                p[:, axis] = sign * one
                p[:, (axis + 1) % 3] = u
                p[:, (axis + 2) % 3] = w
                f = quads[:, [0, 2, 1]] if sign > 0 else quads
                faces.append(f + sum(len(x) for x in verts))
                verts.append(p)
        v = torch.cat(verts) * _half(half)
        return v, torch.cat(faces)
    n = 8 * 2**d
    theta = torch.arange(n) * (2 * math.pi / n)
    if shape == "torus":
        phi = torch.arange(n // 2) * (2 * math.pi / (n // 2))
        p, t = torch.meshgrid(phi, theta, indexing="ij")
        ring = 1 + TORUS_MINOR * torch.cos(p)
        v = torch.stack([ring * torch.cos(t), ring * torch.sin(t), TORUS_MINOR * torch.sin(p)], -1)
        return v.reshape(-1, 3), _grid_faces(n // 2, n, True)
    # cylinder: side rings at z = -1 and 1, then a centre vertex per cap
    rows = max(2, 2**d + 1)
    z = torch.linspace(-1, 1, rows)
    zz, t = torch.meshgrid(z, theta, indexing="ij")
    side = torch.stack([torch.cos(t), torch.sin(t), zz], -1).reshape(-1, 3)
    faces = [_grid_faces(rows, n, False)]
    centres = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    j = torch.arange(n)
    bottom = torch.stack([torch.full_like(j, len(side)), (j + 1) % n, j], 1)
    top_row = (rows - 1) * n
    top = torch.stack([torch.full_like(j, len(side) + 1), top_row + j, top_row + (j + 1) % n], 1)
    faces += [bottom, top]
    return torch.cat([side, centres]), torch.cat(faces)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit normals (F, 3) of the faces and their areas (F,)."""
    a, b, c = vertices[faces].unbind(-2)
    cross = torch.linalg.cross(b - a, c - a)
    norm = cross.norm(dim=-1)
    return cross / norm.clamp_min(1e-12).unsqueeze(-1), norm / 2


def sample_mesh(
    vertices: torch.Tensor, faces: torch.Tensor, n: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points uniform by area on a mesh's surface and the normals of their faces. The faces
    and barycentric weights are drawn without gradient; the points are differentiable in
    `vertices` (so a Chamfer loss on them moves the mesh)."""
    positive_int("sample_mesh", "n", n, error=InputError)
    g = _generator(seed)
    with torch.no_grad():
        _, area = face_normals(vertices, faces)
        idx = torch.multinomial(area.float().cpu(), n, replacement=True, generator=g)
        r1, r2 = torch.rand(2, n, 1, generator=g)
        s = r1.sqrt()  # Osada et al. 2002, "Shape distributions", eq. 1
        w = torch.cat([1 - s, s * (1 - r2), s * r2], 1).to(vertices)
        idx = idx.to(vertices.device)
    tri = vertices[faces[idx]]  # (n, 3, 3)
    points = (w.unsqueeze(-1) * tri).sum(1)
    normals, _ = face_normals(vertices, faces[idx])
    return points, normals


# ------------------------------------------------------------------------- surface point clouds


def sample_surface(
    shape: str,
    n: int,
    seed: int = 0,
    *,
    half: float | Sequence[float] = 1.0,
    subdivisions: int = 2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` points uniform by area on a primitive's surface, (n, 3) float32, and the outward unit
    normals there (n, 3). `half` sizes the box; `subdivisions` the icosphere."""
    shape = _shape(shape)
    n = positive_int("sample_surface", "n", n, error=InputError)
    g = _generator(seed)
    if shape == "sphere":
        p = torch.randn(n, 3, generator=g)
        p = p / p.norm(dim=1, keepdim=True)
        return p, p.clone()
    if shape == "icosphere":
        v, f = icosphere(subdivisions)
        return sample_mesh(v, f, n, seed)
    if shape == "box":
        h = _half(half)
        areas = torch.stack([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat_interleave(2)
        face = torch.multinomial(areas, n, replacement=True, generator=g)  # axis 0+,0-,1+,...
        axis, sign = face // 2, 1.0 - 2.0 * (face % 2)
        p = (torch.rand(n, 3, generator=g) * 2 - 1) * h
        rows = torch.arange(n)
        p[rows, axis] = sign * h[axis]
        normals = torch.zeros(n, 3)
        normals[rows, axis] = sign
        return p, normals
    if shape == "cylinder":
        side, cap = 2 * math.pi * 2, math.pi  # radius 1, height 2: side area, one cap's area
        part = torch.multinomial(torch.tensor([side, cap, cap]), n, replacement=True, generator=g)
        t = torch.rand(n, generator=g) * 2 * math.pi
        rad = torch.where(part == 0, 1.0, torch.rand(n, generator=g).sqrt())
        z_side = torch.rand(n, generator=g) * 2 - 1
        z = torch.where(part == 0, z_side, torch.where(part == 1, -1.0, 1.0))
        p = torch.stack([rad * torch.cos(t), rad * torch.sin(t), z], 1)
        normals = torch.stack(
            [
                torch.where(part == 0, torch.cos(t), 0.0),
                torch.where(part == 0, torch.sin(t), 0.0),
                torch.where(part == 0, 0.0, torch.where(part == 1, -1.0, 1.0)),
            ],
            1,
        )
        return p, normals
    # torus: the area element is r(R + r cos φ) dθ dφ, so φ is drawn by rejection in rounds
    r = TORUS_MINOR
    phis = []
    count = 0
    while count < n:
        phi = torch.rand(2 * n, generator=g) * 2 * math.pi
        keep = torch.rand(2 * n, generator=g) * (1 + r) < 1 + r * torch.cos(phi)
        phis.append(phi[keep])
        count += int(keep.sum())
    phi = torch.cat(phis)[:n]
    t = torch.rand(n, generator=g) * 2 * math.pi
    normal = torch.stack(
        [torch.cos(phi) * torch.cos(t), torch.cos(phi) * torch.sin(t), torch.sin(phi)], 1
    )
    centre = torch.stack([torch.cos(t), torch.sin(t), torch.zeros(n)], 1)
    return centre + r * normal, normal


# ------------------------------------------------------------------- signed distances and voxels


def sdf(shape: str, p: torch.Tensor, half: float | Sequence[float] = 1.0) -> torch.Tensor:
    """The signed distance (…,) from points p (…, 3) to a primitive's surface (negative inside;
    the icosphere is taken as its sphere). Inigo Quilez's formulas for the box, capped cylinder
    and torus."""
    shape = _shape(shape)
    if shape in ("sphere", "icosphere"):
        return p.norm(dim=-1) - 1
    if shape == "box":
        q = p.abs() - _half(half).to(p)
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
    if shape == "cylinder":
        q = torch.stack([p[..., :2].norm(dim=-1) - 1, p[..., 2].abs() - 1], -1)
        return q.clamp_min(0).norm(dim=-1) + q.amax(-1).clamp_max(0)
    q = torch.stack([p[..., :2].norm(dim=-1) - 1, p[..., 2]], -1)
    return q.norm(dim=-1) - TORUS_MINOR


def cell_centres(resolution: int, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The centres (R, R, R, 3) of a resolution³ grid of cells over the box [lo, hi]."""
    t = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution
    axes = [lo[k] + t * (hi[k] - lo[k]) for k in range(3)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)


def voxel_grid(
    shape: str, resolution: int = 32, bound: float = 1.5, half: float | Sequence[float] = 1.0
) -> torch.Tensor:
    """The solid occupancy (R, R, R) bool of a primitive over the cube [-bound, bound]³: a cell is
    occupied when its centre is inside (indexing [x, y, z])."""
    r = positive_int("voxel_grid", "resolution", resolution, error=InputError)
    lo = torch.full((3,), -float(bound))
    return sdf(shape, cell_centres(r, lo, -lo), half) <= 0


def voxelize(
    points: torch.Tensor,
    resolution: int = 32,
    lo: torch.Tensor | Sequence[float] | None = None,
    hi: torch.Tensor | Sequence[float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The occupancy grid of a point cloud (lecture 11, "Voxel Grid"): a cell is occupied when a
    point falls in it. `points` (N, 3) or (B, N, 3); the grid spans [lo, hi] (default the points'
    own bounding box, per cloud, cubed so cells are cubes) at `resolution` cells a side; points
    outside are dropped. Returns the grids (R, R, R) or (B, R, R, R) bool, lo and hi ((3,) or
    (B, 3)). One scatter, no loop over points."""
    r = positive_int("voxelize", "resolution", resolution, error=InputError)
    if points.dim() not in (2, 3) or points.shape[-1] != 3:
        raise InputError(f"voxelize: points must be (N, 3) or (B, N, 3), got {tuple(points.shape)}")
    single = points.dim() == 2
    p = points.unsqueeze(0) if single else points
    b = len(p)
    if lo is None or hi is None:
        pmin, pmax = p.amin(1), p.amax(1)
        centre, side = (pmin + pmax) / 2, (pmax - pmin).amax(-1, keepdim=True).clamp_min(1e-6)
        lo_t = centre - side / 2 if lo is None else torch.as_tensor(lo).to(p).expand(b, 3)
        hi_t = centre + side / 2 if hi is None else torch.as_tensor(hi).to(p).expand(b, 3)
    else:
        lo_t = torch.as_tensor(lo).to(p).expand(b, 3)
        hi_t = torch.as_tensor(hi).to(p).expand(b, 3)
    if not bool((hi_t > lo_t).all()):
        raise InputError("voxelize: hi must exceed lo on every axis")
    u = (p - lo_t[:, None]) / (hi_t - lo_t)[:, None]  # 0..1 inside the box
    cell = (u * r).floor().long()
    cell = torch.where(u == 1.0, r - 1, cell)  # the far faces belong to the last cell
    inside = ((cell >= 0) & (cell < r)).all(-1)
    batch = torch.arange(b, device=p.device)[:, None].expand_as(inside)
    flat = ((batch * r + cell[..., 0]) * r + cell[..., 1]) * r + cell[..., 2]
    grid = torch.zeros(b * r**3, dtype=torch.bool, device=p.device)
    grid[flat[inside]] = True
    grid = grid.view(b, r, r, r)
    return (grid[0], lo_t[0], hi_t[0]) if single else (grid, lo_t, hi_t)
