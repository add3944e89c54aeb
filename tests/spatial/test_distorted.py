"""The distorted MNIST generators: shapes, seeds, and the drawn parameters checked on images whose
answer is known (a dot's angle, a square's area and centre, a pasted digit), with scipy's
Gaussian filter as the reference for the elastic smoothing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from striate.data.imageset import ImageSet
from striate.errors import ConfigError
from striate.spatial.cluttered import cluttered
from striate.spatial.distorted import (
    elastic,
    gaussian_smooth,
    projective,
    rotated,
    rotated_translated_scaled,
)
from striate.spatial.variants import VARIANTS, distorted_set, variant_name


def digits(n: int = 16, seed: int = 0) -> torch.Tensor:
    """Digit-like uint8 images: random strokes in the central 20×20 of 28×28."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 4:24, 4:24] = (torch.rand(n, 1, 20, 20, generator=g) > 0.7).to(torch.uint8) * 255
    return x


@pytest.mark.parametrize(
    ("name", "size"), [("R", 28), ("RTS", 42), ("P", 28), ("E", 28), ("cluttered", 60)]
)
def test_shapes_types_and_seeds(name, size):
    fn = VARIANTS[name][0]
    x = digits()
    a, params = fn(x, seed=3)
    assert a.shape == (16, 1, size, size) and a.dtype == torch.uint8
    assert torch.equal(a, fn(x, seed=3)[0])
    assert not torch.equal(a, fn(x, seed=4)[0])
    assert a.float().mean() > 0


def test_rotation_angles_cover_the_range_and_turn_a_dot():
    """A 2×2 dot 8 pixels right of the centre ends at angle a (counter-clockwise as shown)."""
    n = 400
    x = torch.zeros(n, 1, 28, 28, dtype=torch.uint8)
    x[:, :, 13:15, 21:23] = 255
    out, params = rotated(x, seed=0)
    angles = params["angle"]
    assert angles.min() >= -90 and angles.max() <= 90
    assert angles.min() < -85 and angles.max() > 85 and abs(angles.mean()) < 10
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    mass = out[:, 0].float()
    cx = (mass * xs).sum((1, 2)) / mass.sum((1, 2)) - 13.5
    cy = (mass * ys).sum((1, 2)) / mass.sum((1, 2)) - 13.5
    measured = torch.rad2deg(torch.atan2(-cy, cx))
    assert (measured - angles).abs().max() < 2.0
    assert torch.allclose(torch.hypot(cx, cy), torch.full((n,), 8.0), atol=0.3)


def test_rts_scales_and_places_a_disc():
    """A disc of radius 12 in the 28×28 square: its area grows by scale², its centre is the
    drawn offset, and none of it is cut off (the scaled square stays inside the 42×42 canvas)."""
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = ((xs - 13.5) ** 2 + (ys - 13.5) ** 2 < 144).to(torch.uint8) * 255
    x = disc.expand(100, 1, 28, 28).contiguous()
    out, p = rotated_translated_scaled(x, seed=1)
    s = p["scale"].double()
    assert s.min() >= 0.7 and s.max() <= 1.2 and (s.max() - s.min()) > 0.4
    assert p["angle"].abs().max() <= 45
    mass = out[:, 0].double() / 255
    area = mass.sum((1, 2))
    torch.testing.assert_close(area, float(disc.sum()) / 255 * s**2, rtol=0.02, atol=0)
    ys, xs = torch.meshgrid(torch.arange(42.0), torch.arange(42.0), indexing="ij")
    cx = (mass * xs).sum((1, 2)) / area - 20.5
    cy = (mass * ys).sum((1, 2)) / area - 20.5
    torch.testing.assert_close(torch.stack([cx, cy], 1).float(), p["offset"], atol=0.2, rtol=0)
    assert ((p["offset"].abs().max(1).values + 14 * p["scale"]) <= 21 + 1e-4).all()


def test_projective_maps_the_square_onto_its_moved_corners():
    """The ink of a full square covers the quadrilateral of the drawn corners (shoelace area)."""
    x = torch.full((100, 1, 28, 28), 255, dtype=torch.uint8)
    out, p = projective(x, seed=2, scale=(0.5, 0.6), corner_std=1.5)  # corners stay inside
    c = p["corners"].double()  # pixels from the centre, in order around the square
    shoelace = 0.5 * (c[:, :, 0] * c[:, :, 1].roll(-1, 1) - c[:, :, 1] * c[:, :, 0].roll(-1, 1))
    area = shoelace.sum(1).abs()
    measured = out[:, 0].double().sum((1, 2)) / 255
    torch.testing.assert_close(measured, area, rtol=0.04, atol=0)
    assert p["scale"].min() >= 0.5 and p["scale"].max() <= 0.6


def test_the_elastic_smoothing_is_scipys_gaussian_filter():
    field = torch.rand(2, 2, 28, 28, dtype=torch.float64) * 2 - 1
    ours = gaussian_smooth(field, 4.0).numpy()
    for i in range(2):
        for j in range(2):
            ref = scipy.ndimage.gaussian_filter(field[i, j].numpy(), 4.0, mode="constant")
            np.testing.assert_allclose(ours[i, j], ref, atol=1e-12)


def test_elastic_without_strength_is_the_identity_and_with_it_moves_ink():
    x = digits(8)
    assert torch.equal(elastic(x, alpha=0.0)[0], x)
    out = elastic(x, seed=1)[0]
    assert (out.float() - x.float()).abs().mean() > 5


def cluttered_reference(x, p, canvas=60, patch=6):
    n, k = p["sources"].shape
    out = np.zeros((n, canvas, canvas), dtype=np.uint8)
    for i in range(n):
        px, py = p["position"][i].tolist()
        out[i, py : py + 28, px : px + 28] = x[i, 0].numpy()
        for j in range(k):
            src = int(p["sources"][i, j])
            sx, sy = p["crops"][i, j].tolist()
            dx, dy = p["places"][i, j].tolist()
            region = out[i, dy : dy + patch, dx : dx + patch]
            crop = x[src, 0, sy : sy + patch, sx : sx + patch].numpy()
            out[i, dy : dy + patch, dx : dx + patch] = np.maximum(region, crop)
    return out


@pytest.mark.parametrize("distractors", [0, 6])
def test_cluttered_equals_a_loop_that_pastes_the_digit_and_the_crops(distractors):
    x = digits(12)
    out, p = cluttered(x, seed=5, distractors=distractors)
    assert p["sources"].shape == (12, distractors)
    np.testing.assert_array_equal(out[:, 0].numpy(), cluttered_reference(x, p))


def test_distorted_set_and_bad_names():
    ds = ImageSet(digits(4), torch.arange(4), tuple("0123"), "test")
    out = distorted_set(ds, "rts", seed=1)
    assert out.images.shape == (4, 1, 42, 42) and torch.equal(out.labels, ds.labels)
    assert variant_name("TC") == "cluttered"
    with pytest.raises(ConfigError, match="unknown distorted MNIST variant 'RST'"):
        variant_name("RST")
    with pytest.raises(ConfigError, match="square uint8 images"):
        rotated(torch.zeros(1, 1, 28, 28))
