"""ImageSet: validation, indexing, counts, statistics against NumPy, the sample grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from striate import ImageSet
from striate.errors import DataError


def _set(n=12, c=3) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, c, 5, 4), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % 3, ("a", "b", "c"), "test")


def test_indexing_and_subsets():
    ds = _set()
    image, label = ds[4]
    assert torch.equal(image, ds.images[4]) and label == 1
    sub = ds[2:5]
    assert isinstance(sub, ImageSet) and len(sub) == 3 and sub.classes == ds.classes
    assert torch.equal(ds[[0, 3]].labels, torch.tensor([0, 0]))
    assert torch.equal(ds[np.array([1, 2])].images, ds.images[1:3])
    assert len(ds[ds.labels == 2]) == 4
    assert ds.shape == (3, 5, 4) and ds.num_classes == 3
    assert "12 images, 3×5×4, 3 classes" in repr(ds)


def test_class_counts_and_pixel_stats_match_numpy():
    ds = _set(n=30)
    assert ds.class_counts().tolist() == [10, 10, 10]
    mean, std = ds.pixel_stats()
    ref = ds.images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean.numpy(), ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), ref.std(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize(
    ("images", "labels", "classes", "match"),
    [
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), ("a",), "uint8"),
        (
            torch.zeros(2, 3, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ("a",),
            "N×C×H×W",
        ),
        (
            torch.zeros(2, 2, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ("a",),
            "channels",
        ),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.int64),
            ("a",),
            "2 images but 3",
        ),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int32),
            ("a",),
            "int64",
        ),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ("a", "b"), "0..2"),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            (),
            "class names",
        ),
    ],
)
def test_invalid_contents_are_refused(images, labels, classes, match):
    with pytest.raises(DataError, match=match):
        ImageSet(images, labels, classes, "bad")


def test_show_returns_a_figure_grid():
    ds = _set(n=30, c=1)
    fig = ds.show(n=10)
    assert isinstance(fig, Figure) and len([a for a in fig.axes if a.images]) == 10
    per = _set(n=30).show(per_class=4)
    assert len([a for a in per.axes if a.images]) == 12
