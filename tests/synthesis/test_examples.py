"""The harmonization examples: object-shaped binary masks, pastes that are the painting outside the
mask and the photograph inside, files that hold the same, the same every time."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import sobel

from striate.errors import ConfigError, DataError
from striate.synthesis.examples import _object_mask, harmonization_examples, main, object_mask
from striate.synthesis.images import photograph, read_image, resize_to

SIZE = 96


@pytest.fixture(scope="module")
def images(shared_data):
    return shared_data / "images"


@pytest.fixture(scope="module")
def examples(images):
    return harmonization_examples(size=SIZE, images_dir=images)


def test_at_least_three_examples_of_both_paintings(examples, images):
    assert len(examples) >= 3 and len({e.name for e in examples}) == len(examples)
    paintings = {e.name: e.painting for e in examples}
    assert any(
        torch.equal(p, read_image(images / "starry_night.jpg", SIZE)) for p in paintings.values()
    )
    assert any(torch.equal(p, read_image(images / "scream.jpg", SIZE)) for p in paintings.values())


def test_masks_are_binary_non_empty_and_shaped_like_the_object(examples):
    for e in examples:
        m = e.mask[0, 0]
        assert e.mask.shape == (1, 1, *e.painting.shape[-2:])
        assert set(torch.unique(e.mask).tolist()) == {0.0, 1.0}
        rows, cols = torch.nonzero(m.any(1))[:, 0], torch.nonzero(m.any(0))[:, 0]
        box = m[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert 0.3 < box.mean() < 0.92, e.name  # not a rectangle, not a speck
        labels, n = ndimage.label(m.numpy())
        assert n == 1, e.name  # one object


def test_each_outline_runs_along_the_edges_of_the_photograph():
    """The band of ±3 px around each object's outline has at least 1.7× the photograph's mean
    Sobel gradient (the outlines measured 2.0–6.1×): the mask follows the object's edges."""
    for name in ("rocket", "coffee", "flower"):
        found = object_mask(name)
        rgb = photograph(name)[0].permute(1, 2, 0).double().numpy()
        gradient = sum(sobel(rgb[..., c]) for c in range(3))
        band = ndimage.binary_dilation(found, iterations=3) ^ ndimage.binary_erosion(
            found, iterations=3
        )
        assert gradient[band].mean() > 1.7 * gradient.mean(), name
        assert 0 < found.mean() < 0.7


def test_pasted_is_the_painting_outside_and_the_photograph_inside(examples):
    for e in examples:
        outside = e.mask.expand_as(e.painting) == 0
        assert torch.equal(e.pasted[outside], e.painting[outside])
        y, x, h, w = e.crop
        piece = resize_to(photograph(e.photograph)[..., y : y + h, x : x + w], e.box[2:])
        top, left, bh, bw = e.box
        inside = e.mask[..., top : top + bh, left : left + bw].expand_as(piece) == 1
        assert torch.equal(e.pasted[..., top : top + bh, left : left + bw][inside], piece[inside])
        assert e.mask.sum() == e.mask[..., top : top + bh, left : left + bw].sum()


def test_the_same_examples_every_time_and_in_the_files(examples, images, tmp_path):
    again = harmonization_examples(tmp_path, size=SIZE, images_dir=images)
    assert np.array_equal(object_mask("coffee"), _object_mask.__wrapped__("coffee"))
    for a, b in zip(examples, again, strict=True):
        assert a.name == b.name
        for field in ("painting", "pasted", "mask"):
            assert torch.equal(getattr(a, field), getattr(b, field))
        folder = tmp_path / a.name
        assert torch.equal(read_image(folder / "mask.png")[:, :1], a.mask)
        assert (read_image(folder / "pasted.png") - a.pasted).abs().max() <= 0.5 / 255 + 1e-6


def test_the_script_writes_the_examples(images, tmp_path, capsys):
    assert main([str(tmp_path / "out"), "--size", "64", "--images-dir", str(images)]) == 0
    written = capsys.readouterr().out.split()
    assert len(written) >= 3
    for folder in written:
        assert {p.name for p in (tmp_path / "out").joinpath(folder.split("/")[-1]).iterdir()} == {
            "painting.png",
            "pasted.png",
            "mask.png",
        }


def test_bad_input_is_one_clear_error(tmp_path, images):
    with pytest.raises(ConfigError, match="size must be an integer >= 64"):
        harmonization_examples(size=32, images_dir=images)
    with pytest.raises(DataError, match="no painting .*images_dir"):
        harmonization_examples(size=64, images_dir=tmp_path)
    assert main([str(tmp_path / "x"), "--images-dir", str(tmp_path)]) == 2
