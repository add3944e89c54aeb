"""From scored candidate boxes to each image's detections: threshold, clip, drop tiny boxes,
class-wise NMS (or not, for the picture of what NMS removes), the best few per image.

Candidates of a whole batch travel flat (K boxes with their image index), so one `batched_nms`
call, keyed by (image, class), serves every image; `rank_in_image` then keeps each image's best.
"""

from __future__ import annotations

import torch

from striate.detection.boxes import batched_nms, clip_boxes_to_image, remove_small_boxes

Detections = list[dict[str, torch.Tensor]]


def rank_in_image(image: torch.Tensor) -> torch.Tensor:
    """For candidates already sorted best first, each one's rank among those of its own image
    (0 for an image's best), keeping that order: a stable sort by image, no loop."""
    order = torch.sort(image, stable=True).indices
    counts = torch.bincount(image, minlength=int(image.max()) + 1 if len(image) else 0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=image.device) - starts[image[order]]
    return rank


def select(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    image: torch.Tensor,
    num_images: int,
    image_size: tuple[int, int],
    *,
    score_threshold: float,
    nms_threshold: float | None,
    min_size: float,
    per_image: int,
) -> Detections:
    """Each image's detections (dicts of boxes K×4, scores K, labels K, best first) from flat
    candidates: scores above `score_threshold`, boxes clipped to `image_size` (H, W) and at
    least `min_size` wide and high, NMS per image and class at `nms_threshold` (None: no NMS),
    at most `per_image` per image."""
    keep = torch.nonzero(scores > score_threshold).flatten()
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    boxes = clip_boxes_to_image(boxes, image_size)
    keep = remove_small_boxes(boxes, min_size)
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    if nms_threshold is None:
        keep = torch.sort(scores, descending=True, stable=True).indices
    else:
        key = image * (int(labels.max()) + 1 if len(labels) else 1) + labels
        keep = batched_nms(boxes, scores, key, nms_threshold)
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    keep = torch.nonzero(rank_in_image(image) < per_image).flatten()
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    order = torch.sort(image, stable=True).indices
    counts = torch.bincount(image, minlength=num_images).tolist()
    parts = zip(
        boxes[order].split(counts),
        scores[order].split(counts),
        labels[order].split(counts),
        strict=True,
    )
    return [{"boxes": b, "scores": s, "labels": c} for b, s, c in parts]


def padded_detections(detections: Detections, limit: int) -> torch.Tensor:
    """Detections as one N×`limit`×6 tensor (x1 y1 x2 y2 score label; label −1 pads), the
    fixed-shape form `Trainer.predict` concatenates."""
    out = torch.zeros(len(detections), limit, 6)
    out[..., 5] = -1
    for i, d in enumerate(detections):  # packaging, one row per image
        k = min(limit, len(d["scores"]))
        out[i, :k, :4] = d["boxes"][:k].float().cpu()
        out[i, :k, 4] = d["scores"][:k].float().cpu()
        out[i, :k, 5] = d["labels"][:k].float().cpu()
    return out


def unpad_detections(padded: torch.Tensor) -> Detections:
    """The inverse of `padded_detections`."""
    keep = padded[..., 5] >= 0
    return [
        {"boxes": p[k, :4], "scores": p[k, 4], "labels": p[k, 5].long()}
        for p, k in zip(padded, keep, strict=True)
    ]
