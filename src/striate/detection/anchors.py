"""Anchors and their training targets: the grid of base boxes a detector regresses from, which
ground-truth box each anchor (or proposal) is matched to, and the balanced sample of them a loss
sees.

    anchors = anchor_grid((8, 8), stride=8, sizes=(16, 28), aspect_ratios=(1.0, 2.0))  # 256×4
    matched = match_boxes(box_iou_batched(anchors, gt_boxes), gt_labels, 0.7, 0.3)     # B×N
    chosen = sample_balanced(matched, 256, 0.5)                                        # B×N bool

Anchor k of a feature map H×W with A anchors per cell sits at cell (y, x) = divmod(k // A, W)
and is base box k % A, so a convolution's output B×(A·K)×H×W viewed as B×H×W×A×K and flattened
to B×(H·W·A)×K lines up with it. `matched` holds, per anchor, the index of its ground-truth box,
or BACKGROUND (−1) or IGNORE (−2); the rules are Faster R-CNN's (Ren et al. 2015, §3.1.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from striate.checks import number, positive_int, probability
from striate.detection.boxes import box_iou
from striate.errors import ConfigError

BACKGROUND = -1
IGNORE = -2


def anchor_grid(
    feature_size: Sequence[int],
    stride: int,
    sizes: Sequence[float],
    aspect_ratios: Sequence[float] = (1.0,),
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """The (H·W·A)×4 xyxy anchors of an H×W feature map whose cells are `stride` pixels apart:
    at every cell centre ((x + ½)·stride, (y + ½)·stride), one box per size s and aspect ratio
    r = height / width, of width s/√r and height s·√r (area s²), sizes outermost. Boxes may
    reach past the image (as torchvision's and the paper's do)."""
    h, w = (positive_int("anchor_grid", "feature_size", v) for v in feature_size)
    stride = positive_int("anchor_grid", "stride", stride)
    base = base_anchors(sizes, aspect_ratios)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack((cx, cy, cx, cy), -1).reshape(-1, 1, 4)
    return (centres + base[None]).reshape(-1, 4).to(device)


def base_anchors(
    sizes: Sequence[float], aspect_ratios: Sequence[float], owner: str = "anchor_grid"
) -> torch.Tensor:
    """The A×4 anchors of one cell centred at 0 (see `anchor_grid`); one-line ConfigErrors for
    sizes or ratios that are not lists of positive numbers."""
    sizes = [number(owner, "sizes", s, low=0, low_open=True) for s in _seq(sizes, "sizes", owner)]
    ratios = [
        number(owner, "aspect_ratios", r, low=0, low_open=True)
        for r in _seq(aspect_ratios, "aspect_ratios", owner)
    ]
    half = [(s / math.sqrt(r) / 2, s * math.sqrt(r) / 2) for s in sizes for r in ratios]
    return torch.tensor([[-hw, -hh, hw, hh] for hw, hh in half], dtype=torch.float32)


def _seq(values, name: str, owner: str) -> list:
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ConfigError(f"{owner}: {name} must be a non-empty list of numbers, got {values!r}")
    return list(values)


def box_iou_batched(boxes: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of each image's boxes with its ground truth, B×N×M: `boxes` N×4 shared by every image
    (anchors) or B×N×4 per image (proposals), `gt_boxes` B×M×4 (padding rows are any valid box).

    Built on `box_iou` of all boxes against all ground truth at once; per-image boxes keep the
    diagonal blocks (B× the work, a few thousand boxes at the sizes here)."""
    b, m = gt_boxes.shape[:2]
    if boxes.dim() == 2:
        n = len(boxes)
        return box_iou(boxes, gt_boxes.reshape(-1, 4)).view(n, b, m).transpose(0, 1)
    n = boxes.shape[1]
    iou = box_iou(boxes.reshape(-1, 4), gt_boxes.reshape(-1, 4)).view(b, n, b, m)
    return torch.diagonal(iou, dim1=0, dim2=2).permute(2, 0, 1)


def match_boxes(
    iou: torch.Tensor,
    gt_labels: torch.Tensor,
    fg_iou: float,
    bg_iou: float,
    low_quality: bool = True,
) -> torch.Tensor:
    """Each box's ground-truth index (B×N), BACKGROUND or IGNORE, from `iou` (B×N×M) and the
    padded labels (B×M: −1 padding, −2 crowd).

    IoU ≥ `fg_iou` with some object: matched to the best one; below `bg_iou` with every object:
    background; in between: ignored. With `low_quality` each object also gets the boxes of its
    highest IoU (ties included, IoU > 0) even under `fg_iou` (Ren et al. 2015, §3.1.2 rule (i):
    "the anchor/anchors with the highest IoU overlap with a ground-truth box"), matched to their
    own best object, as torchvision's Matcher. A box that would be background but overlaps a
    crowd region by IoU ≥ `bg_iou` is ignored instead (crowd regions match nothing)."""
    fg_iou = probability("match_boxes", "fg_iou", fg_iou)
    bg_iou = probability("match_boxes", "bg_iou", bg_iou)
    if bg_iou > fg_iou:
        raise ConfigError(f"match_boxes: bg_iou {bg_iou} must not exceed fg_iou {fg_iou}")
    b, n, m = iou.shape
    if m == 0:
        return torch.full((b, n), BACKGROUND, dtype=torch.int64, device=iou.device)
    valid = (gt_labels >= 0)[:, None, :]
    scored = torch.where(valid, iou, -1.0)
    best, index = scored.max(2)
    matched = torch.where(best >= fg_iou, index, torch.where(best < bg_iou, BACKGROUND, IGNORE))
    if low_quality:
        best_of_gt = scored.max(1, keepdim=True).values
        top = ((scored == best_of_gt) & valid & (best_of_gt > 0)).any(2)
        matched = torch.where(top, index, matched)
    crowd = torch.where(gt_labels[:, None, :] == -2, iou, 0.0).amax(2)
    return torch.where((matched == BACKGROUND) & (crowd >= bg_iou) & (crowd > 0), IGNORE, matched)


def sample_balanced(
    matched: torch.Tensor,
    per_image: int,
    positive_fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A B×N bool mask choosing, in each image, up to `per_image` boxes at random: positives
    (matched ≥ 0) up to `positive_fraction` of them, background filling the rest (Ren et al.
    2015, §3.1.3: "256 anchors in an image … positive and negative anchors have a ratio of up to
    1:1"). Ignored boxes are never chosen. Random keys ranked per image: one sort, no loop."""
    per_image = positive_int("sample_balanced", "per_image", per_image)
    positive_fraction = probability("sample_balanced", "positive_fraction", positive_fraction)
    pos, neg = matched >= 0, matched == BACKGROUND
    keys = torch.rand(matched.shape, generator=generator, device=matched.device)
    want_pos = torch.clamp(pos.sum(1, keepdim=True), max=int(per_image * positive_fraction))
    take_pos = pos & (ranks(torch.where(pos, keys, 2.0)) < want_pos)
    want_neg = torch.clamp(neg.sum(1, keepdim=True), max=per_image - want_pos)
    take_neg = neg & (ranks(torch.where(neg, keys, 2.0)) < want_neg)
    return take_pos | take_neg


def ranks(keys: torch.Tensor) -> torch.Tensor:
    """Each entry's rank along the last dimension (0 for the smallest): two sorts, no loop."""
    order = keys.argsort(-1)
    rank = torch.empty_like(order)
    return rank.scatter_(
        -1, order, torch.arange(keys.shape[-1], device=keys.device).expand_as(order)
    )


__all__ = [
    "BACKGROUND",
    "IGNORE",
    "anchor_grid",
    "base_anchors",
    "box_iou_batched",
    "match_boxes",
    "ranks",
    "sample_balanced",
]
