"""Minibatches of a DetectionSet on the training device, with box-aware augmentation.

`DetectionLoader` is `BatchLoader` for detection and segmentation: the images (uint8) and instance
masks move to the device once; each batch is gathered there, turned to float 0–1, augmented as
one batch (`striate.data.box_augment`: boxes and masks move with the pixels) and normalised.
Epoch e is shuffled and augmented from a CPU generator seeded by (seed, e), and `state_dict`
taken mid-epoch resumes after the last batch handed out (`ResumableEpochs`). It serves
one process only for now (no torchrun shares).

Targets, by `targets`:

- "boxes": ``(x, boxes B×M×4, labels B×M)``, M the most objects an image of the batch has, labels
  −1 for padding and −2 for crowd regions (as `DetectionSet.padded`);
- "semantic": ``(x, classes B×H×W int64)``, 0 background and class c as c + 1, later objects on
  top (as `DetectionSet.semantic_masks`; crowd regions keep their class);
- "instances": ``(x, boxes, labels, masks B×M×H×W bool)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from striate.checks import integer, one_of, positive_int
from striate.data.augment import BatchInfo
from striate.data.box_augment import BoxTargets, BoxTransform
from striate.data.detectionset import DetectionSet
from striate.data.loader import ResumableEpochs
from striate.device import resolve_device
from striate.errors import ConfigError, DataError

__all__ = ["DetectionLoader", "semantic_from_instances"]

TARGETS = ("boxes", "semantic", "instances")


def semantic_from_instances(masks: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """B×H×W class maps (0 background, class c → c + 1) from B×M×H×W instance masks and their
    B×M classes (−1 padding); where masks overlap the later object wins."""
    b, m, h, w = masks.shape
    rank = torch.arange(1, m + 1, device=masks.device).view(1, m, 1, 1)
    top = torch.where(masks, rank, 0).amax(1) if m else masks.new_zeros(b, h, w, dtype=torch.long)
    value = torch.cat([classes.new_zeros(b, 1), (classes + 1).clamp(min=0)], 1)
    return value.gather(1, top.flatten(1)).view(b, h, w)


class DetectionLoader(ResumableEpochs):
    """Shuffled, augmented minibatches of a DetectionSet; see the module docstring.

    augment: a box transform (`striate.data.box_augment`, e.g. ``parse_box_augment("zoom")``)
    or a callable ``f(x, BoxTargets, g) -> (x, BoxTargets)``; normalize: a function of the float
    batch (e.g. a `Normalizer`); targets: "boxes", "semantic" or "instances".
    """

    def __init__(
        self,
        ds: DetectionSet,
        batch_size: int = 32,
        *,
        shuffle: bool = True,
        augment: Callable | None = None,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        drop_last: bool = False,
        seed: int = 0,
        targets: str = "boxes",
    ) -> None:
        if not isinstance(ds, DetectionSet):
            raise ConfigError(
                f"DetectionLoader takes a DetectionSet (e.g. from read_coco or digit_scenes), "
                f"got {type(ds).__name__}"
            )
        self.targets = one_of("DetectionLoader", "targets", targets, TARGETS)
        if targets != "boxes" and ds.masks is None:
            raise DataError(
                f"DetectionLoader: targets={targets!r} needs instance masks, and "
                f"{ds.source or 'this set'} has none; use targets='boxes' or a set with masks"
            )
        if augment is not None and not callable(augment):
            raise ConfigError(
                f"DetectionLoader: augment must be a box transform or None, got "
                f"{type(augment).__name__}"
            )
        self.batch_size = positive_int("DetectionLoader", "batch_size", batch_size)
        if len(ds) == 0:
            raise DataError("DetectionLoader: cannot make batches of an empty DetectionSet")
        if drop_last and len(ds) < batch_size:
            raise ConfigError(
                f"DetectionLoader: drop_last with batch_size {batch_size} > {len(ds)} images "
                f"leaves no batch at all; use a smaller batch_size or drop_last=False"
            )
        self.n, self.shuffle, self.drop_last = len(ds), bool(shuffle), bool(drop_last)
        self.seed = integer("DetectionLoader", "seed", seed)
        self.augment, self.normalize = augment, normalize
        self.device = resolve_device(device)
        self.epoch = 0
        self.data = ds
        self._images = ds.images.to(self.device)
        needs_masks = targets != "boxes" or augment is not None
        self._masks = ds.masks.to(self.device) if needs_masks and ds.masks is not None else None

    def _objects(self, index: torch.Tensor) -> tuple[BoxTargets, torch.Tensor]:
        """The padded targets of the images at `index` (labels −2 for crowd), on the device,
        and their classes B×M (crowd regions with their class, −1 padding)."""
        ds = self.data
        boxes, labels = ds.padded(index)
        objects = ds.object_index(index)
        counts = ds.counts()[index]
        row = torch.repeat_interleave(torch.arange(len(index)), counts)
        col = torch.arange(len(objects)) - torch.repeat_interleave(
            torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]]), counts
        )
        classes = torch.where(labels == -2, 0, labels)
        classes[row, col] = ds.labels[objects]
        masks = None
        if self._masks is not None:
            _, h, w = ds.shape
            dev = self.device
            masks = torch.zeros(len(index), labels.shape[1], h, w, dtype=torch.bool, device=dev)
            masks[row.to(dev), col.to(dev)] = self._masks[objects.to(dev)]
        dev = self.device
        return BoxTargets(boxes.to(dev), labels.to(dev), masks), classes.to(dev)

    def _batch(self, index: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, ...]:
        x = self._images[index.to(self.device)].float().div_(255)
        y, classes = self._objects(index)
        if self.targets == "semantic":  # carry the classes so that crowd keeps its class
            y = BoxTargets(y.boxes, classes, y.masks)
        if self.augment is not None:
            info = BatchInfo(index, self.epoch - 1, self.seed)
            if isinstance(self.augment, BoxTransform):
                x, y = self.augment(x, y, g, info)
            else:
                x, y = self.augment(x, y, g)
        if self.normalize is not None:
            x = self.normalize(x)
        if self.targets == "semantic":
            return x, semantic_from_instances(y.masks, y.labels)
        if self.targets == "instances":
            return x, y.boxes, y.labels, y.masks
        return x, y.boxes, y.labels

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        g = self._generator()
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        batches = list(order.split(self.batch_size))[: len(self)]
        done = 0
        if self._resume is not None:
            done, rng = self._resume
            g.set_state(rng)
            self._resume = None
        self.epoch += 1
        for i, index in enumerate(batches[done:], start=done + 1):
            batch = self._batch(index, g)
            self._position = (i, g) if i < len(batches) else None
            yield batch
        self._position = None
