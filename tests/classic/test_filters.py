"""Classical filters against scipy.ndimage.convolve with each edge policy, and the notes' quiz."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from matplotlib.figure import Figure
from PIL import Image

from striate.classic.filters import KERNELS, QUIZ_KERNELS, convolve, kernel, plot_filters
from striate.errors import InputError

MODES = {"extend": "nearest", "pad": "constant"}
SHAPES = [(3, 3), (2, 2), (4, 3), (1, 5), (5, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("edge", ["extend", "pad", "crop"])
def test_equals_scipy_convolve_on_every_channel_of_a_batch(edge, shape):
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 11, 9))
    w = rng.standard_normal(shape)
    ours = convolve(x, w, edge).numpy()
    kh, kw = shape
    for n in range(3):
        for c in range(2):
            ref = ndi.convolve(x[n, c], w, mode=MODES.get(edge, "constant"), cval=0.0)
            if edge == "crop":  # the pixels whose window lies inside the image
                top, left = (kh - 1) - kh // 2, (kw - 1) - kw // 2
                ref = ref[top : top + 11 - kh + 1, left : left + 9 - kw + 1]
            assert ours[n, c].shape == ref.shape
            np.testing.assert_allclose(ours[n, c], ref, rtol=0, atol=1e-12)


def test_layouts_and_dtypes():
    img = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = convolve(img, "box")
    assert out.dtype == torch.float32 and out.shape == (6, 8)
    ref = ndi.convolve(img.astype(np.float64), np.ones((3, 3)) / 9, mode="nearest")
    np.testing.assert_allclose(out, ref, atol=1e-4)
    assert convolve(torch.zeros(3, 6, 8, dtype=torch.float64), "sobel_x").dtype == torch.float64
    assert convolve(np.zeros((2, 3, 6, 8)), "laplacian", "crop").shape == (2, 3, 4, 6)


def test_high_pass_kernels_ignore_flat_regions():
    flat = torch.full((9, 9), 0.7, dtype=torch.float64)
    for name in ("sobel_x", "sobel_y", "prewitt_x", "prewitt_y", "laplacian", "laplacian_8"):
        assert float(kernel(name).sum()) == 0
        assert convolve(flat, name, "extend").abs().max() < 1e-12  # the edge repeats the flat
        assert convolve(flat, name, "pad").abs().max() > 0.1  # zeros make an edge at the border


def test_the_quiz_answer_is_d(shared_data):
    """Quiz 5.24: the kernel best at horizontal edges and lines. On an image of horizontal edges
    d responds most; on vertical ones not at all; and on a real photo, d of the image is b of its
    transpose (the kernels are each other's transpose)."""
    rows = torch.zeros(32, 32, dtype=torch.float64)
    rows[8:12] = rows[20:] = 1.0  # horizontal lines and an edge
    energy = {k: float(convolve(rows, w, "extend").abs().sum()) for k, w in QUIZ_KERNELS.items()}
    assert max(energy, key=energy.get) == "d"
    assert float(convolve(rows.T, QUIZ_KERNELS["d"], "extend").abs().max()) == 0.0
    assert energy["b"] == 0.0
    photo = Image.open(shared_data / "images" / "dog.jpg").convert("L").resize((96, 64))
    photo = np.asarray(photo, dtype=np.float64)
    d = convolve(photo, QUIZ_KERNELS["d"], "pad").numpy()
    b_t = convolve(photo.T.copy(), QUIZ_KERNELS["b"], "pad").numpy()
    np.testing.assert_allclose(d, b_t.T, atol=1e-9)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: convolve(np.zeros(5), "box"), "H×W, C×H×W or N×C×H×W"),
        (lambda: convolve(np.zeros((5, 5)), "sobel"), "sobel_x"),
        (lambda: convolve(np.zeros((5, 5)), "box", edge="wrap"), "extend, pad, crop"),
        (lambda: convolve(np.zeros((2, 2)), "box", edge="crop"), "leaves nothing"),
        (lambda: convolve(np.zeros((5, 5)), [[1, np.nan]]), "NaN"),
        (lambda: convolve(np.zeros((5, 5)), [1, 2, 3]), "2-D array"),
        (lambda: convolve(np.zeros((5, 5), dtype=complex), "box"), "real numbers"),
    ],
)
def test_bad_input_says_what_is_wrong(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_plot_filters_returns_a_figure():
    fig = plot_filters(np.random.default_rng(0).random((3, 16, 16)))
    assert isinstance(fig, Figure) and len(fig.axes) == 5
    assert set(KERNELS) >= {"sobel_x", "sobel_y", "laplacian", "box"}
