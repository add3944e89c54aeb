"""A one-stage grid detector, the "detection without proposals" of the lecture (YOLO / SSD): one
convolutional network maps the image to a grid of cells, and every cell regresses from each of
its A base boxes (anchors) to a final box with an objectness and class scores.

    model = models.create("grid_detector", num_classes=10, in_shape=(3, 64, 64))
    losses = model(x, (boxes, labels))     # training: {"loss_objectness", "loss_box_reg",
                                           #            "loss_classifier"}
    detections = model.eval()(x)           # per image: {"boxes", "scores", "labels"}
    candidates = model.detect(x, nms=False)  # the same before non-maximum suppression

The output is H×W×A·(5 + C): per anchor an objectness logit, the deltas (dx, dy, dw, dh) of
Faster R-CNN's box coding and C class logits, as SSD (Liu et al. 2016, class scores per default
box) and YOLOv2 do. The lecture's slide draws 7×7×(5B + C), B boxes of 5 numbers and one set of
C scores per *cell* (YOLOv1, Redmon et al. 2016), and counts background among the C classes
(SSD's softmax); here objectness plays background's part and each anchor has its own classes,
so two digits in one cell can differ. Its "(dx, dy, dh, dw)" is the same coding in another order.

Training (SSD's recipe, Liu et al. 2016, §2.2): each object takes its best anchor, and every
anchor overlapping an object by IoU ≥ 0.5 takes the best such object; below 0.4 an anchor is
background, in between ignored (RetinaNet's band, Lin et al. 2017; SSD has none). The loss is
objectness binary cross-entropy on the positives and the hardest background anchors, three per
positive (SSD's hard negative mining, "at most 3:1"), smooth-L1 on the positives' deltas
(variances 0.1, 0.2: weights 10, 10, 5, 5) and cross-entropy on their classes, each summed and
divided by the positives. A detection's score is σ(objectness) · softmax(classes) (YOLO's
Pr(object) · Pr(class | object)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import positive_int, probability
from striate.detection.anchors import (
    BACKGROUND,
    anchor_grid,
    base_anchors,
    box_iou_batched,
    match_boxes,
    ranks,
)
from striate.detection.backbone import Backbone, check_images, check_targets, conv_block
from striate.detection.boxes import decode_boxes, encode_boxes
from striate.detection.detector import Detector
from striate.detection.postprocess import Detections, select
from striate.errors import ConfigError
from striate.models.registry import check_io, register_variant

BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # SSD's variances 0.1, 0.2


class GridDetector(Detector):
    """YOLO/SSD-style one-stage detector on the shared `Backbone`; see the module docstring."""

    name = "grid_detector"
    loss_names = ("loss_objectness", "loss_box_reg", "loss_classifier")

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: Sequence[int] = (3, 64, 64),
        widths: Sequence[int] = (32, 64, 128),
        anchor_sizes: Sequence[float] = (12.0, 18.0, 26.0),
        aspect_ratios: Sequence[float] = (1.0, 2.0),
        fg_iou: float = 0.5,
        bg_iou: float = 0.4,
        negatives_per_positive: int = 3,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        pre_nms_top_n: int = 300,
        detections_per_image: int = 100,
    ) -> None:
        super().__init__()
        owner = "grid_detector"
        self.in_shape, self.num_classes = check_io(in_shape, num_classes, owner)
        self.anchor_sizes, self.aspect_ratios = list(anchor_sizes), list(aspect_ratios)
        self.num_anchors = len(base_anchors(anchor_sizes, aspect_ratios, owner))
        self.fg_iou = probability(owner, "fg_iou", fg_iou)
        self.bg_iou = probability(owner, "bg_iou", bg_iou)
        if self.bg_iou > self.fg_iou:
            raise ConfigError(f"{owner}: bg_iou {bg_iou} must not exceed fg_iou {fg_iou}")
        self.negatives_per_positive = positive_int(
            owner, "negatives_per_positive", negatives_per_positive
        )
        self.score_threshold = probability(owner, "score_threshold", score_threshold)
        self.nms_threshold = probability(owner, "nms_threshold", nms_threshold)
        self.pre_nms_top_n = positive_int(owner, "pre_nms_top_n", pre_nms_top_n)
        self.detections_per_image = positive_int(
            owner, "detections_per_image", detections_per_image
        )
        self.backbone = Backbone(self.in_shape[0], widths)
        c = self.backbone.out_channels
        self.head = nn.Sequential(
            conv_block(c, c), nn.Conv2d(c, self.num_anchors * (5 + self.num_classes), 1)
        )
        self._reset_head()

    def _reset_head(self) -> None:
        """Objectness starts at probability 0.01 (RetinaNet's prior, Lin et al. 2017, §4.1), so
        the many background anchors do not swamp the first steps; small deltas and classes."""
        last = self.head[-1]
        nn.init.normal_(last.weight, std=0.01)
        bias = last.bias.detach().view(self.num_anchors, 5 + self.num_classes)
        bias.zero_()
        bias[:, 0] = -math.log(99.0)

    def after_init(self) -> None:
        self._reset_head()

    def anchors(self, feature_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The (H·W·A)×4 anchors of a feature map of `feature_size`."""
        stride = self.backbone.stride
        return anchor_grid(feature_size, stride, self.anchor_sizes, self.aspect_ratios, device)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's output per anchor (B×N×(5 + C): objectness, deltas, class logits) and the
        anchors (N×4)."""
        check_images(x, self.in_shape[0])
        out = self.head(self.backbone(x))
        b, _, h, w = out.shape
        out = out.view(b, self.num_anchors, -1, h, w).permute(0, 3, 4, 1, 2)
        return out.reshape(b, h * w * self.num_anchors, -1), self.anchors((h, w), x.device)

    def losses(
        self, x: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The three named losses of a batch (see the module docstring)."""
        gt_boxes, gt_labels = check_targets(targets, len(x))
        out, anchors = self.outputs(x)
        out = out.float()
        logit, deltas, classes = out[..., 0], out[..., 1:5], out[..., 5:]
        matched = match_boxes(
            box_iou_batched(anchors, gt_boxes), gt_labels, self.fg_iou, self.bg_iou
        )
        pos, neg = matched >= 0, matched == BACKGROUND
        bce = F.binary_cross_entropy_with_logits(logit, pos.float(), reduction="none")
        wanted = (self.negatives_per_positive * pos.sum(1, keepdim=True)).clamp(
            min=self.negatives_per_positive
        )
        hard = neg & (ranks(torch.where(neg, -bce.detach(), math.inf)) < wanted)
        n = pos.sum().clamp(min=1)
        which = matched.clamp(min=0)
        boxes = torch.gather(gt_boxes, 1, which[..., None].expand(-1, -1, 4))[pos]
        labels = torch.gather(gt_labels, 1, which)[pos]
        target = encode_boxes(boxes, anchors.expand(len(x), -1, -1)[pos], BOX_WEIGHTS)
        return {
            "loss_objectness": (bce * (pos | hard)).sum() / n,
            "loss_box_reg": F.smooth_l1_loss(deltas[pos], target, reduction="sum") / n,
            "loss_classifier": F.cross_entropy(classes[pos], labels, reduction="sum") / n,
        }

    @torch.no_grad()
    def detect(self, x: torch.Tensor, nms: bool = True) -> Detections:
        """Each image's detections (boxes, scores, labels; best first); with `nms=False` the
        candidates before non-maximum suppression (the best `pre_nms_top_n` above the score
        threshold)."""
        out, anchors = self.outputs(x)
        out = out.float()
        b, _, c = out.shape[0], out.shape[1], self.num_classes
        scores = torch.sigmoid(out[..., :1]) * out[..., 5:].softmax(-1)
        top, index = scores.flatten(1).topk(min(self.pre_nms_top_n, scores[0].numel()), dim=1)
        anchor, labels = index // c, index % c
        deltas = torch.gather(out[..., 1:5], 1, anchor[..., None].expand(-1, -1, 4))
        boxes = decode_boxes(deltas, anchors[anchor], BOX_WEIGHTS)
        image = torch.arange(b, device=x.device)[:, None].expand_as(labels)
        return select(
            boxes.reshape(-1, 4),
            top.reshape(-1),
            labels.reshape(-1),
            image.reshape(-1),
            b,
            tuple(x.shape[-2:]),
            score_threshold=self.score_threshold,
            nms_threshold=self.nms_threshold if nms else None,
            min_size=1e-2,
            per_image=self.detections_per_image if nms else self.pre_nms_top_n,
        )


register_variant(
    "grid_detector",
    GridDetector,
    "One-stage grid detector (YOLO/SSD): anchors per cell of a stride-8 map, objectness, "
    "deltas and classes per anchor",
    in_shape=(3, 64, 64),
    num_classes=10,
)
