"""Colour spaces and luminance matching against scikit-image and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2yiq, yiq2rgb

from striate.errors import InputError
from striate.synthesis.colour import match_luminance, rgb_to_yiq, with_colour_of, yiq_to_rgb


@pytest.fixture
def rgb() -> torch.Tensor:
    return torch.rand((2, 3, 7, 5), generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.numpy().transpose(0, 2, 3, 1)


def test_rgb_to_yiq_is_skimage_rgb2yiq(rgb):
    got = rgb_to_yiq(rgb)
    np.testing.assert_allclose(_hwc(got), rgb2yiq(_hwc(rgb)), rtol=0, atol=1e-12)


def test_yiq_to_rgb_is_skimage_yiq2rgb(rgb):
    yiq = rgb_to_yiq(rgb)
    np.testing.assert_allclose(_hwc(yiq_to_rgb(yiq)), yiq2rgb(_hwc(yiq)), rtol=0, atol=1e-7)


def test_round_trips(rgb):
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(rgb)), rgb, rtol=0, atol=1e-12)
    torch.testing.assert_close(rgb_to_yiq(yiq_to_rgb(rgb)), rgb, rtol=0, atol=1e-12)
    one = rgb[0].float()  # a single C×H×W float32 image
    assert rgb_to_yiq(one).dtype == torch.float32
    torch.testing.assert_close(yiq_to_rgb(rgb_to_yiq(one)), one, rtol=0, atol=1e-6)


def test_grey_has_no_colour():
    grey = torch.full((1, 3, 2, 2), 0.4, dtype=torch.float64)
    yiq = rgb_to_yiq(grey)
    torch.testing.assert_close(yiq[:, 0], grey[:, 0], rtol=0, atol=1e-12)
    torch.testing.assert_close(yiq[:, 1:], torch.zeros_like(yiq[:, 1:]), rtol=0, atol=1e-8)


def test_match_luminance_takes_the_reference_mean_and_std():
    g = torch.Generator().manual_seed(1)
    lum = torch.rand((2, 1, 9, 6), generator=g, dtype=torch.float64) * 0.3
    ref = torch.rand((2, 1, 4, 4), generator=g, dtype=torch.float64) * 0.8 + 0.1
    got = match_luminance(lum, ref).numpy()
    a, r = lum.numpy(), ref.numpy()
    for i in range(2):  # each image on its own, unbiased std as torch.std
        np.testing.assert_allclose(got[i].mean(), r[i].mean(), atol=1e-12)
        np.testing.assert_allclose(got[i].std(ddof=1), r[i].std(ddof=1), atol=1e-12)
        # an affine map of the original: correlation 1
        np.testing.assert_allclose(np.corrcoef(got[i].ravel(), a[i].ravel())[0, 1], 1, atol=1e-12)


def test_with_colour_of_keeps_luminance_of_one_and_colour_of_the_other():
    g = torch.Generator().manual_seed(2)
    lum = torch.rand((1, 3, 6, 6), generator=g, dtype=torch.float64) * 0.2 + 0.4  # no clamping
    col = torch.rand((1, 3, 6, 6), generator=g, dtype=torch.float64) * 0.2 + 0.4
    out = with_colour_of(lum, col)
    y_lum = rgb2yiq(_hwc(lum))[..., 0]
    iq_col = rgb2yiq(_hwc(col))[..., 1:]
    got = rgb2yiq(_hwc(out))
    np.testing.assert_allclose(got[..., 0], y_lum, atol=1e-12)
    np.testing.assert_allclose(got[..., 1:], iq_col, atol=1e-12)


def test_bad_shape_is_one_line():
    with pytest.raises(InputError, match="3×H×W"):
        rgb_to_yiq(torch.zeros(4, 5, 5))
