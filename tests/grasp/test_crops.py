"""Grasp-aligned crops against slicing, a hand rotation, and bilinear sampling by formula."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from striate.errors import InputError
from striate.grasp.gqcnn import aligned_crops


def test_angle_zero_is_a_slice():
    img = torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    grasps = torch.tensor([[30.0, 20.0, 0.0], [40.0, 35.0, 0.0]])
    crops = aligned_crops(img, grasps, 32)
    assert torch.allclose(crops[0, 0], img[0, 0, 4:36, 14:46], atol=1e-5)
    assert torch.allclose(crops[1, 0], img[1, 0, 19:51, 24:56], atol=1e-5)


def test_quarter_turn_is_the_hand_rotation():
    img = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    crop = aligned_crops(img, torch.tensor([[30.0, 20.0, math.pi / 2]]), 33)[0, 0]
    window = img[0, 0, 4:37, 14:47]  # centred on (x=30, y=20), 33 px
    # axis u = (0, 1) (down the image), v = (−1, 0): crop[r, k] = window[k, 32 − r]
    by_hand = torch.stack([window[:, 32 - r] for r in range(33)])
    assert torch.allclose(crop, by_hand, atol=1e-4)


def test_a_line_along_the_grasp_axis_lands_on_the_middle_row():
    theta, cx, cy = 0.7, 31.3, 29.6
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    distance = ((xs - cx) * -math.sin(theta) + (ys - cy) * math.cos(theta)).abs()
    img = (distance < 0.75).float()[None, None]
    crop = aligned_crops(img, torch.tensor([[cx, cy, theta]]), 32)[0, 0]
    rows = crop.mean(1)
    assert int(rows.argmax()) == 16
    assert float(rows[16]) > 0.6 and float(rows[:13].max()) < 0.01 and float(rows[20:].max()) < 0.01


@pytest.mark.parametrize("theta", [0.3, 1.9, -2.5])
def test_any_angle_matches_bilinear_sampling_at_the_rotated_points(theta):
    g = torch.Generator().manual_seed(2)
    img = torch.rand(1, 1, 64, 64, generator=g)
    c = torch.tensor([33.4, 28.7])
    crop = aligned_crops(img, torch.tensor([[c[0], c[1], theta]]), 16)[0, 0].numpy()
    k = np.arange(16) - 8
    kk, rr = np.meshgrid(k, k)  # crop column offset along u, row offset along v
    x = c[0].item() + kk * math.cos(theta) - rr * math.sin(theta)
    y = c[1].item() + kk * math.sin(theta) + rr * math.cos(theta)
    expected = map_coordinates(img[0, 0].double().numpy(), [y, x], order=1, mode="nearest")
    assert np.allclose(crop, expected, atol=1e-4)


def test_index_picks_the_image_and_bad_shapes_fail():
    img = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    crops = aligned_crops(
        img, torch.tensor([[4.0, 4.0, 0.0]] * 3), 8, index=torch.tensor([1, 0, 1])
    )
    assert crops[:, 0, 4, 4].tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(InputError, match="grasps"):
        aligned_crops(img, torch.zeros(2, 2))
