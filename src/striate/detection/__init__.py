"""Object detection: box operations, NMS, RoI pooling and RoIAlign, mAP as VOC and COCO define
it, the one-stage grid detector and the two-stage (region proposal + RoIAlign) detector, and the
Detection task that trains them through the engine's Trainer. Importing it registers the
detectors in the model zoo (`grid_detector`, `faster_rcnn_small`); the job (training runs, run
folders, figures) is `striate.detection.run`."""

from striate.detection.boxes import (
    batched_nms,
    box_area,
    box_convert,
    box_iou,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
    generalized_box_iou,
    nms,
    remove_small_boxes,
)
from striate.detection.mean_ap import MeanAveragePrecision, plot_pr_curves
from striate.detection.one_stage import GridDetector
from striate.detection.roi import roi_align, roi_pool
from striate.detection.task import Detection
from striate.detection.two_stage import FasterRCNN

__all__ = [
    "Detection",
    "FasterRCNN",
    "GridDetector",
    "MeanAveragePrecision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
    "nms",
    "plot_pr_curves",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
]
