"""Box operations against brute-force Python loops in float64 and torchvision's formulas."""

from __future__ import annotations

import math

import pytest
import torch

from striate.detection import boxes as B
from striate.errors import ConfigError, InputError


def random_boxes(n: int, g: torch.Generator, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * size
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * size / 3
    return torch.cat((xy, xy + wh), 1)


def iou_loop(a, b):
    out = torch.zeros(len(a), len(b), dtype=torch.float64)
    for i, (ax1, ay1, ax2, ay2) in enumerate(a.tolist()):
        for j, (bx1, by1, bx2, by2) in enumerate(b.tolist()):
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def giou_loop(a, b):
    out = torch.zeros(len(a), len(b), dtype=torch.float64)
    for i, (ax1, ay1, ax2, ay2) in enumerate(a.tolist()):
        for j, (bx1, by1, bx2, by2) in enumerate(b.tolist()):
            iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
            ih = max(0.0, min(ay2, by2) - max(ay1, by1))
            inter = iw * ih
            union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
            hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
            out[i, j] = inter / union - (hull - union) / hull
    return out


def nms_loop(boxes, scores, thr):
    """torchvision's CPU kernel (nms_kernel.cpp), transcribed: sort by score, suppress IoU > thr."""
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    suppressed = [False] * len(order)
    keep = []
    iou = iou_loop(boxes, boxes)
    for a, i in enumerate(order):
        if suppressed[a]:
            continue
        keep.append(i)
        for b in range(a + 1, len(order)):
            if iou[i, order[b]] > thr:
                suppressed[b] = True
    return keep


def test_box_convert_round_trips_and_formulas():
    g = torch.Generator().manual_seed(0)
    xyxy = random_boxes(20, g)
    x1, y1, x2, y2 = xyxy.unbind(1)
    xywh = torch.stack((x1, y1, x2 - x1, y2 - y1), 1)
    cxcywh = torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), 1)
    forms = {"xyxy": xyxy, "xywh": xywh, "cxcywh": cxcywh}
    for a, ta in forms.items():
        for b, tb in forms.items():
            torch.testing.assert_close(B.box_convert(ta, a, b), tb)
    assert B.box_convert(xyxy[None], "xyxy", "xywh").shape == (1, 20, 4)
    with pytest.raises(ConfigError, match="in_fmt must be one of"):
        B.box_convert(xyxy, "xxyy", "xyxy")
    with pytest.raises(InputError, match=r"shape \(\.\.\., 4\)"):
        B.box_convert(xyxy[:, :3], "xyxy", "xywh")


def test_iou_and_giou_equal_loops():
    g = torch.Generator().manual_seed(1)
    a, b = random_boxes(13, g), random_boxes(9, g)
    b[0] = a[0]  # identical
    b[1] = torch.tensor([500.0, 500.0, 510.0, 510.0])  # disjoint from everything
    torch.testing.assert_close(B.box_iou(a, b), iou_loop(a, b))
    torch.testing.assert_close(B.generalized_box_iou(a, b), giou_loop(a, b))
    assert B.box_iou(a, b)[0, 0] == 1
    assert (B.generalized_box_iou(a, b)[:, 1] < 0).all()
    torch.testing.assert_close(B.box_area(a), (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))
    empty = torch.zeros(0, 4)
    assert B.box_iou(empty, a.float()).shape == (0, 13)
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert B.box_iou(point, point).item() == 0  # zero union: 0, not NaN


def test_nms_equals_torchvisions_loop_with_ties():
    g = torch.Generator().manual_seed(2)
    for trial in range(5):
        boxes = random_boxes(60, g, size=40)  # crowded: lots of overlap
        scores = torch.rand(60, generator=g, dtype=torch.float64)
        if trial % 2:
            scores = (scores * 4).round()  # ties
        for thr in (0.0, 0.3, 0.5, 0.9):
            expected = nms_loop(boxes, scores, thr)
            kept = B.nms(boxes, scores, thr)
            assert kept.tolist() == expected
    assert B.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


def test_batched_nms_is_nms_per_category(monkeypatch):
    g = torch.Generator().manual_seed(3)
    boxes = random_boxes(80, g, size=40)
    scores = torch.rand(80, generator=g, dtype=torch.float64)
    idxs = torch.randint(0, 4, (80,), generator=g)
    expected = []
    for c in range(4):
        members = torch.nonzero(idxs == c).flatten()
        expected += [int(members[k]) for k in nms_loop(boxes[members], scores[members], 0.4)]
    expected.sort(key=lambda i: -float(scores[i]))
    assert B.batched_nms(boxes, scores, idxs, 0.4).tolist() == expected
    assert B.batched_nms(boxes - 70, scores, idxs, 0.4).tolist() == expected  # negative corners
    monkeypatch.setattr(B, "PER_CATEGORY_ABOVE", 10)  # the per-category branch
    assert B.batched_nms(boxes, scores, idxs, 0.4).tolist() == expected
    assert B.batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


def test_clip_and_remove_small():
    boxes = torch.tensor([[-5.0, -2.0, 50.0, 20.0], [3.0, 4.0, 3.5, 9.0], [1.0, 1.0, 8.0, 8.0]])
    clipped = B.clip_boxes_to_image(boxes, (10, 30))  # height 10, width 30
    assert clipped.tolist() == [[0, 0, 30, 10], [3, 4, 3.5, 9], [1, 1, 8, 8]]
    assert B.remove_small_boxes(boxes, 1.0).tolist() == [0, 2]
    assert B.remove_small_boxes(boxes, 0.5).tolist() == [0, 1, 2]


def test_encode_decode_is_torchvisions_box_coder():
    g = torch.Generator().manual_seed(4)
    anchors, gt = random_boxes(10, g) + 1, random_boxes(10, g) + 1
    weights = (10.0, 10.0, 5.0, 5.0)  # Faster R-CNN's RoI head
    codes = B.encode_boxes(gt, anchors, weights)
    for k in range(10):  # torchvision's formulas, written out for one box at a time
        ax1, ay1, ax2, ay2 = anchors[k].tolist()
        gx1, gy1, gx2, gy2 = gt[k].tolist()
        aw, ah, gw, gh = ax2 - ax1, ay2 - ay1, gx2 - gx1, gy2 - gy1
        acx, acy, gcx, gcy = ax1 + 0.5 * aw, ay1 + 0.5 * ah, gx1 + 0.5 * gw, gy1 + 0.5 * gh
        want = [10 * (gcx - acx) / aw, 10 * (gcy - acy) / ah, 5 * math.log(gw / aw)]
        want.append(5 * math.log(gh / ah))
        torch.testing.assert_close(codes[k], torch.tensor(want, dtype=torch.float64))
    torch.testing.assert_close(B.decode_boxes(codes, anchors, weights), gt)
    # dw, dh clamped at log(1000/16): a huge prediction gives a box 62.5 anchors wide
    wild = torch.tensor([[0.0, 0.0, 100.0, 100.0]])
    out = B.decode_boxes(wild, torch.tensor([[0.0, 0.0, 2.0, 4.0]]))
    torch.testing.assert_close(out, torch.tensor([[-61.5, -123.0, 63.5, 127.0]]))
    # broadcasting: class-specific codes N×K×4 against anchors N×1×4
    many = B.decode_boxes(codes[:, None].expand(10, 3, 4), anchors[:, None], weights)
    assert many.shape == (10, 3, 4)
    with pytest.raises(InputError, match="weights must be 4 numbers"):
        B.encode_boxes(gt, anchors, (1.0, 1.0))


def test_bad_boxes_are_one_line_errors():
    bad = torch.tensor([[0.0, 0.0, 5.0, 5.0], [4.0, 0.0, 2.0, 5.0]])
    for fn in (
        lambda: B.box_iou(bad, bad),
        lambda: B.generalized_box_iou(bad, bad),
        lambda: B.nms(bad, torch.ones(2), 0.5),
    ):
        with pytest.raises(InputError, match=r"\[1\] = \[4.0, 0.0, 2.0, 5.0\] has x2 < x1") as e:
            fn()
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="N×4 tensor"):
        B.box_iou(torch.zeros(3, 5), torch.zeros(2, 4))
    with pytest.raises(InputError, match="floating"):
        B.box_iou(torch.zeros(3, 4, dtype=torch.int64), torch.zeros(2, 4))
    with pytest.raises(InputError, match="not finite"):
        B.nms(torch.tensor([[0.0, 0.0, float("nan"), 1.0]]), torch.ones(1), 0.5)
    with pytest.raises(InputError, match=r"scores must be a tensor of shape \(2,\)"):
        B.nms(bad[:1].repeat(2, 1), torch.ones(3), 0.5)
    with pytest.raises(InputError, match=r"idxs must be a tensor of shape \(2,\)"):
        B.batched_nms(bad[:1].repeat(2, 1), torch.ones(2), torch.zeros(1), 0.5)
    with pytest.raises(ConfigError, match="iou_threshold must be"):
        B.nms(bad[:1], torch.ones(1), float("nan"))
    with pytest.raises(InputError, match=r"size must be \(height, width\)"):
        B.clip_boxes_to_image(bad, (3,))
