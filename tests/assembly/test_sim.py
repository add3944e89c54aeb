"""The simulator against independent references: matplotlib's point-in-polygon test, brute-force
distances, hand-made suction cases, rigid motion."""

import math

import numpy as np
import pytest
import torch
from matplotlib.path import Path

from striate.assembly.sim import (
    PIECE,
    PLATE,
    Kit,
    State,
    edge_distance,
    heightmap,
    in_hole,
    inside,
    make_kit,
    move,
    pixel_centres,
    random_shape,
    rasterize,
    suction_piece,
    transform,
)


@pytest.mark.parametrize("concave", [False, True])
def test_rasterize_matches_matplotlib_contains_points(concave):
    rng = np.random.default_rng(1 if concave else 2)
    polys = []
    for _ in range(5):
        shape = random_shape(rng, 9, rng.uniform(4, 12), concave)
        polys.append(shape + rng.uniform(5, 35, 2).astype(np.float32))
    polygons = torch.tensor(np.stack(polys))
    heights = torch.arange(1, 6, dtype=torch.float32)
    got = rasterize(polygons, heights, 40, 50)
    centres = pixel_centres(40, 50).numpy()
    want = np.zeros(40 * 50, dtype=np.float32)
    for h, p in zip(heights.numpy(), polys, strict=True):
        want = np.maximum(want, h * Path(p).contains_points(centres))
    np.testing.assert_array_equal(got.numpy(), want.reshape(40, 50))
    assert 0 < (got > 0).float().mean() < 1


def test_edge_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    poly = random_shape(rng, 7, 8.0, True)
    pts = rng.uniform(-10, 10, (50, 2)).astype(np.float32)
    got = edge_distance(torch.tensor(pts), torch.tensor(poly)[None])[0].numpy()
    dense = []
    for a, b in zip(poly, np.roll(poly, -1, 0), strict=True):  # the edges, finely sampled
        t = np.linspace(0, 1, 4001)[:, None]
        dense.append(a + t * (b - a))
    dense = np.concatenate(dense)
    want = np.linalg.norm(pts[:, None] - dense[None], axis=-1).min(1)
    np.testing.assert_allclose(got, want, atol=5e-3)


def _square_kit(half=5.0, shapes=None):
    s = half
    square = torch.tensor([[-s, -s], [s, -s], [s, s], [-s, s]])
    shapes = square[None] if shapes is None else shapes
    holes = torch.zeros(len(shapes), 3)
    return Kit(shapes, holes, 10.0, 32)


def test_suction_hand_made_cases():
    kit = _square_kit()
    state = State(torch.tensor([[40.0, 16.0, 0.0]]), torch.tensor([16.0, 16.0, 0.0]))
    points = torch.tensor(
        [
            [40.0, 16.0],  # the middle of the piece: holds
            [43.4, 16.0],  # 1.6 px from the edge: holds
            [44.0, 16.0],  # 1 px from the edge: the seal leaks
            [50.0, 16.0],  # the floor
            [16.0, 10.0],  # the kit plate: fixed, never lifts
        ]
    )
    assert suction_piece(kit, state, points).tolist() == [0, 0, -1, -1, -1]
    assert suction_piece(kit, state, points, margin=0.5).tolist() == [0, 0, 0, -1, -1]


def test_suction_on_a_concave_piece_misses_the_notch():
    l_shape = torch.tensor([[0, 0], [8, 0], [8, 3], [3, 3], [3, 8], [0, 8]], dtype=torch.float32)
    kit = _square_kit(shapes=(l_shape - 3)[None])
    state = State(torch.tensor([[40.0, 16.0, 0.0]]), torch.tensor([16.0, 16.0, 0.0]))
    notch = torch.tensor([[40.0 + 2.5, 16.0 + 2.5]])  # inside the hull, outside the L
    arm = torch.tensor([[40.0 + 2.5, 16.0 - 1.5]])  # the middle of the long arm, 1.5 from edges
    assert suction_piece(kit, state, notch).item() == -1
    assert suction_piece(kit, state, arm).item() == 0


def test_move_is_a_rigid_motion_about_the_cup():
    shape = torch.tensor([[[-3.0, -1.0], [4.0, -2.0], [1.0, 5.0]]])
    pose = torch.tensor([10.0, 12.0, 0.3])
    pick, place, turn = torch.tensor([11.0, 13.0]), torch.tensor([30.0, 5.0]), 1.1
    new = move(pose, pick, place, turn)
    before, after = transform(shape, pose[None])[0], transform(shape, new[None])[0]
    c, s = math.cos(turn), math.sin(turn)
    rot = torch.tensor([[c, -s], [s, c]])
    want = (before - pick) @ rot.T + place  # every vertex turned about the cup, then carried
    torch.testing.assert_close(after, want, atol=1e-5, rtol=0)
    assert abs(float(new[2]) - (0.3 + turn)) < 1e-6


def test_kit_heightmap_and_holes():
    kit = make_kit(3, size=48, pieces=3)
    state = kit.assembled(kit.random_kit_pose(np.random.default_rng(0)))
    hm = heightmap(kit, state)
    assert hm.shape == (48, 96)
    assert set(torch.unique(hm).tolist()) <= {0.0, PLATE, PIECE}
    assert (hm[:, 48:] == 0).all()  # nothing on the object half yet
    assert all(in_hole(kit, state, i) for i in range(3))
    hole = kit.hole_poses(state.kit_pose)
    masks = inside(pixel_centres(48, 96), transform(kit.shapes, hole)).reshape(3, 48, 96)
    assert (hm[masks.any(0)] == PIECE).all()  # the pieces fill their holes
    empty = State(state.poses + torch.tensor([48.0, 0, 0]), state.kit_pose)
    assert (heightmap(kit, empty)[masks.any(0)] == 0).all()  # empty holes reach the floor
