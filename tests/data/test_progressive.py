"""Progressive resizing and Resize: windows found by search, PIL's antialiased bilinear resize, the
epoch schedule through the loader, the spec, and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from striate.data.augment import BatchInfo, Compose, RandomCrop
from striate.data.augment_spec import parse_augment
from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader
from striate.data.progressive import ProgressiveResize, Resize
from striate.errors import ConfigError, StriateError


def _batch(n=40, c=3, h=8, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g), torch.arange(n)


def _info(n, epoch):
    return BatchInfo(torch.arange(n), epoch, seed=0)


def _window_offsets(out, x):
    """For each output image, every (top, left) at which it is a window of its input image."""
    n, _, h, w = out.shape
    found = []
    for i in range(n):
        found.append(
            [
                (t, left)
                for t in range(x.shape[2] - h + 1)
                for left in range(x.shape[3] - w + 1)
                if torch.equal(x[i, :, t : t + h, left : left + w], out[i])
            ]
        )
    return found


def test_crop_mode_takes_a_window_of_each_image_in_the_first_epochs_only():
    x, y = _batch(n=200)
    t = ProgressiveResize(epochs=2, scale=0.5)
    g = torch.Generator().manual_seed(3)
    offsets = set()
    for epoch in (0, 1):
        out, labels = t(x, y, g, _info(len(x), epoch))
        assert out.shape == (200, 3, 4, 3) and torch.equal(labels, y)
        found = _window_offsets(out, x)
        assert all(len(f) == 1 for f in found)  # random images: one position fits
        offsets |= {f[0] for f in found}
    assert offsets == {(t, left) for t in range(5) for left in range(4)}  # every position drawn
    for epoch in (2, 7):
        out, labels = t(x, y, g, _info(len(x), epoch))
        assert torch.equal(out, x) and torch.equal(labels, y)


def test_sizes_round_and_keep_a_pixel():
    t = ProgressiveResize(3)
    assert t.size(32, 32, 0) == (24, 24) and t.size(32, 32, 2) == (24, 24)
    assert t.size(32, 32, 3) == (32, 32)
    assert ProgressiveResize(1, 0.3).size(10, 5, 0) == (3, 2)  # round(1.5) = 2
    assert ProgressiveResize(1, 0.01).size(10, 5, 0) == (1, 1)
    assert ProgressiveResize(1, 1.0).size(10, 5, 0) == (10, 5)


def test_resize_mode_is_pils_antialiased_bilinear():
    x, y = _batch(n=2, c=1, h=16, w=12)
    out, _ = ProgressiveResize(1, 0.5, mode="resize")(x, y, torch.Generator(), _info(2, 0))
    assert out.shape == (2, 1, 8, 6)
    for i in range(2):
        pil = Image.fromarray(x[i, 0].numpy(), mode="F").resize((6, 8), Image.BILINEAR)
        np.testing.assert_allclose(out[i, 0].numpy(), np.asarray(pil), atol=1e-5)


def test_resize_matches_pil_growing_and_shrinking_and_keeps_the_size_it_has():
    x, y = _batch(n=1, c=1, h=10, w=7)
    for size in [(5, 4), (13, 9)]:
        out, _ = Resize(size)(x, y, torch.Generator())
        pil = Image.fromarray(x[0, 0].numpy(), mode="F").resize(size[::-1], Image.BILINEAR)
        np.testing.assert_allclose(out[0, 0].numpy(), np.asarray(pil), atol=1e-5)
    assert Resize((10, 7))(x, y, torch.Generator())[0] is x
    assert Resize(4).size == (4, 4)


def test_through_the_loader_the_epochs_change_size_and_repeat_with_the_seed():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (10, 3, 8, 8), generator=g, dtype=torch.uint8)
    data = ImageSet(images, torch.arange(10) % 2, ("a", "b"), "random")
    spec = parse_augment("crop:1,progressive:2", data.shape, 2)
    loader = BatchLoader(data, 4, augment=spec, device="cpu", seed=5)
    shapes = [[tuple(x.shape[2:]) for x, _ in loader] for _ in range(3)]
    assert shapes == [[(6, 6)] * 3, [(6, 6)] * 3, [(8, 8)] * 3]
    first = [x for x, _ in BatchLoader(data, 4, augment=spec, device="cpu", seed=5)]
    again = [x for x, _ in BatchLoader(data, 4, augment=spec, device="cpu", seed=5)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_the_spec():
    t = parse_augment("crop:2,progressive:3", (3, 32, 32), 10)
    assert isinstance(t, Compose) and isinstance(t.transforms[0], RandomCrop)
    p = t.transforms[1]
    assert (p.epochs, p.scale, p.mode) == (3, 0.75, "crop")
    p = parse_augment("progressive:2:0.5", (3, 32, 32), 10)
    assert (p.epochs, p.scale) == (2, 0.5)
    assert repr(p) == "ProgressiveResize(epochs=2, scale=0.5, mode='crop')"
    bad = {
        "progressive": "needs E, a whole number of epochs .* got nothing",
        "progressive:2.5": "got 2.5",
        "progressive:0": "epochs must be a positive integer, got 0",
        "progressive:2:1.5": r"scale must be a number in \(0, 1\], got 1.5",
        "progressive:2:0.5:1": "takes at most two values, got 3",
        "progressive:2:x": "'2:x' is not a number",
        "flip:0.5:1": "takes at most one value, got 2",
    }
    for spec, message in bad.items():
        with pytest.raises(ConfigError, match=message):
            parse_augment(spec, (3, 32, 32), 10)


def test_errors():
    x, y = _batch(n=2)
    with pytest.raises(StriateError, match="needs the epoch"):
        ProgressiveResize(1)(x, y, torch.Generator())
    with pytest.raises(StriateError, match="float tensor N×C×H×W"):
        ProgressiveResize(1)(x[0], y, torch.Generator(), _info(2, 0))
    with pytest.raises(StriateError, match="float tensor N×C×H×W"):
        ProgressiveResize(1)(x.to(torch.uint8), y, torch.Generator(), _info(2, 5))
    with pytest.raises(ConfigError, match="mode must be one of crop, resize"):
        ProgressiveResize(1, mode="resise")
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        ProgressiveResize(1.5)
    with pytest.raises(ConfigError, match="scale"):
        ProgressiveResize(1, scale=0)
    for size in ("big", (0, 3)):
        with pytest.raises(ConfigError, match=r"Resize: size must be a positive integer or a \("):
            Resize(size)
