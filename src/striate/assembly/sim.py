"""A 2-D top-down kitting simulator: polygon pieces, a kit plate with matching cut-outs, heightmaps
and an analytic suction model (the world of Zakka et al. 2019, "Form2Fit", at small scale).

The workspace is a heightmap of `size` rows and 2·`size` columns: the kit half (columns
0..size-1) and the object half (columns size..2·size-1). Coordinates are in pixels, x along
columns and y along rows (down); pixel (row i, col j) has its centre at (j + 0.5, i + 0.5). A
pose is (x, y, θ); a shape's vertices v map to the world as c + R(θ)·v with
R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]] (in these y-down axes). Heights: floor 0, kit plate
`PLATE`, pieces `PIECE` (a piece in its hole stands on the floor).

    kit = make_kit(seed=3, size=48, pieces=3)
    state = kit.assembled(kit_pose=(24, 24, 0.4))
    hm = heightmap(kit, state)                       # 48×96 float32
    suction_piece(kit, state, torch.tensor([[20.5, 30.5]]))   # the piece a suction cup lifts
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from striate.checks import integer, positive_int

PLATE = 0.5
PIECE = 1.0


def rotation(theta: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (…, 2, 2) for angles (…) in the y-down pixel axes."""
    c, s = torch.cos(theta), torch.sin(theta)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def random_shape(
    rng: np.random.Generator, vertices: int, radius: float, concave: bool
) -> np.ndarray:
    """A random polygon (vertices×2, counter-clockwise in angle, centred on its vertex mean):
    points at sorted random angles on a circle (convex) or at random radii in [0.45, 1]·radius
    (a star-shaped, usually concave polygon)."""
    gaps = rng.uniform(0.5, 1.5, vertices)
    angles = np.cumsum(gaps) / gaps.sum() * 2 * math.pi + rng.uniform(0, 2 * math.pi)
    radii = rng.uniform(0.45, 1.0, vertices) * radius if concave else np.full(vertices, radius)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    return (pts - pts.mean(0)).astype(np.float32)


def transform(shapes: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
    """World vertices (P, V, 2) of shapes (P, V, 2) at poses (P, 3)."""
    rot = rotation(poses[:, 2])
    return torch.einsum("pij,pvj->pvi", rot, shapes) + poses[:, None, :2]


def pixel_centres(rows: int, cols: int) -> torch.Tensor:
    """The centres (rows·cols, 2) of a rows×cols grid's pixels as (x, y), row-major."""
    ys, xs = torch.meshgrid(torch.arange(rows) + 0.5, torch.arange(cols) + 0.5, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).float()


def inside(points: torch.Tensor, polygons: torch.Tensor) -> torch.Tensor:
    """Whether each point (M, 2) lies inside each polygon (P, V, 2): (P, M) bool, by the
    even–odd crossing rule, for all polygons and points at once."""
    a = polygons[:, :, None, :]  # P, V, 1, 2
    b = polygons.roll(-1, 1)[:, :, None, :]
    px, py = points[None, None, :, 0], points[None, None, :, 1]
    straddles = (a[..., 1] > py) != (b[..., 1] > py)
    dy = b[..., 1] - a[..., 1]
    safe = torch.where(dy == 0, torch.ones_like(dy), dy)
    x_cross = a[..., 0] + (py - a[..., 1]) * (b[..., 0] - a[..., 0]) / safe
    crossings = (straddles & (px < x_cross)).sum(1)
    return crossings % 2 == 1


def edge_distance(points: torch.Tensor, polygons: torch.Tensor) -> torch.Tensor:
    """The distance (P, M) from each point (M, 2) to each polygon's boundary (P, V, 2)."""
    a = polygons[:, :, None, :]
    d = polygons.roll(-1, 1)[:, :, None, :] - a
    p = points[None, None]
    t = (((p - a) * d).sum(-1) / (d * d).sum(-1).clamp_min(1e-12)).clamp(0, 1)
    return (p - a - t[..., None] * d).norm(dim=-1).amin(1)


def rasterize(
    polygons: torch.Tensor, heights: torch.Tensor | float, rows: int, cols: int
) -> torch.Tensor:
    """A rows×cols map holding, at each pixel centre, the largest height of the polygons
    (P, V, 2) that cover it (0 where none does)."""
    if len(polygons) == 0:
        return torch.zeros(rows, cols)
    cover = inside(pixel_centres(rows, cols), polygons.float()).float()  # P, rows·cols
    h = torch.as_tensor(heights, dtype=torch.float32).expand(len(polygons))
    return (cover * h[:, None]).amax(0).reshape(rows, cols)


@dataclass
class State:
    """Where the pieces are: poses (P, 3) in world pixels, and the kit's pose (3,)."""

    poses: torch.Tensor
    kit_pose: torch.Tensor

    def clone(self) -> State:
        return State(self.poses.clone(), self.kit_pose.clone())


@dataclass
class Kit:
    """A kit: the pieces' shapes (P, V, 2), their holes' poses in the kit's frame (P, 3) and the
    square plate's half side (pixels). `size` is the side of each half of the workspace."""

    shapes: torch.Tensor
    holes: torch.Tensor
    half_side: float
    size: int

    @property
    def pieces(self) -> int:
        return len(self.shapes)

    @property
    def radii(self) -> torch.Tensor:
        return self.shapes.norm(dim=-1).amax(1)

    def hole_poses(self, kit_pose: torch.Tensor) -> torch.Tensor:
        """The holes' world poses (P, 3) for a kit at `kit_pose` (x, y, θ)."""
        kit_pose = torch.as_tensor(kit_pose, dtype=torch.float32)
        xy = self.holes[:, :2] @ rotation(kit_pose[2]).T + kit_pose[:2]
        return torch.cat([xy, (self.holes[:, 2:] + kit_pose[2])], 1)

    def plate(self, kit_pose: torch.Tensor) -> torch.Tensor:
        """The plate's world corners (1, 4, 2)."""
        s = self.half_side
        square = torch.tensor([[-s, -s], [s, -s], [s, s], [-s, s]], dtype=torch.float32)
        return transform(square[None], torch.as_tensor(kit_pose, dtype=torch.float32)[None])

    def assembled(self, kit_pose: torch.Tensor | tuple[float, float, float]) -> State:
        kit_pose = torch.as_tensor(kit_pose, dtype=torch.float32)
        return State(self.hole_poses(kit_pose), kit_pose.clone())

    def random_kit_pose(self, rng: np.random.Generator) -> torch.Tensor:
        """A kit pose with the whole plate inside the kit half: any angle, the centre as far off
        the middle as the rotated plate allows."""
        theta = rng.uniform(0, 2 * math.pi)
        extent = self.half_side * (abs(math.cos(theta)) + abs(math.sin(theta)))
        room = max(self.size / 2 - extent - 0.5, 0.0)
        x, y = self.size / 2 + rng.uniform(-room, room, 2)
        return torch.tensor([x, y, theta], dtype=torch.float32)


def make_kit(
    seed: int,
    size: int = 48,
    pieces: int = 3,
    vertices: int = 7,
    radius: tuple[float, float] = (4.5, 7.0),
    concave: float = 0.5,
) -> Kit:
    """A random kit: `pieces` polygons (each concave with probability `concave`) of circumradius
    in `radius`, laid out without overlap on a square plate that fits the kit half at any angle."""
    owner = "make_kit"
    size = integer(owner, "size", size, low=24)
    pieces = positive_int(owner, "pieces", pieces)
    vertices = integer(owner, "vertices", vertices, low=3)
    rng = np.random.default_rng(seed)
    half_side = size / (2 * math.sqrt(2)) - 1.0
    for _ in range(1000):
        shapes = [
            random_shape(rng, vertices, rng.uniform(*radius), rng.random() < concave)
            for _ in range(pieces)
        ]
        r = np.array([np.linalg.norm(s, axis=1).max() for s in shapes])
        centres = np.zeros((pieces, 2))
        ok = True
        for i in range(pieces):
            for _ in range(200):
                c = rng.uniform(-half_side + r[i] + 1, half_side - r[i] - 1, 2)
                if all(np.linalg.norm(c - centres[j]) > r[i] + r[j] + 1.5 for j in range(i)):
                    centres[i] = c
                    break
            else:
                ok = False
                break
        if ok:
            holes = np.concatenate([centres, rng.uniform(0, 2 * math.pi, (pieces, 1))], 1)
            return Kit(
                torch.tensor(np.stack(shapes)),
                torch.tensor(holes, dtype=torch.float32),
                half_side,
                size,
            )
    raise ValueError(f"make_kit: cannot lay out {pieces} pieces on a {size}-pixel kit half")


def heightmap(kit: Kit, state: State) -> torch.Tensor:
    """The size×2·size top-down heightmap: the plate with its holes cut out, and the pieces."""
    rows, cols = kit.size, 2 * kit.size
    holes = transform(kit.shapes, kit.hole_poses(state.kit_pose))
    plate = rasterize(kit.plate(state.kit_pose), PLATE, rows, cols)
    cut = rasterize(holes, 1.0, rows, cols)
    pieces = rasterize(transform(kit.shapes, state.poses), PIECE, rows, cols)
    return torch.maximum(plate * (1 - cut), pieces)


def piece_masks(kit: Kit, state: State) -> torch.Tensor:
    """Each piece's footprint (P, size, 2·size) as a bool map."""
    cover = inside(pixel_centres(kit.size, 2 * kit.size), transform(kit.shapes, state.poses))
    return cover.reshape(kit.pieces, kit.size, 2 * kit.size)


def suction_piece(
    kit: Kit, state: State, points: torch.Tensor, margin: float = 1.5
) -> torch.Tensor:
    """The analytic suction model: the piece (index) a suction cup at each point (M, 2) lifts,
    or −1. A cup holds when it lands on a piece's top surface at least `margin` pixels from its
    edge (the seal needs flat surface all round); the kit plate is fixed and never lifts."""
    polygons = transform(kit.shapes, state.poses)
    points = points.float()
    ok = inside(points, polygons) & (edge_distance(points, polygons) >= margin)  # P, M
    idx = torch.arange(kit.pieces)[:, None].expand_as(ok)
    return torch.where(ok, idx, -1).amax(0)  # the last (top) piece when several


def move(pose: torch.Tensor, pick: torch.Tensor, place: torch.Tensor, turn: float) -> torch.Tensor:
    """A piece's pose after a suction cup at `pick` carries it to `place` turning it by `turn`
    (radians) about the cup: the cup's point on the piece ends at `place`."""
    centre = place + rotation(torch.tensor(turn, dtype=torch.float32)) @ (pose[:2] - pick)
    return torch.cat([centre, (pose[2:] + turn)])


def angle_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a − b| wrapped to [0, π]."""
    d = torch.remainder(a - b, 2 * math.pi)
    return torch.minimum(d, 2 * math.pi - d)


def in_hole(
    kit: Kit,
    state: State,
    piece: int,
    position_tolerance: float = 2.0,
    angle_tolerance: float = 0.2,
) -> bool:
    """Whether `piece` sits in its hole: centre within `position_tolerance` pixels and angle
    within `angle_tolerance` radians of the hole's pose."""
    hole = kit.hole_poses(state.kit_pose)[piece]
    pose = state.poses[piece]
    close = float((pose[:2] - hole[:2]).norm()) <= position_tolerance
    return close and float(angle_difference(pose[2], hole[2])) <= angle_tolerance
