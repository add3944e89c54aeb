"""Box operations with torchvision.ops' names and semantics: conversions, areas, IoU and GIoU,
clipping, NMS (plain and class-wise) and Faster R-CNN's box coding.

Boxes are `(..., 4)` float tensors, x1 y1 x2 y2 unless said otherwise, with no "+1" on widths
(COCO's and torchvision's convention; the VOC devkit adds 1 pixel). IoU, GIoU and NMS check that
x2 ≥ x1 and y2 ≥ y1 and name the first box that is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from striate.checks import number, one_of
from striate.errors import InputError

FORMATS = ("xyxy", "xywh", "cxcywh")
BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's clamp on dw, dh before exp
PER_CATEGORY_ABOVE = 4000  # batched_nms: one NMS per category above this many boxes


def check_boxes(boxes: torch.Tensor, owner: str, name: str = "boxes", ordered: bool = True) -> None:
    """Raise a one-line InputError unless `boxes` is a floating N×4 tensor of finite values (with
    x2 ≥ x1 and y2 ≥ y1 when `ordered`)."""
    if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[-1] != 4:
        got = f"shape {tuple(boxes.shape)}" if isinstance(boxes, torch.Tensor) else type(boxes)
        raise InputError(f"{owner}: {name} must be an N×4 tensor of boxes, got {got}")
    if not boxes.is_floating_point():
        raise InputError(f"{owner}: {name} must be a floating tensor, got {boxes.dtype}")
    bad = ~torch.isfinite(boxes).all(1)
    what = "is not finite"
    if ordered and not bool(bad.any()):
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        what = "has x2 < x1 or y2 < y1 (boxes are x1 y1 x2 y2: convert xywh with box_convert)"
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise InputError(f"{owner}: {name}[{k}] = {boxes[k].tolist()} {what}")


def box_convert(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    """Convert `(..., 4)` boxes between "xyxy" (corners), "xywh" (top-left corner and size) and
    "cxcywh" (centre and size)."""
    one_of("box_convert", "in_fmt", in_fmt, FORMATS)
    one_of("box_convert", "out_fmt", out_fmt, FORMATS)
    if not isinstance(boxes, torch.Tensor) or boxes.ndim == 0 or boxes.shape[-1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise InputError(f"box_convert: boxes must be a tensor of shape (..., 4), got {got}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), -1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(x2 − x1)(y2 − y1) of `(..., 4)` xyxy boxes."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, box_area(a)[:, None] + box_area(b)[None, :] - inter


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), 0.0)


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """N×M intersection over union. Two empty (zero-area) boxes have IoU 0 here (torchvision:
    NaN)."""
    check_boxes(boxes1, "box_iou", "boxes1")
    check_boxes(boxes2, "box_iou", "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    return _safe_div(inter, union)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """N×M generalized IoU, IoU − |C \\ (A ∪ B)| / |C| with C the smallest enclosing box
    (Rezatofighi et al. 2019, eq. 1), in [−1, 1]."""
    check_boxes(boxes1, "generalized_box_iou", "boxes1")
    check_boxes(boxes2, "generalized_box_iou", "boxes2")
    inter, union = _inter_union(boxes1, boxes2)
    iou = _safe_div(inter, union)
    lt = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return iou - _safe_div(hull - union, hull)


def clip_boxes_to_image(boxes: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """`(..., 4)` xyxy boxes clipped to an image of `size` = (height, width): x into [0, width],
    y into [0, height]."""
    if len(size) != 2:
        raise InputError(f"clip_boxes_to_image: size must be (height, width), got {size!r}")
    h, w = size
    x = boxes[..., 0::2].clamp(0, w)
    y = boxes[..., 1::2].clamp(0, h)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), -1)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose width and height are both ≥ `min_size`."""
    number("remove_small_boxes", "min_size", min_size)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((w >= min_size) & (h >= min_size)).flatten()


def _check_scores(owner: str, boxes: torch.Tensor, scores: torch.Tensor) -> None:
    if not isinstance(scores, torch.Tensor) or scores.shape != (len(boxes),):
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise InputError(f"{owner}: scores must be a tensor of shape ({len(boxes)},), got {got}")


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes by decreasing score. A box is
    dropped when its IoU with a kept, higher-scoring box is > `iou_threshold` (torchvision's rule);
    equal scores keep their input order.

    The IoU matrix is computed once (N², as one tensor op); the greedy pass over its thresholded
    boolean rows is inherently sequential (whether box i suppresses j depends on whether i was
    itself kept) and runs once per *kept* box, on the CPU copy of the matrix.
    """
    check_boxes(boxes, "nms")
    _check_scores("nms", boxes, scores)
    iou_threshold = number("nms", "iou_threshold", iou_threshold)
    order = torch.sort(scores, descending=True, stable=True).indices
    if len(order) == 0:
        return order
    b = boxes[order]
    inter, union = _inter_union(b, b)
    over = (_safe_div(inter, union) > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= over[i]
    return order[torch.as_tensor(keep, device=order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS within each category `idxs`: boxes of different categories never suppress each other.
    Indices of the kept boxes by decreasing score.

    Boxes are shifted by category × (largest coordinate + 1) so that categories never overlap and
    one NMS does all (torchvision's trick); above 4,000 boxes it runs per category instead, to keep
    the IoU matrices small.
    """
    check_boxes(boxes, "batched_nms")
    _check_scores("batched_nms", boxes, scores)
    if not isinstance(idxs, torch.Tensor) or idxs.shape != (len(boxes),):
        got = tuple(idxs.shape) if isinstance(idxs, torch.Tensor) else type(idxs).__name__
        raise InputError(f"batched_nms: idxs must be a tensor of shape ({len(boxes)},), got {got}")
    if len(boxes) == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if len(boxes) <= PER_CATEGORY_ABOVE:
        offsets = idxs.to(boxes) * (boxes.max() - boxes.min() + 1)
        return nms(boxes + offsets[:, None], scores, iou_threshold)
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for c in torch.unique(idxs):  # a loop over categories
        members = torch.nonzero(idxs == c).flatten()
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.nonzero(keep).flatten()
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


def _centres(boxes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(
    reference_boxes: torch.Tensor,
    proposals: torch.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
) -> torch.Tensor:
    """The regression targets (dx, dy, dw, dh) that take `proposals` (anchors) to
    `reference_boxes` (ground truth), both `(..., 4)` xyxy, broadcast:
    dx = wx (x − xa) / wa, dy = wy (y − ya) / ha, dw = ww log(w / wa), dh = wh log(h / ha)
    (Girshick et al. 2014, R-CNN appendix C; Ren et al. 2015, eq. 2), as torchvision's BoxCoder."""
    wx, wy, ww, wh = _weights("encode_boxes", weights)
    gx, gy, gw, gh = _centres(reference_boxes)
    px, py, pw, ph = _centres(proposals)
    return torch.stack(
        (
            wx * (gx - px) / pw,
            wy * (gy - py) / ph,
            ww * torch.log(gw / pw),
            wh * torch.log(gh / ph),
        ),
        -1,
    )


def decode_boxes(
    rel_codes: torch.Tensor,
    boxes: torch.Tensor,
    weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
    bbox_xform_clip: float = BBOX_XFORM_CLIP,
) -> torch.Tensor:
    """The xyxy boxes that `rel_codes` (dx, dy, dw, dh) make of `boxes` (anchors), the inverse of
    `encode_boxes`; dw and dh are clamped at `bbox_xform_clip` (log(1000/16)) before exp so that
    one wild prediction cannot overflow. `(..., 4)` shapes broadcast."""
    wx, wy, ww, wh = _weights("decode_boxes", weights)
    px, py, pw, ph = _centres(boxes.to(rel_codes.dtype))
    dx, dy = rel_codes[..., 0] / wx, rel_codes[..., 1] / wy
    dw = (rel_codes[..., 2] / ww).clamp(max=bbox_xform_clip)
    dh = (rel_codes[..., 3] / wh).clamp(max=bbox_xform_clip)
    cx, cy = dx * pw + px, dy * ph + py
    w, h = torch.exp(dw) * pw, torch.exp(dh) * ph
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), -1)


def _weights(owner: str, weights: Sequence[float]) -> tuple[float, ...]:
    if isinstance(weights, str) or len(weights) != 4:
        raise InputError(f"{owner}: weights must be 4 numbers (wx, wy, ww, wh), got {weights!r}")
    return tuple(number(owner, "weights", w, low=0, low_open=True) for w in weights)
