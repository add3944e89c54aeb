"""DetectionSet: flat objects with offsets, indexing, padding and semantic masks, against loops."""

import pytest
import torch

from striate.data.detectionset import DetectionSet
from striate.errors import DataError


def make_set(seed: int = 0, n: int = 6, size: int = 16, masks: bool = True) -> DetectionSet:
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 4, (n,), generator=g)
    t = int(counts.sum())
    xy = torch.rand(t, 2, generator=g) * (size / 2)
    wh = torch.rand(t, 2, generator=g) * (size / 2)
    boxes = torch.cat([xy, xy + wh], 1)
    m = torch.rand(t, size, size, generator=g) > 0.6 if masks else None
    return DetectionSet(
        torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        boxes,
        torch.randint(0, 3, (t,), generator=g),
        torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
        ("a", "b", "c"),
        masks=m,
        crowd=torch.rand(t, generator=g) < 0.2,
    )


def test_indexing_keeps_each_images_objects():
    ds = make_set()
    index = torch.tensor([4, 0, 4, 2])
    sub = ds[index]
    assert len(sub) == 4 and sub.image_ids.tolist() == [5, 1, 5, 3]
    for k, i in enumerate(index.tolist()):
        _, mine = sub[k]
        _, theirs = ds[i]
        for key in theirs:
            assert torch.equal(mine[key], theirs[key])
    assert torch.equal(ds[1:3].images, ds.images[1:3])
    assert len(ds[ds.counts() > 0]) == int((ds.counts() > 0).sum())


def test_padded_matches_a_loop():
    ds = make_set(1)
    index = torch.arange(len(ds))
    boxes, labels = ds.padded(index)
    assert boxes.shape[1] == int(ds.counts().max())
    for i in range(len(ds)):
        _, t = ds[i]
        k = len(t["labels"])
        assert torch.equal(boxes[i, :k], t["boxes"])
        assert torch.equal(labels[i, :k], torch.where(t["crowd"], -2, t["labels"]))
        assert (labels[i, k:] == -1).all()


def test_semantic_masks_paint_later_objects_on_top():
    ds = make_set(2)
    out = ds.semantic_masks()
    for i in range(len(ds)):
        _, t = ds[i]
        want = torch.zeros(ds.shape[1:], dtype=torch.int64)
        for mask, label in zip(t["masks"], t["labels"], strict=True):
            want[mask] = int(label) + 1
        assert torch.equal(out[i], want)


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ([5.0, 2.0, 3.0, 4.0], "x2 < x1"),
        ([1.0, 5.0, 3.0, 4.0], "y2 < y1"),
        ([1.0, 2.0, 17.0, 4.0], "outside the 16×16 image"),
        ([-1.0, 2.0, 3.0, 4.0], "outside"),
        ([float("nan"), 2.0, 3.0, 4.0], "not finite"),
    ],
)
def test_bad_boxes_get_one_line(box, message):
    images = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(DataError, match=message) as e:
        DetectionSet(images, torch.tensor([box]), torch.tensor([0]), torch.tensor([0, 1]), ("a",))
    assert "\n" not in str(e.value) and "image 0" in str(e.value)


def test_bad_structure_is_reported():
    images = torch.zeros(2, 3, 8, 8, dtype=torch.uint8)
    boxes = torch.tensor([[0.0, 0, 1, 1]])
    with pytest.raises(DataError, match="offsets"):
        DetectionSet(images, boxes, torch.tensor([0]), torch.tensor([0, 1]), ("a",))
    with pytest.raises(DataError, match="labels range"):
        DetectionSet(images, boxes, torch.tensor([3]), torch.tensor([0, 1, 1]), ("a",))
    with pytest.raises(DataError, match="masks must be 1×8×8"):
        DetectionSet(
            images,
            boxes,
            torch.tensor([0]),
            torch.tensor([0, 1, 1]),
            ("a",),
            masks=torch.zeros(1, 4, 4, dtype=torch.bool),
        )
    with pytest.raises(DataError, match="no instance masks"):
        make_set(masks=False).semantic_masks()


def test_empty_set_and_show():
    ds = DetectionSet(
        torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(3, dtype=torch.int64),
        ("a",),
    )
    boxes, labels = ds.padded(torch.arange(2))
    assert boxes.shape == (2, 0, 4) and labels.shape == (2, 0)
    assert make_set().show(4).axes


def test_category_ids_travel_with_subsets():
    ds = make_set()
    ds = DetectionSet(
        ds.images,
        ds.boxes,
        ds.labels,
        ds.offsets,
        ds.classes,
        ds.masks,
        ds.crowd,
        category_ids=(7, 3, 11),
    )
    assert ds[[1, 0]].category_ids == (7, 3, 11) and ds.to("cpu").category_ids == (7, 3, 11)
    with pytest.raises(DataError, match="3 classes but 2 category ids"):
        DetectionSet(ds.images, ds.boxes, ds.labels, ds.offsets, ds.classes, category_ids=(1, 2))
