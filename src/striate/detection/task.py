"""Object detection as a Task: the same Trainer as classification trains the detectors.

    task = Detection.for_model(model)            # running statistics per named loss
    Trainer(task=task, epochs=10, opt="adam", lr=1e-3, out="runs/det").fit(model, train, test)

A batch is ``(x, boxes B×M×4, labels B×M)`` as `DetectionLoader` yields it (labels −1 pad, −2
mark crowd regions). In training the model returns a dict of named losses (`loss_names`); the
step's loss is their sum, and the running metrics are the sum and each loss, per image.
Evaluation runs the model in eval mode, collects each image's detections and ground truth, and
scores them with `MeanAveragePrecision` (COCO's protocol by default): `map` (AP at IoU
0.50:0.05:0.95), `map_50`, `map_75` and the rest of its numbers; `val_map` is the monitor, so
`best.safetensors` keeps the weights of the best COCO mAP. `predict` returns the detections as
one N×K×6 tensor (x1 y1 x2 y2 score label, label −1 padding), the form `Trainer.predict`
concatenates.

The padded batch keeps a crowd region's box but not its class: each one is given to the metric
once per class (so a detection of any class on it is ignored, where COCO ignores only its own
class's). The digit scenes have no crowd regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from striate.checks import one_of, positive_int
from striate.detection.mean_ap import MeanAveragePrecision
from striate.detection.postprocess import Detections, padded_detections
from striate.engine.task import TASKS, Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError

PROTOCOLS = ("coco", "voc2007", "voc2010")


class Detection(Task):
    """Train a detector on its own losses, evaluate it by mAP; see the module docstring.

    `losses` names the model's losses (`model.loss_names`), each kept as a running statistic;
    `protocol` is the mAP's ("coco", "voc2007", "voc2010"); `limit` the detections per image
    `predict` returns."""

    name = "detection"
    metrics = ("map", "map_50", "map_75")
    monitor = "val_map"

    def __init__(
        self, losses: Sequence[str] | None = None, protocol: str = "coco", limit: int = 100
    ) -> None:
        if losses is not None and (
            isinstance(losses, str) or not all(isinstance(k, str) for k in losses) or not losses
        ):
            raise ConfigError(
                f"Detection: losses must be the model's loss names (model.loss_names), got "
                f"{losses!r}"
            )
        self.loss_names = None if losses is None else tuple(losses)
        self.running_stats = ("loss", *(self.loss_names or ()), "n")
        self.protocol = one_of("Detection", "protocol", protocol, PROTOCOLS)
        self.limit = positive_int("Detection", "limit", limit)

    @classmethod
    def for_model(cls, model: nn.Module, **options: Any) -> Detection:
        """The task for `model`, with a running statistic per loss it names."""
        return cls(_loss_names(model), **options)

    def setup(self, model: nn.Module, trainer: Any) -> None:
        names = _loss_names(model)
        if self.loss_names is not None and names != self.loss_names:
            raise ConfigError(
                f"Detection: the task was made for losses {', '.join(self.loss_names)} but the "
                f"model's are {', '.join(names)}; use Detection.for_model(model)"
            )

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x, boxes, labels = batch[:3]
        losses = model(x, (boxes, labels))
        names = self.loss_names or tuple(losses)
        missing = [k for k in names if k not in losses]
        if missing:
            raise ConfigError(
                f"Detection: the model returned the losses {', '.join(losses)}, not "
                f"{', '.join(missing)}"
            )
        parts = [losses[k].float() for k in names]
        loss = torch.stack(parts).sum()
        n = len(x)
        extra = [p.detach() * n for p in parts] if self.loss_names is not None else []
        return Step(loss, stack_stats(loss.detach() * n, *extra, n))

    def evaluation(self, **options: Any) -> Evaluation:
        return DetectionEvaluation(self, **options)

    def evaluation_label(self, **options: Any) -> str:
        return "detecting"

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """Detections N×`limit`×6: x1 y1 x2 y2 score label (label −1 pads), best first."""
        return padded_detections(model(x), options.get("limit", self.limit))


class DetectionEvaluation(Evaluation):
    """Detections and ground truth of every image, scored by MeanAveragePrecision at the end."""

    def __init__(self, task: Detection, protocol: str | None = None) -> None:
        super().__init__(task)
        protocol = task.protocol if protocol is None else protocol
        self.metric = MeanAveragePrecision(
            protocol=one_of("Detection", "protocol", protocol, PROTOCOLS)
        )
        self.classes = 0

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        x, boxes, labels = batch[:3]
        detections: Detections = model(x)
        self.metric.update(
            [{k: v.cpu() for k, v in d.items()} for d in detections],
            ground_truth(boxes.cpu(), labels.cpu(), getattr(model, "num_classes", None)),
        )

    def reduce(self) -> None:
        raise ConfigError(
            "Detection: mAP is computed on one process; evaluate with a loader that is not "
            "shared among processes (world_size=1)"
        )

    def compute(self) -> dict[str, float]:
        out = self.metric.compute()
        return {
            k: float(v)
            for k, v in out.items()
            if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }


def ground_truth(
    boxes: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> list[dict[str, torch.Tensor]]:
    """Per-image targets (boxes, labels, crowd) of a padded batch; a crowd region (label −2) is
    repeated once per class, as `num_classes` (or the largest label + 1) counts them."""
    c = num_classes or int(labels.max().clamp(min=0)) + 1
    out = []
    for b, lab in zip(boxes, labels, strict=True):  # packaging, one dict per image
        real, crowd = lab >= 0, lab == -2
        k = int(crowd.sum())
        out.append(
            {
                "boxes": torch.cat([b[real], b[crowd].repeat_interleave(c, 0)]),
                "labels": torch.cat([lab[real], torch.arange(c).repeat(k)]),
                "crowd": torch.cat(
                    [
                        torch.zeros(int(real.sum()), dtype=torch.bool),
                        torch.ones(k * c, dtype=torch.bool),
                    ]
                ),
            }
        )
    return out


def _loss_names(model: nn.Module) -> tuple[str, ...]:
    names = getattr(getattr(model, "module", model), "loss_names", None)
    if not names:
        raise ConfigError(
            f"Detection: {type(model).__name__} is not a detector (it names no loss_names); "
            f"use a detection model such as models.create('grid_detector')"
        )
    return tuple(names)


TASKS.add("detection", Detection)
