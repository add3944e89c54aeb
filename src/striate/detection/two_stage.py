"""A two-stage detector: the Faster R-CNN of the lecture (Ren et al. 2015), small.

    model = models.create("faster_rcnn_small", num_classes=10, in_shape=(3, 64, 64))
    losses = model(x, (boxes, labels))   # training: the four losses, named as torchvision's
    detections = model.eval()(x)         # per image: {"boxes", "scores", "labels"}
    candidates = model.detect(x, nms=False)   # before the final non-maximum suppression

Stage one, the region proposal network (§3.1), slides a 3×3 convolution over the shared
`Backbone`'s stride-8 map and predicts, for each of A anchors per cell, an objectness logit and
the deltas to a box; the boxes are decoded, clipped to the image, tiny ones dropped, the best
`rpn_pre_nms_top_n` per image kept, NMS at IoU 0.7, and the best `rpn_post_nms_top_n_*` are the
proposals. Stage two crops each proposal's features with RoIAlign (He et al. 2017) and a two-layer
head scores C + 1 classes (background first) and regresses class-specific deltas.

The slides' "jointly train with 4 losses" (approximate joint training, §3.2):

1. `loss_objectness`: RPN object / not object, binary cross-entropy over 128 anchors sampled per
   image, up to half positive (IoU ≥ 0.7 with an object, or an object's best anchor; < 0.3 is
   background);
2. `loss_rpn_box_reg`: RPN box coordinates, smooth-L1 (β = 1/9) on the positive samples' deltas,
   divided by the samples;
3. `loss_classifier`: the final classes, cross-entropy over 32 proposals sampled per image (the
   ground-truth boxes added to them), up to a quarter foreground (IoU ≥ 0.5);
4. `loss_box_reg`: the final box coordinates, smooth-L1 (β = 1/9) on the foreground samples'
   deltas of their own class (coding weights 10, 10, 5, 5), divided by the samples.

These are torchvision's rules and defaults (its sample sizes 256 and 512 shrunk for 64-pixel
images with one to four objects); proposals are constants to stage two, as in torchvision.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import positive_int, probability
from striate.detection.anchors import (
    IGNORE,
    anchor_grid,
    base_anchors,
    box_iou_batched,
    match_boxes,
    sample_balanced,
)
from striate.detection.backbone import Backbone, check_images, check_targets
from striate.detection.boxes import (
    batched_nms,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
    remove_small_boxes,
)
from striate.detection.detector import Detector
from striate.detection.postprocess import Detections, rank_in_image, select
from striate.detection.roi import roi_align
from striate.errors import ConfigError
from striate.models.registry import check_io, register_variant

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
HEAD_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BETA = 1 / 9  # torchvision's smooth-L1 β for both box losses


class FasterRCNN(Detector):
    """Region proposal network + RoIAlign head on the shared `Backbone`; see the module
    docstring."""

    name = "faster_rcnn_small"
    loss_names = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg")

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: Sequence[int] = (3, 64, 64),
        widths: Sequence[int] = (32, 64, 128),
        anchor_sizes: Sequence[float] = (12.0, 18.0, 26.0),
        aspect_ratios: Sequence[float] = (1.0, 2.0),
        rpn_fg_iou: float = 0.7,
        rpn_bg_iou: float = 0.3,
        rpn_batch_per_image: int = 128,
        rpn_positive_fraction: float = 0.5,
        rpn_pre_nms_top_n: int = 50,
        rpn_post_nms_top_n_train: int = 48,
        rpn_post_nms_top_n_test: int = 32,
        rpn_nms_threshold: float = 0.7,
        roi_size: int = 4,
        representation: int = 128,
        box_fg_iou: float = 0.5,
        box_bg_iou: float = 0.5,
        box_batch_per_image: int = 32,
        box_positive_fraction: float = 0.25,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        detections_per_image: int = 100,
    ) -> None:
        super().__init__()
        owner = "faster_rcnn_small"
        self.in_shape, self.num_classes = check_io(in_shape, num_classes, owner)
        self.anchor_sizes, self.aspect_ratios = list(anchor_sizes), list(aspect_ratios)
        self.num_anchors = len(base_anchors(anchor_sizes, aspect_ratios, owner))
        for name, (fg, bg) in {
            "rpn": (rpn_fg_iou, rpn_bg_iou),
            "box": (box_fg_iou, box_bg_iou),
        }.items():
            probability(owner, f"{name}_fg_iou", fg)
            probability(owner, f"{name}_bg_iou", bg)
            if bg > fg:
                raise ConfigError(f"{owner}: {name}_bg_iou {bg} must not exceed {name}_fg_iou {fg}")
        self.rpn_iou, self.box_iou = (rpn_fg_iou, rpn_bg_iou), (box_fg_iou, box_bg_iou)
        self.rpn_sample = (
            positive_int(owner, "rpn_batch_per_image", rpn_batch_per_image),
            probability(owner, "rpn_positive_fraction", rpn_positive_fraction),
        )
        self.box_sample = (
            positive_int(owner, "box_batch_per_image", box_batch_per_image),
            probability(owner, "box_positive_fraction", box_positive_fraction),
        )
        self.pre_nms_top_n = positive_int(owner, "rpn_pre_nms_top_n", rpn_pre_nms_top_n)
        self.post_nms_top_n = (
            positive_int(owner, "rpn_post_nms_top_n_train", rpn_post_nms_top_n_train),
            positive_int(owner, "rpn_post_nms_top_n_test", rpn_post_nms_top_n_test),
        )
        self.rpn_nms_threshold = probability(owner, "rpn_nms_threshold", rpn_nms_threshold)
        self.score_threshold = probability(owner, "score_threshold", score_threshold)
        self.nms_threshold = probability(owner, "nms_threshold", nms_threshold)
        self.detections_per_image = positive_int(
            owner, "detections_per_image", detections_per_image
        )
        self.roi_size = positive_int(owner, "roi_size", roi_size)
        positive_int(owner, "representation", representation)

        self.backbone = Backbone(self.in_shape[0], widths)
        c, a = self.backbone.out_channels, self.num_anchors
        self.rpn_conv = nn.Conv2d(c, c, 3, padding=1)
        self.rpn_objectness = nn.Conv2d(c, a, 1)
        self.rpn_deltas = nn.Conv2d(c, 4 * a, 1)
        self.box_head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * roi_size * roi_size, representation),
            nn.ReLU(inplace=True),
            nn.Linear(representation, representation),
            nn.ReLU(inplace=True),
        )
        self.cls_score = nn.Linear(representation, num_classes + 1)
        self.bbox_pred = nn.Linear(representation, 4 * num_classes)
        self._reset_heads()

    def _reset_heads(self) -> None:
        """torchvision's initialisation of the heads: N(0, 0.01) (0.001 for the box deltas)."""
        for layer in (self.rpn_conv, self.rpn_objectness, self.rpn_deltas, self.cls_score):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.bbox_pred.bias)

    def after_init(self) -> None:
        self._reset_heads()

    def anchors(self, feature_size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The (H·W·A)×4 anchors of a feature map of `feature_size`."""
        stride = self.backbone.stride
        return anchor_grid(feature_size, stride, self.anchor_sizes, self.aspect_ratios, device)

    # ------------------------------------------------------------------ stage one

    def rpn(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Objectness logits (B×N), deltas (B×N×4) and anchors (N×4) of a feature map."""
        t = F.relu(self.rpn_conv(features))
        b, _, h, w = t.shape
        logits = self.rpn_objectness(t).permute(0, 2, 3, 1).reshape(b, -1)
        deltas = self.rpn_deltas(t).view(b, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2)
        return logits, deltas.reshape(b, -1, 4), self.anchors((h, w), features.device)

    @torch.no_grad()
    def proposals(
        self,
        logits: torch.Tensor,
        deltas: torch.Tensor,
        anchors: torch.Tensor,
        image_size: tuple[int, int],
        limit: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The proposals (B×`limit`×4, best first) and which of them exist (B×`limit` bool):
        the best `rpn_pre_nms_top_n` anchors by objectness, decoded, clipped, at least 1 pixel
        wide and high, NMS at `rpn_nms_threshold` per image, the best `limit` left."""
        b = len(logits)
        scores, index = logits.float().topk(min(self.pre_nms_top_n, logits.shape[1]), dim=1)
        picked = torch.gather(deltas.float(), 1, index[..., None].expand(-1, -1, 4))
        boxes = clip_boxes_to_image(decode_boxes(picked, anchors[index], RPN_WEIGHTS), image_size)
        boxes, scores = boxes.reshape(-1, 4), scores.reshape(-1)
        image = torch.arange(b, device=logits.device).repeat_interleave(index.shape[1])
        keep = remove_small_boxes(boxes, 1.0)
        keep = keep[batched_nms(boxes[keep], scores[keep], image[keep], self.rpn_nms_threshold)]
        rank = rank_in_image(image[keep])
        keep, rank = keep[rank < limit], rank[rank < limit]
        out = boxes.new_zeros(b, limit, 4)
        valid = torch.zeros(b, limit, dtype=torch.bool, device=boxes.device)
        out[image[keep], rank] = boxes[keep]
        valid[image[keep], rank] = True
        return out, valid

    # ------------------------------------------------------------------ stage two

    def head(
        self, features: torch.Tensor, image: torch.Tensor, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (K×(C + 1), background first) and class-specific deltas (K×C×4) of the
        boxes (K×4) on images `image` (K)."""
        rois = torch.cat([image[:, None].to(boxes), boxes], 1)
        crops = roi_align(
            features.float(),  # box corners in bf16 would be off by up to half a pixel
            rois,
            self.roi_size,
            spatial_scale=1 / self.backbone.stride,
            sampling_ratio=2,
            aligned=True,
        )
        h = self.box_head(crops)
        return self.cls_score(h), self.bbox_pred(h).view(len(h), self.num_classes, 4)

    # ------------------------------------------------------------------ the model

    def losses(
        self, x: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The four named losses of a batch (see the module docstring)."""
        gt_boxes, gt_labels = check_targets(targets, len(x))
        check_images(x, self.in_shape[0])
        features = self.backbone(x)
        logits, deltas, anchors = self.rpn(features)
        logits, deltas = logits.float(), deltas.float()
        b = len(x)

        matched = match_boxes(box_iou_batched(anchors, gt_boxes), gt_labels, *self.rpn_iou)
        chosen = sample_balanced(matched, *self.rpn_sample)
        pos = chosen & (matched >= 0)
        which = torch.gather(gt_boxes, 1, matched.clamp(min=0)[..., None].expand(-1, -1, 4))
        target = encode_boxes(which[pos], anchors.expand(b, -1, -1)[pos], RPN_WEIGHTS)
        n_rpn = chosen.sum().clamp(min=1)
        loss_objectness = F.binary_cross_entropy_with_logits(
            logits[chosen], pos[chosen].float(), reduction="sum"
        )
        loss_rpn_box = F.smooth_l1_loss(deltas[pos], target, beta=BETA, reduction="sum")

        size = tuple(x.shape[-2:])
        boxes, valid = self.proposals(logits, deltas, anchors, size, self.post_nms_top_n[0])
        boxes = torch.cat([boxes, gt_boxes], 1)
        valid = torch.cat([valid, gt_labels >= 0], 1)
        matched = match_boxes(
            box_iou_batched(boxes, gt_boxes), gt_labels, *self.box_iou, low_quality=False
        )
        matched = torch.where(valid, matched, IGNORE)
        image, slot = sample_balanced(matched, *self.box_sample).nonzero(as_tuple=True)
        rois, matched = boxes[image, slot], matched[image, slot]
        labels = torch.where(matched >= 0, gt_labels[image, matched.clamp(min=0)] + 1, 0)
        class_logits, class_deltas = self.head(features, image, rois)
        class_logits, class_deltas = class_logits.float(), class_deltas.float()
        fg = torch.nonzero(labels > 0).flatten()
        target = encode_boxes(gt_boxes[image[fg], matched[fg]], rois[fg], HEAD_WEIGHTS)
        predicted = class_deltas[fg, labels[fg] - 1]
        n_head = max(len(labels), 1)
        return {
            "loss_objectness": loss_objectness / n_rpn,
            "loss_rpn_box_reg": loss_rpn_box / n_rpn,
            "loss_classifier": F.cross_entropy(class_logits, labels, reduction="sum") / n_head,
            "loss_box_reg": F.smooth_l1_loss(predicted, target, beta=BETA, reduction="sum")
            / n_head,
        }

    @torch.no_grad()
    def detect(self, x: torch.Tensor, nms: bool = True) -> Detections:
        """Each image's detections (boxes, scores, labels; best first); with `nms=False` the
        head's candidates above the score threshold before the final class-wise NMS."""
        check_images(x, self.in_shape[0])
        features = self.backbone(x)
        logits, deltas, anchors = self.rpn(features)
        size = tuple(x.shape[-2:])
        boxes, valid = self.proposals(logits, deltas, anchors, size, self.post_nms_top_n[1])
        image, slot = valid.nonzero(as_tuple=True)
        rois = boxes[image, slot]
        class_logits, class_deltas = self.head(features, image, rois)
        scores = class_logits.float().softmax(-1)[:, 1:]
        c = self.num_classes
        decoded = decode_boxes(class_deltas.float(), rois[:, None, :], HEAD_WEIGHTS)
        return select(
            decoded.reshape(-1, 4),
            scores.reshape(-1),
            torch.arange(c, device=x.device).repeat(len(rois)),
            image.repeat_interleave(c),
            len(x),
            size,
            score_threshold=self.score_threshold,
            nms_threshold=self.nms_threshold if nms else None,
            min_size=1e-2,
            per_image=self.detections_per_image if nms else len(rois) * c,
        )


register_variant(
    "faster_rcnn_small",
    FasterRCNN,
    "Two-stage detector (Faster R-CNN): region proposal network, RoIAlign head, four losses",
    in_shape=(3, 64, 64),
    num_classes=10,
)
