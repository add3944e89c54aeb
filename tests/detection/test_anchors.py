"""Anchor grids, matching and balanced sampling against plain Python loops; the post-processing
(ranks per image, NMS per image and class) against per-image loops over `nms`."""

from __future__ import annotations

import math

import pytest
import torch

from striate.detection.anchors import (
    BACKGROUND,
    IGNORE,
    anchor_grid,
    box_iou_batched,
    match_boxes,
    ranks,
    sample_balanced,
)
from striate.detection.boxes import box_iou, nms
from striate.detection.postprocess import padded_detections, rank_in_image, select, unpad_detections
from striate.errors import ConfigError


def _random_boxes(g, *shape, size=64.0):
    xy = torch.rand(*shape, 2, generator=g) * size * 0.8
    wh = 2 + torch.rand(*shape, 2, generator=g) * size * 0.4
    return torch.cat([xy, xy + wh], -1)


def test_anchor_grid_equals_a_loop():
    sizes, ratios, stride, (h, w) = (12.0, 20.0), (1.0, 2.0, 0.5), 8, (3, 5)
    got = anchor_grid((h, w), stride, sizes, ratios)
    want = []
    for y in range(h):
        for x in range(w):
            cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
            for s in sizes:
                for r in ratios:
                    bw, bh = s / math.sqrt(r), s * math.sqrt(r)
                    want.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    torch.testing.assert_close(got, torch.tensor(want))
    area = (got[:, 2] - got[:, 0]) * (got[:, 3] - got[:, 1])
    torch.testing.assert_close(area[:6], torch.tensor([144.0] * 3 + [400.0] * 3))


def test_anchor_options_are_checked():
    with pytest.raises(ConfigError, match="sizes must be a non-empty list"):
        anchor_grid((2, 2), 8, [], (1.0,))
    with pytest.raises(ConfigError, match="aspect_ratios"):
        anchor_grid((2, 2), 8, (8,), (0.0,))


def test_batched_iou_equals_per_image_iou():
    g = torch.Generator().manual_seed(0)
    anchors, gt, props = _random_boxes(g, 7), _random_boxes(g, 3, 4), _random_boxes(g, 3, 5)
    shared, own = box_iou_batched(anchors, gt), box_iou_batched(props, gt)
    for b in range(3):
        torch.testing.assert_close(shared[b], box_iou(anchors, gt[b]))
        torch.testing.assert_close(own[b], box_iou(props[b], gt[b]))


def _match_loop(iou, labels, fg, bg, low_quality):
    b, n, m = iou.shape
    out = torch.empty(b, n, dtype=torch.int64)
    for i in range(b):
        real = [j for j in range(m) if labels[i, j] >= 0]
        for k in range(n):
            best, arg = -1.0, -1
            for j in real:
                if iou[i, k, j] > best:
                    best, arg = float(iou[i, k, j]), j
            if arg >= 0 and best >= fg:
                out[i, k] = arg
            elif best < bg:
                out[i, k] = BACKGROUND
            else:
                out[i, k] = IGNORE
            if low_quality:
                for j in real:
                    top = max(float(iou[i, q, j]) for q in range(n))
                    if top > 0 and float(iou[i, k, j]) == top:
                        out[i, k] = arg
            crowd = max([float(iou[i, k, j]) for j in range(m) if labels[i, j] == -2] + [0.0])
            if out[i, k] == BACKGROUND and crowd >= bg and crowd > 0:
                out[i, k] = IGNORE
    return out


@pytest.mark.parametrize("low_quality", [True, False])
def test_matching_equals_a_loop(low_quality):
    g = torch.Generator().manual_seed(1)
    anchors = anchor_grid((4, 4), 16, (16.0, 28.0), (1.0, 2.0))
    gt = _random_boxes(g, 3, 4)
    labels = torch.tensor([[3, 1, -1, -1], [0, -2, 5, -1], [-1, -1, -1, -1]])
    iou = box_iou_batched(anchors, gt)
    iou[0, 5, 0] = iou[0, 6, 0] = iou[0].max() + 0.0  # a tie for object 0's best anchor
    got = match_boxes(iou, labels, 0.5, 0.3, low_quality)
    torch.testing.assert_close(got, _match_loop(iou, labels, 0.5, 0.3, low_quality))
    assert (got[2] == BACKGROUND).all()  # an image without objects
    assert (got[1] != 1).all()  # a crowd region matches nothing
    if low_quality:
        assert got[0, 5] == got[0, 6] == 0


def test_matching_without_objects_and_bad_thresholds():
    iou = torch.zeros(2, 5, 0)
    assert (match_boxes(iou, torch.zeros(2, 0, dtype=torch.long), 0.5, 0.4) == BACKGROUND).all()
    with pytest.raises(ConfigError, match="bg_iou 0.6 must not exceed fg_iou 0.5"):
        match_boxes(torch.zeros(1, 2, 1), torch.zeros(1, 1, dtype=torch.long), 0.5, 0.6)


def test_ranks_equal_argsort_of_argsort():
    keys = torch.rand(4, 9, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ranks(keys), keys.argsort(-1).argsort(-1))


@pytest.mark.parametrize("per_image, fraction", [(8, 0.5), (3, 0.25), (100, 1.0)])
def test_balanced_sampling_takes_the_counts_the_rule_gives(per_image, fraction):
    g = torch.Generator().manual_seed(3)
    matched = torch.randint(-2, 3, (5, 40), generator=g)
    matched[4] = BACKGROUND  # an image without positives
    chosen = sample_balanced(matched, per_image, fraction, generator=g)
    for i in range(5):
        pos, neg = int((matched[i] >= 0).sum()), int((matched[i] == BACKGROUND).sum())
        want_pos = min(pos, int(per_image * fraction))
        want_neg = min(neg, per_image - want_pos)
        assert int((chosen[i] & (matched[i] >= 0)).sum()) == want_pos
        assert int((chosen[i] & (matched[i] == BACKGROUND)).sum()) == want_neg
    assert not (chosen & (matched == IGNORE)).any()
    again = sample_balanced(matched, per_image, fraction, torch.Generator().manual_seed(9))
    other = sample_balanced(matched, per_image, fraction, torch.Generator().manual_seed(9))
    assert torch.equal(again, other)


def test_sampling_is_uniform_among_positives():
    matched = torch.full((1, 6), BACKGROUND)
    matched[0, :4] = 0
    g = torch.Generator().manual_seed(4)
    counts = sum(sample_balanced(matched, 2, 0.5, g).long() for _ in range(2000))[0]
    assert counts[:4].sum() == 2000  # one positive per draw
    assert ((counts[:4] - 500).abs() < 90).all()  # each positive ~1/4 of the time


def test_rank_in_image_equals_a_loop():
    image = torch.tensor([2, 0, 2, 1, 0, 2, 0])
    seen: dict[int, int] = {}
    want = []
    for i in image.tolist():
        want.append(seen.get(i, 0))
        seen[i] = seen.get(i, 0) + 1
    assert rank_in_image(image).tolist() == want
    assert rank_in_image(torch.zeros(0, dtype=torch.long)).numel() == 0


def test_select_equals_nms_per_image_and_class():
    g = torch.Generator().manual_seed(5)
    k = 60
    boxes = _random_boxes(g, k, size=32.0) - 4  # some reach past the 32×32 image
    scores = torch.rand(k, generator=g)
    labels = torch.randint(0, 3, (k,), generator=g)
    image = torch.randint(0, 3, (k,), generator=g)
    image[image == 1] = 0  # image 1 has no candidates
    got = select(boxes, scores, labels, image, 3, (32, 32), score_threshold=0.2,
                 nms_threshold=0.4, min_size=3.0, per_image=5)  # fmt: skip
    assert len(got) == 3 and len(got[1]["scores"]) == 0
    for i in range(3):
        clipped = boxes.clone()
        clipped[:, 0::2] = clipped[:, 0::2].clamp(0, 32)
        clipped[:, 1::2] = clipped[:, 1::2].clamp(0, 32)
        wh = clipped[:, 2:] - clipped[:, :2]
        ok = (image == i) & (scores > 0.2) & (wh >= 3.0).all(1)
        kept = []
        for c in range(3):
            idx = torch.nonzero(ok & (labels == c)).flatten()
            kept += idx[nms(clipped[idx], scores[idx], 0.4)].tolist()
        kept = sorted(kept, key=lambda j: -float(scores[j]))[:5]
        torch.testing.assert_close(got[i]["boxes"], clipped[kept])
        torch.testing.assert_close(got[i]["scores"], scores[kept])
        assert got[i]["labels"].tolist() == labels[kept].tolist()
    raw = select(boxes, scores, labels, image, 3, (32, 32), score_threshold=0.2,
                 nms_threshold=None, min_size=3.0, per_image=100)  # fmt: skip
    assert all(len(r["scores"]) >= len(d["scores"]) for r, d in zip(raw, got, strict=True))
    back = unpad_detections(padded_detections(got, 7))
    for a, b in zip(got, back, strict=True):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        assert a["labels"].tolist() == b["labels"].tolist()
