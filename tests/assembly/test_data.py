"""Disassembly data: the reversed sequence rebuilds the kit, labels and crops against direct
computations, rotation discretisation against rasterising the turned polygon."""

import math

import numpy as np
import pytest
import torch

from striate.assembly.data import (
    IGNORE,
    TensorBatches,
    assembly_datasets,
    crop,
    disassemble,
    label_map,
    replay,
    reverse,
)
from striate.assembly.networks import rotate, rotated_stack, rotation_angles
from striate.assembly.sim import heightmap, in_hole, make_kit, rasterize, suction_piece, transform


@pytest.fixture(scope="module")
def episode():
    kit = make_kit(5, size=40, pieces=3)
    rng = np.random.default_rng(0)
    return disassemble(kit, kit.random_kit_pose(rng), rng, rotations=8)


def test_disassembly_empties_the_kit_by_trials(episode):
    kit, steps = episode.kit, episode.steps
    assert sorted(s.piece for s in steps) == [0, 1, 2]
    for s in steps:  # every trial but the last failed; the last held the piece it moved
        lifted = suction_piece(kit, s.before, s.trials).tolist()
        assert lifted[-1] == s.piece
        assert all(p < 0 or p in {t.piece for t in steps[: steps.index(s)]} for p in lifted[:-1])
    final = steps[-1].after
    assert (final.poses[:, 0] >= kit.size).all()  # all out on the object half
    assert not any(in_hole(kit, final, i) for i in range(3))


def test_reversed_disassembly_rebuilds_the_assembled_kit(episode):
    kit = episode.kit
    start = episode.steps[-1].after
    assembled = kit.assembled(start.kit_pose)
    rebuilt = replay(kit, start, reverse(episode), episode.rotations)
    torch.testing.assert_close(rebuilt.poses, assembled.poses, atol=1e-4, rtol=0)
    assert torch.equal(heightmap(kit, rebuilt), heightmap(kit, assembled))
    assert all(in_hole(kit, rebuilt, i, 1e-3, 1e-4) for i in range(3))
    # each reversed step starts where the disassembly step ended, and turns by +2πk/R
    for fwd, back in zip(reversed(episode.steps), reverse(episode), strict=True):
        assert torch.equal(back.pick, fwd.place) and torch.equal(back.place, fwd.pick)
        turned = back.after.poses[back.piece, 2] - back.before.poses[back.piece, 2]
        assert math.isclose(
            float(turned), 2 * math.pi * back.turn / episode.rotations, abs_tol=1e-5
        )


def test_label_map_against_distances():
    points = torch.tensor([[3.5, 4.5], [10.2, 2.0]])
    labels = label_map(points, 8, 12)
    for i in range(8):
        for j in range(12):
            d = min(math.hypot(j + 0.5 - x, i + 0.5 - y) for x, y in points.tolist())
            want = 1 if d <= 1.0 else IGNORE if d <= 3.0 else 0
            assert labels[i, j] == want


def test_crop_matches_padded_slicing():
    x = torch.randn(3, 2, 9, 11)
    centres = torch.tensor([[0, 0], [4, 5], [8, 10]])
    got = crop(x, centres, 5)
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n, (r, c) in enumerate(centres.tolist()):
        np.testing.assert_array_equal(got[n].numpy(), padded[n, :, r : r + 5, c : c + 5])


def test_rotation_discretisation_matches_rasterised_turned_polygon():
    angles = rotation_angles(8)
    torch.testing.assert_close(angles, torch.tensor([2 * math.pi * k / 8 for k in range(8)]))
    rng = np.random.default_rng(3)
    from striate.assembly.sim import random_shape

    shape = torch.tensor(random_shape(rng, 7, 9.0, True))[None]
    side = 33
    centre = torch.tensor([[side / 2, side / 2, 0.0]])
    image = rasterize(transform(shape, centre), 1.0, side, side)[None, None]
    stack = rotated_stack(image, 8)
    for k in range(8):
        turned = rasterize(
            transform(shape, centre + torch.tensor([0, 0, float(angles[k])])), 1.0, side, side
        )
        got = stack[k, 0] > 0.5
        iou = (got & (turned > 0)).sum() / (got | (turned > 0)).sum()
        assert iou > 0.9, (k, float(iou))
    # and the other direction would be wrong: a turn is not its inverse for this shape
    back = rotate(image, torch.tensor([-float(angles[1])]))[0, 0] > 0.5
    fwd = (
        rasterize(
            transform(shape, centre + torch.tensor([0, 0, float(angles[1])])), 1.0, side, side
        )
        > 0
    )
    assert (back & fwd).sum() / (back | fwd).sum() < 0.9


def test_datasets_and_batches(episode):
    sets = assembly_datasets([episode], crop_size=33)
    x, y = sets["suction"]
    assert x.shape == (6, 1, 40, 40) and y.shape == (6, 40, 40)
    assert ((y == 1).flatten(1).sum(1) > 0).all()
    kit_x, crops, place, turn, mask = sets["matching"]
    assert crops.shape == (3, 1, 33, 33) and mask[:, 0, 16, 16].all()  # the cup is on the piece
    # the place pixel of each assembly step is where the piece's cup point sits in its hole
    assert (kit_x[torch.arange(3), 0, place[:, 0], place[:, 1]] == 0).all()  # an empty hole
    batches = TensorBatches(sets["suction"], 4, seed=1)
    first = [b[0] for b in batches]
    assert len(batches) == 2 and sum(len(b) for b in first) == 6
    batches.set_epoch(0)
    again = [b[0] for b in batches]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
