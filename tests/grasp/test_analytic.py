"""The analytic grasp model against hand-made geometry and a brute-force line scan."""

import math

import pytest
import torch

from striate.grasp.analytic import Gripper, contacts, grasp_success
from striate.grasp.scenes import TABLE_DEPTH, inside, random_scenes

SQUARE = torch.tensor([[[20.0, 20.0], [40.0, 20.0], [40.0, 40.0], [20.0, 40.0]]])
HEIGHT = torch.tensor([0.05])
MID_DEPTH = TABLE_DEPTH - 0.025


def ok(vertices, grasp, mu, gripper=Gripper(), height=HEIGHT):
    return bool(grasp_success(vertices, height, torch.tensor([grasp]), mu, gripper)[0])


@pytest.mark.parametrize("degrees", [0, 10, 20, 30])
@pytest.mark.parametrize("mu", [0.2, 0.5, 0.8])
def test_square_across_faces_holds_when_the_axis_is_in_the_friction_cones(degrees, mu):
    # the axis crosses two opposite faces whose normals are ±x: it is `degrees` off both normals
    grasp = [30.0, 30.0, math.radians(degrees), MID_DEPTH]
    assert ok(SQUARE, grasp, mu) == (math.radians(degrees) < math.atan(mu))


def test_grasp_across_a_corner_needs_large_friction():
    # the line x + y = 43 cuts the corner (20, 20): contacts on the left and bottom faces, both
    # 45° off the axis, so force closure needs atan(mu) > 45°, i.e. mu > 1
    grasp = [21.5, 21.5, -math.pi / 4, MID_DEPTH]
    assert not ok(SQUARE, grasp, 0.5)
    assert not ok(SQUARE, grasp, 0.95)
    assert ok(SQUARE, grasp, 1.5)


def test_width_limit():
    wide = (SQUARE - 30) * 1.5 + 30  # 30 px across: more than the 28 px the jaws open
    grasp = [30.0, 30.0, 0.0, MID_DEPTH]
    assert not ok(wide, grasp, 0.5)
    assert ok(wide, grasp, 0.5, Gripper(max_width=34.0))
    assert ok(SQUARE, grasp, 0.5) and not ok(SQUARE, grasp, 0.5, Gripper(max_width=18.0))


def test_a_line_that_misses_the_object_fails():
    assert not ok(SQUARE, [30.0, 10.0, 0.0, MID_DEPTH], 5.0)


def test_jaws_landing_on_the_object_collide():
    # a U opening upwards: grasping the left arm across x, the right jaw lands in the gap (free)
    # when the gap is wide, on the right arm when the jaws open past it
    u_shape = torch.tensor([[[10.0, 10], [50, 10], [50, 40], [44, 40], [44, 16], [16, 16],
                             [16, 40], [10, 40]]])  # fmt: skip
    grasp = [13.0, 30.0, 0.0, MID_DEPTH]
    assert ok(u_shape, grasp, 0.5, Gripper(max_width=10.0))
    assert not ok(u_shape, grasp, 0.5, Gripper(max_width=60.0))  # both arms inside: too wide
    # jaws at ±15 px: the right jaw at x = 28..30 is in the gap; a 2-px-broad jaw is free but
    # a jaw as broad as the arms are tall reaches down into the base of the U
    assert ok(u_shape, grasp, 0.5, Gripper(max_width=30.0))
    assert not ok(
        u_shape, [13.0, 19.0, 0.0, MID_DEPTH], 0.5, Gripper(max_width=30.0, finger_half=4.0)
    )


def test_depth_must_be_reachable():
    g = Gripper()
    top = TABLE_DEPTH - float(HEIGHT)
    assert not ok(SQUARE, [30.0, 30.0, 0.0, top + 0.5 * g.min_grip], 0.5)
    assert ok(SQUARE, [30.0, 30.0, 0.0, top + 2 * g.min_grip], 0.5)
    assert not ok(SQUARE, [30.0, 30.0, 0.0, TABLE_DEPTH - 0.5 * g.table_clearance], 0.5)


def test_contacts_match_a_brute_force_scan_along_the_line():
    scenes = random_scenes(20, seed=3)
    g = torch.Generator().manual_seed(0)
    centre = scenes.vertices.mean(1) + torch.randn(20, 2, generator=g) * 2
    theta = torch.rand(20, generator=g) * math.pi
    grasps = torch.cat([centre, theta[:, None], torch.full((20, 1), 0.68)], 1)
    t_plus, t_minus, n_plus, n_minus, hits = contacts(scenes.vertices, grasps)
    t = torch.arange(-40, 40, 0.01)
    u = torch.stack([theta.cos(), theta.sin()], -1)
    points = centre[:, None] + t[None, :, None] * u[:, None]
    within = inside(scenes.vertices, points)
    assert bool(hits.all() == within.any(1).all())
    first = torch.where(within, t, torch.full_like(t, 1e9)).min(1).values
    last = torch.where(within, t, torch.full_like(t, -1e9)).max(1).values
    assert torch.allclose(t_plus[hits], last[hits], atol=0.02)
    assert torch.allclose(t_minus[hits], first[hits], atol=0.02)
    assert torch.allclose(n_plus.norm(dim=1), torch.ones(20))
