"""Object detection: box operations, NMS, RoI pooling and RoIAlign, mAP as VOC and COCO define
it, the one-stage grid detector and the two-stage (region proposal + RoIAlign) detector, and the
Detection task that trains them through the engine's Trainer."""
