"""DetectionLoader: batches equal DetectionSet's own padded targets and semantic masks for the
same images, augmentation follows the seed, and a resumed epoch equals the uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from striate.data.box_augment import BoxTargets, BoxZoom, mask_boxes, parse_box_augment
from striate.data.detection_loader import DetectionLoader, semantic_from_instances
from striate.data.detectionset import DetectionSet
from striate.errors import ConfigError, DataError


def make_set(n: int = 23, size: int = 16, seed: int = 0, masks: bool = True) -> DetectionSet:
    """Random images with 0–4 objects each; masks are random pixels inside each box, some crowd."""
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 5, (n,), generator=g)
    t = int(counts.sum())
    xy = torch.randint(0, size - 4, (t, 2), generator=g)
    wh = torch.randint(1, 5, (t, 2), generator=g)
    boxes = torch.cat([xy, xy + wh], 1).float()
    cols, rows = torch.arange(size), torch.arange(size)[:, None]
    inside = (
        (cols >= boxes[:, 0, None, None])
        & (cols < boxes[:, 2, None, None])
        & (rows >= boxes[:, 1, None, None])
        & (rows < boxes[:, 3, None, None])
    )
    m = inside & (torch.rand(t, size, size, generator=g) < 0.7)
    return DetectionSet(
        torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        boxes,
        torch.randint(0, 4, (t,), generator=g),
        torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)]),
        ("a", "b", "c", "d"),
        masks=m if masks else None,
        crowd=torch.rand(t, generator=g) < 0.2,
    )


def order_of(loader: DetectionLoader, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(loader.seed * 1_000_003 + epoch)
    return torch.randperm(loader.n, generator=g)


@pytest.mark.parametrize("targets", ["boxes", "semantic", "instances"])
def test_batches_equal_the_sets_own_targets(targets):
    ds = make_set()
    loader = DetectionLoader(ds, 5, targets=targets, device="cpu", seed=3)
    order = order_of(loader, 0)
    batches = list(loader)
    assert len(batches) == len(loader) == 5
    for k, batch in enumerate(batches):
        index = order[5 * k : 5 * k + 5]
        assert torch.equal(batch[0], ds.images[index].float() / 255)
        if targets == "semantic":
            assert torch.equal(batch[1], ds.semantic_masks(index))
            continue
        boxes, labels = ds.padded(index)
        assert torch.equal(batch[1], boxes) and torch.equal(batch[2], labels)
        if targets == "instances":
            for i, img in enumerate(index.tolist()):
                own = ds.target(img)["masks"]
                assert torch.equal(batch[3][i, : len(own)], own)
                assert not batch[3][i, len(own) :].any()


def test_semantic_from_instances_equals_the_sets_semantic_masks():
    ds = make_set(seed=1)
    index = torch.arange(len(ds))
    loader = DetectionLoader(ds, len(ds), targets="instances", shuffle=False, device="cpu")
    _, _, labels, masks = next(iter(loader))
    classes = torch.where(labels == -2, 0, labels)
    classes[labels == -2] = ds.labels[ds.crowd]  # crowd regions keep their class
    assert torch.equal(semantic_from_instances(masks, classes), ds.semantic_masks(index))


def test_normalize_and_no_shuffle_and_drop_last():
    ds = make_set()
    loader = DetectionLoader(
        ds, 10, shuffle=False, drop_last=True, normalize=lambda x: x * 2 - 1, device="cpu"
    )
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    assert torch.equal(batches[1][0], ds.images[10:20].float() / 255 * 2 - 1)


@pytest.mark.parametrize("targets", ["boxes", "instances", "semantic"])
def test_resume_mid_epoch_equals_the_uninterrupted_run(targets):
    ds = make_set(n=30)
    aug = parse_box_augment("flip,zoom:0.6-1.6,jitter:0.3")

    def loader():
        return DetectionLoader(ds, 4, augment=aug, targets=targets, device="cpu", seed=7)

    whole = loader()
    run = [b for _ in range(2) for b in whole]
    first = loader()
    it = iter(first)
    seen = [next(it) for _ in range(3)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    seen += list(resumed) + list(resumed)
    assert len(seen) == len(run) == 16
    for a, b in zip(seen, run, strict=True):
        for u, v in zip(a, b, strict=True):
            assert torch.equal(u, v)
    # another epoch is augmented differently; the same epoch again the same way
    again = loader()
    again.set_epoch(1)
    assert torch.equal(next(iter(again))[0], run[8][0])
    assert not torch.equal(run[8][0], run[0][0])


def test_augmentation_moves_targets_with_the_pixels():
    ds = make_set(n=12)
    zoom = BoxZoom((1.3, 2.0))
    loader = DetectionLoader(ds, 12, augment=zoom, targets="instances", device="cpu", seed=2)
    x, boxes, labels, masks = next(iter(loader))
    g = torch.Generator().manual_seed(2 * 1_000_003 + 0)  # (seed, epoch 0)
    index = torch.randperm(12, generator=g)
    want_boxes, want_labels = ds.padded(index)
    y = BoxTargets(
        want_boxes, want_labels, masks.new_zeros(masks.shape[0], want_labels.shape[1], 16, 16)
    )
    for i, img in enumerate(index.tolist()):
        own = ds.target(img)["masks"]
        y.masks[i, : len(own)] = own
    x_ref, y_ref = zoom(ds.images[index].float() / 255, y, g)
    assert torch.equal(x, x_ref) and torch.equal(labels, y_ref.labels)
    assert torch.equal(masks, y_ref.masks) and torch.equal(boxes, y_ref.boxes)
    real = labels != -1
    assert torch.equal(mask_boxes(masks)[real], boxes[real])  # boxes recomputed from masks
    semantic = DetectionLoader(ds, 12, augment=zoom, targets="semantic", device="cpu", seed=2)
    assert bool(((next(iter(semantic))[1] > 0) == masks.any(1)).all())


def test_bad_arguments_are_one_clear_error():
    ds = make_set(masks=False)
    with pytest.raises(DataError, match="targets='semantic' needs instance masks"):
        DetectionLoader(ds, 4, targets="semantic")
    with pytest.raises(ConfigError, match="targets must be one of boxes, semantic, instances"):
        DetectionLoader(ds, 4, targets="masks")
    with pytest.raises(ConfigError, match="takes a DetectionSet"):
        DetectionLoader(ds.images, 4)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        DetectionLoader(ds, 0)
    with pytest.raises(ConfigError, match="drop_last"):
        DetectionLoader(ds, 100, drop_last=True)
