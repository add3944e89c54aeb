"""striate.data.masks against pycocotools.mask: RLE strings, decoding, area, boxes, polygons."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from striate.data import masks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pycocotools")


def _reference(m: np.ndarray) -> list[dict]:
    """pycocotools' RLEs of N×H×W masks (it wants H×W×N, Fortran order)."""
    return coco_mask.encode(np.asfortranarray(m.transpose(1, 2, 0).astype(np.uint8)))


def _random_masks(rng, n, h, w) -> np.ndarray:
    m = rng.random((n, h, w)) < rng.random()
    m[0] = False  # an empty mask
    if n > 1:
        m[1] = True  # a full one (its RLE starts with a run of 0 zeros)
    return m


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (5, 1), (13, 17), (31, 8)])
def test_encode_equals_pycocotools(h, w):
    rng = np.random.default_rng(h * 100 + w)
    m = _random_masks(rng, 6, h, w)
    ours = masks.encode(m)
    ref = _reference(m)
    assert [r["counts"] for r in ours] == [r["counts"].decode() for r in ref]
    assert all(r["size"] == [h, w] for r in ours)
    assert np.array_equal(masks.area(ours), coco_mask.area(ref))
    assert np.array_equal(masks.area(m), coco_mask.area(ref))
    assert np.array_equal(masks.to_bbox(ours), coco_mask.toBbox(ref))
    assert np.array_equal(masks.decode(ours), m)


def test_long_runs_and_negative_deltas():
    # Counts in the tens of thousands (several characters each) and differences that go
    # negative (the sign bit of the last group).
    m = np.zeros((3, 300, 400), dtype=bool)
    m[0, 100:250, 50:390] = True
    m[1, :, 399] = True
    m[2, 5:290, 10:11] = True
    m[2, 0:2, 200:400] = True
    ref = _reference(m)
    assert [r["counts"] for r in masks.encode(m)] == [r["counts"].decode() for r in ref]
    # pycocotools' own bytes decode the same way
    assert np.array_equal(masks.decode(ref), m)


def test_uncompressed_counts_equal_pycocotools():
    rng = np.random.default_rng(1)
    m = _random_masks(rng, 4, 9, 11)
    counts, lengths = masks.mask_counts(m)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    plain = [
        {"size": [9, 11], "counts": counts[a:b].tolist()}
        for a, b in zip(starts[:-1], starts[1:], strict=True)
    ]
    ref = coco_mask.frPyObjects(plain, 9, 11)
    assert np.array_equal(masks.decode(plain), coco_mask.decode(ref).transpose(2, 0, 1) > 0)
    assert np.array_equal(masks.decode(plain), m)
    mixed = [plain[0], masks.encode(m[1:2])[0], plain[2]]
    assert np.array_equal(masks.decode(mixed), m[:3])


def test_polygons_equal_pycocotools():
    rng = np.random.default_rng(2)
    cases = []
    for trial in range(150):
        h, w, k = int(rng.integers(1, 30)), int(rng.integers(1, 30)), int(rng.integers(3, 9))
        poly = rng.random(2 * k) * np.tile([w + 6, h + 6], k) - 3  # partly outside
        if trial % 3 == 0:
            poly = np.round(poly * 2) / 2  # on half pixels, where rounding decides
        if trial % 5 == 0:
            poly[2:4] = poly[0:2]  # a repeated vertex
        cases.append((poly.tolist(), h, w))
    for poly, h, w in cases:
        ref = coco_mask.decode(coco_mask.frPyObjects([poly], h, w))[:, :, 0] > 0
        ours = masks.polygon_masks([poly], h, w)[0]
        assert np.array_equal(ours, ref), (poly, h, w)


def test_polygon_parts_merge_like_ann_to_mask():
    h, w = 20, 25
    parts = [
        [1.0, 1.0, 10.0, 1.5, 9.0, 8.0, 2.0, 9.0],
        [12.3, 3.0, 24.0, 4.0, 18.0, 19.5],
        [5.0, 5.0, 15.0, 5.0, 15.0, 15.0, 5.0, 15.0],  # overlaps the first
    ]
    other = [[0.0, 10.0, 6.0, 19.0, 0.0, 19.0]]
    ours = masks.polygon_masks(parts + other, h, w, owner=[0, 0, 0, 1], n=2)
    ref0 = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(parts, h, w))) > 0
    ref1 = coco_mask.decode(coco_mask.frPyObjects(other, h, w))[:, :, 0] > 0
    assert np.array_equal(ours[0], ref0) and np.array_equal(ours[1], ref1)
    assert (
        masks.encode(ours[:1])[0]["counts"]
        == coco_mask.encode(np.asfortranarray(ref0.astype(np.uint8)))["counts"].decode()
    )


@pytest.mark.parametrize(
    "rle, words",
    [
        ({"size": [2, 2], "counts": "1k"}, "middle of a number"),  # 'k' says more follows
        ({"size": [2, 2], "counts": "1~"}, "alphabet"),
        ({"size": [2, 2], "counts": "1é"}, "alphabet"),
        ({"size": [2, 3], "counts": "4"}, "sum to 4 pixels"),
        ({"size": [2, 2], "counts": [2, -1, 3]}, "negative"),
        ({"size": [2, 2], "counts": [1.5, 2.5]}, "integers"),
    ],
)
def test_bad_rles_raise(rle, words):
    with pytest.raises(ValueError, match=words):
        masks.decode([rle])


def test_one_and_two_point_parts_as_pycocotools_draws_them():
    # pycocotools reads a *first* polygon of 4 numbers as a box [x, y, w, h] (frPyObjects'
    # dispatch); after another polygon it draws it as the line there and back, as we always do.
    rng = np.random.default_rng(3)
    for _ in range(100):
        h, w = int(rng.integers(2, 30)), int(rng.integers(2, 30))
        big = (rng.random(8) * np.tile([w, h], 4)).tolist()
        k = int(rng.integers(1, 3))
        small = (rng.random(2 * k) * np.tile([w + 4, h + 4], k) - 2).tolist()
        ref = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([big, small], h, w))) > 0
        ours = masks.polygon_masks([big, small], h, w, owner=[0, 0], n=1)[0]
        assert np.array_equal(ours, ref)


def test_bad_polygon_raises():
    with pytest.raises(ValueError, match="x, y pairs"):
        masks.polygon_masks([[1.0, 2.0, 3.0]], 5, 5)
