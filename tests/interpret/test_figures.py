"""figures: the overlay against its formula, image_grid against a layout built by hand
(torchvision's make_grid semantics), and the figures rendered to PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from striate.errors import ConfigError, InputError
from striate.interpret.figures import (
    attribution_figure,
    attribution_map,
    image_grid,
    overlay,
    show_grid,
    to_hwc,
)


def render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return buf.getvalue()


# --------------------------------------------------------------------------- overlay


def test_overlay_is_the_blend_of_the_image_and_the_coloured_normalised_map():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 5, 6, generator=g)
    heat = torch.rand(5, 6, generator=g) * 7 - 2
    out = overlay(image, heat, alpha=0.3, cmap="viridis")
    unit = ((heat - heat.min()) / (heat.max() - heat.min())).double().numpy()
    expected = (
        0.7 * image.permute(1, 2, 0).double().numpy() + 0.3 * colormaps["viridis"](unit)[..., :3]
    )
    assert out.shape == (5, 6, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_overlay_resizes_the_map_bilinearly_then_normalises():
    # a 2×2 map [[0, 1], [0, 1]] on a 4×4 image: half-pixel bilinear gives columns 0, ¼, ¾, 1
    image = np.zeros((4, 4, 3))
    out = overlay(image, torch.tensor([[0.0, 1.0], [0.0, 1.0]]), alpha=1.0, cmap="gray")
    expected = colormaps["gray"](np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)))[..., 0]  # 256-level LUT
    np.testing.assert_allclose(out[:, :, 0], expected, atol=1e-12)
    assert abs(out[0, 1, 0] - 0.25) < 1 / 255


def test_overlay_takes_uint8_grey_batches_and_grad_cam_shapes():
    image = torch.full((1, 1, 8, 8), 255, dtype=torch.uint8)
    out = overlay(image, torch.zeros(1, 1, 2, 2), alpha=0.0)
    assert out.shape == (8, 8, 3)
    np.testing.assert_array_equal(out, np.ones((8, 8, 3)))  # alpha 0: the image, grey → RGB


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((torch.rand(3, 4, 4), torch.rand(3, 4, 4)), {}, "one map H×W"),
        ((torch.rand(3, 4, 4), torch.rand(4, 4)), {"alpha": 1.5}, "alpha must be"),
        ((torch.rand(3, 4, 4), torch.rand(4, 4)), {"cmap": "jte"}, "did you mean 'jet'"),
        ((torch.rand(2, 3, 4, 4), torch.rand(4, 4)), {}, "one image"),
        ((torch.rand(3, 4, 4), torch.full((4, 4), float("nan"))), {}, "NaN"),
    ],
)
def test_overlay_refuses_bad_input_in_one_line(args, kwargs, match):
    with pytest.raises((ConfigError, InputError), match=match) as e:
        overlay(*args, **kwargs)
    assert "\n" not in str(e.value)


def test_to_hwc_scales_uint8_and_clips_floats():
    a = to_hwc(np.array([[0, 255]], dtype=np.uint8))
    np.testing.assert_array_equal(a[..., 0], [[0.0, 1.0]])
    b = to_hwc(torch.tensor([[[-1.0, 2.0]]]))
    np.testing.assert_array_equal(b[..., 1], [[0.0, 1.0]])


# --------------------------------------------------------------------------- attribution maps


def test_attribution_map_is_the_absolute_maximum_over_channels_or_the_one_channel():
    a = torch.tensor([[[[-3.0, 1.0]], [[2.0, -1.0]], [[0.5, 0.5]]]])  # 1×3×1×2
    np.testing.assert_array_equal(attribution_map(a).numpy(), [[[3.0, 1.0]]])
    cam = torch.tensor([[[[-1.0, 4.0]]]])  # 1×1×1×2: kept as it is, sign included
    np.testing.assert_array_equal(attribution_map(cam).numpy(), [[[-1.0, 4.0]]])


def test_attribution_figure_renders_three_panels_per_image():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(2, 3, 16, 16, generator=g)
    grads = torch.randn(2, 3, 16, 16, generator=g)
    fig = attribution_figure(
        images, grads, title=["cat", "dog"], top_classes=[[("cat", 0.9)], [("dog", 0.6)]]
    )
    assert len(fig.axes) == 6
    render(fig)
    cam = torch.rand(1, 1, 4, 4, generator=g)
    fig = attribution_figure(images[0], cam, title="Grad-CAM", top_classes=[("cat", 0.9)])
    assert len(fig.axes) == 3
    render(fig)


def test_attribution_figure_wants_one_map_per_image():
    with pytest.raises(InputError, match="2 image\\(s\\) but 1 attribution"):
        attribution_figure(torch.rand(2, 3, 8, 8), torch.rand(1, 3, 8, 8))


# --------------------------------------------------------------------------- grids


def hand_grid(images, nrow, padding, pad_value):
    """make_grid's layout with loops: tile k at row k // cols, column k % cols."""
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    height, width = rows * (h + padding) + padding, cols * (w + padding) + padding
    grid = torch.full((c, height, width), pad_value)
    for k in range(n):
        r, q = divmod(k, cols)
        top, left = r * (h + padding) + padding, q * (w + padding) + padding
        grid[:, top : top + h, left : left + w] = images[k]
    return grid


@pytest.mark.parametrize(("n", "nrow", "padding"), [(5, 2, 1), (4, 4, 0), (7, 3, 2), (2, 8, 3)])
def test_image_grid_matches_the_hand_made_layout(n, nrow, padding):
    images = torch.arange(n * 3 * 2 * 3, dtype=torch.float32).reshape(n, 3, 2, 3)
    got = image_grid(images, nrow=nrow, padding=padding, pad_value=-1.0)
    torch.testing.assert_close(got, hand_grid(images, nrow, padding, -1.0), rtol=0, atol=0)


def test_image_grid_follows_make_grid_on_grey_single_lists_and_normalisation():
    grey = torch.rand(3, 1, 4, 4)
    assert image_grid(grey, nrow=2).shape == (3, 2 * 6 + 2, 2 * 6 + 2)  # grey becomes RGB
    one = torch.rand(1, 3, 4, 5)
    torch.testing.assert_close(image_grid(one, padding=5), one[0])  # one image: no padding
    torch.testing.assert_close(image_grid([one[0], one[0]], padding=0), torch.cat([one[0]] * 2, 2))
    x = torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 4.0)])
    x[0, 0, 0, 0] = 0.0
    x[1, 0, 0, 0] = 8.0
    each = image_grid(x, padding=0, normalize=True, scale_each=True)
    # image 0 spans 0..2, image 1 spans 4..8: each stretched to 0–1 on its own
    torch.testing.assert_close(each[0], torch.tensor([[0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]]))
    whole = image_grid(x, padding=0, normalize=True, value_range=(0.0, 4.0))
    torch.testing.assert_close(whole[0], torch.tensor([[0.0, 0.5, 1.0, 1.0], [0.5, 0.5, 1.0, 1.0]]))


def test_image_grid_refuses_bad_shapes_in_one_line():
    with pytest.raises(InputError, match="N×C×H×W"):
        image_grid(torch.rand(2, 2, 3, 4, 4))
    with pytest.raises(ConfigError, match="nrow must be a positive integer"):
        image_grid(torch.rand(2, 3, 4, 4), nrow=0)
    with pytest.raises(InputError, match="differ in shape"):
        image_grid([torch.rand(3, 4, 4), torch.rand(3, 5, 4)])


def test_show_grid_renders():
    fig = show_grid(torch.rand(6, 3, 8, 8), nrow=3, title="six")
    assert isinstance(fig, Figure)
    render(fig)
    fig = show_grid(torch.zeros(3, 3, 2, 2, dtype=torch.uint8), nrow=3, padding=1)
    shown = fig.axes[0].images[0].get_array()
    assert shown[0, 0].tolist() == [1.0, 1.0, 1.0] and shown[1, 1].tolist() == [0.0, 0.0, 0.0]


def test_overlay_clip_saturates_the_extreme_pixels_so_the_rest_shows():
    from striate.interpret.figures import overlay

    image = np.zeros((10, 10, 3))
    heat = np.tile(np.linspace(0, 1, 10), (10, 1))
    heat[0, 0] = 1000.0  # one extreme gradient pixel
    whole = overlay(image, heat, alpha=1.0, cmap="gray")
    clipped = overlay(image, heat, alpha=1.0, cmap="gray", clip=0.9)
    assert whole[5, 9, 0] < 0.01  # min–max: everything but the outlier is black
    # the 0.9 quantile of the map, computed here with numpy, takes the top colour
    top = np.quantile(heat, 0.9)
    assert clipped[5, 9, 0] == pytest.approx(min(1.0, heat[5, 9] / top), abs=0.01)
    assert clipped[0, 0, 0] == pytest.approx(1.0)
