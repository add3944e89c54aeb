"""DetectionSet: images with boxes, labels and instance masks, the currency of detection and
segmentation (as ImageSet is of classification).

Objects are stored flat, so that every operation on them is one tensor operation: image i owns
objects `offsets[i]:offsets[i + 1]` of `boxes` (T×4, float32, x1 y1 x2 y2 in pixels, the image's
top-left corner at 0, 0 and its bottom-right at W, H), `labels` (T, int64 class indices), `crowd`
(T, bool: COCO's `iscrowd` regions, ignored by matching) and optional `masks` (T×H×W, bool).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from striate.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _check_tensor(where: str, name: str, t, dtype: torch.dtype, ndim: int, shape: str) -> None:
    if not isinstance(t, torch.Tensor) or t.dtype != dtype or t.ndim != ndim:
        got = f"{getattr(t, 'dtype', type(t).__name__)} of shape {tuple(getattr(t, 'shape', ()))}"
        raise DataError(f"{where}: {name} must be a {dtype} tensor {shape}, got {got}")


@dataclass(frozen=True, eq=False)
class DetectionSet:
    """Images (uint8 N×C×H×W) and their objects, stored flat; see the module docstring.

    `ds[i]` gives `(image, target)` with target a dict of that image's `boxes`, `labels`,
    `crowd` (and `masks`); `ds[slice | index_tensor | bool_mask]` gives a new DetectionSet.
    `image_ids` are the images' ids in their annotation file (COCO's `id`), 1..N by default;
    `category_ids` the classes' ids there (COCO's category `id`, one per class), when it has them.
    """

    images: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor
    offsets: torch.Tensor
    classes: tuple[str, ...]
    masks: torch.Tensor | None = None
    crowd: torch.Tensor | None = None
    image_ids: torch.Tensor | None = None
    source: str = ""
    category_ids: tuple[int | None, ...] | None = None

    def __post_init__(self) -> None:
        where = f"DetectionSet ({self.source or 'no source'})"
        _check_tensor(where, "images", self.images, torch.uint8, 4, "N×C×H×W")
        _check_tensor(where, "boxes", self.boxes, torch.float32, 2, "T×4")
        _check_tensor(where, "labels", self.labels, torch.int64, 1, "T")
        _check_tensor(where, "offsets", self.offsets, torch.int64, 1, "N+1")
        n, _, h, w = self.images.shape
        t = len(self.labels)
        if self.boxes.shape != (t, 4):
            raise DataError(f"{where}: {t} labels but boxes of shape {tuple(self.boxes.shape)}")
        offsets = self.offsets
        if len(offsets) != n + 1 or int(offsets[0]) != 0 or int(offsets[-1]) != t:
            raise DataError(
                f"{where}: offsets must run from 0 to the {t} objects in {n + 1} steps, "
                f"got {len(offsets)} values from {offsets[:1].tolist()} to {offsets[-1:].tolist()}"
            )
        if bool((offsets[1:] < offsets[:-1]).any()):
            raise DataError(f"{where}: offsets must not decrease")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if not self.classes:
            raise DataError(f"{where}: a DetectionSet needs class names")
        if t and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise DataError(
                f"{where}: labels range over {int(self.labels.min())}..{int(self.labels.max())} "
                f"but there are {len(self.classes)} classes"
            )
        if self.crowd is None:
            object.__setattr__(self, "crowd", torch.zeros(t, dtype=torch.bool))
        _check_tensor(where, "crowd", self.crowd, torch.bool, 1, "T")
        if len(self.crowd) != t:
            raise DataError(f"{where}: {t} objects but {len(self.crowd)} crowd flags")
        if self.image_ids is None:
            object.__setattr__(self, "image_ids", torch.arange(1, n + 1))
        _check_tensor(where, "image_ids", self.image_ids, torch.int64, 1, "N")
        if len(self.image_ids) != n:
            raise DataError(f"{where}: {n} images but {len(self.image_ids)} image ids")
        if self.category_ids is not None:
            object.__setattr__(self, "category_ids", tuple(self.category_ids))
            if len(self.category_ids) != len(self.classes):
                raise DataError(
                    f"{where}: {len(self.classes)} classes but {len(self.category_ids)} "
                    f"category ids"
                )
        if self.masks is not None:
            _check_tensor(where, "masks", self.masks, torch.bool, 3, "T×H×W")
            if self.masks.shape != (t, h, w):
                raise DataError(
                    f"{where}: masks must be {t}×{h}×{w} (one per object, image-sized), "
                    f"got {tuple(self.masks.shape)}"
                )
        check_boxes(self.boxes, w, h, self.image_of(), where)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"DetectionSet({len(self)} images, {c}×{h}×{w}, {len(self.labels)} objects, "
            f"{self.num_classes} classes"
            + (", masks" if self.masks is not None else "")
            + (f", from {self.source}" if self.source else "")
            + ")"
        )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of one image, C×H×W."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def counts(self) -> torch.Tensor:
        """Objects per image (N)."""
        return self.offsets[1:] - self.offsets[:-1]

    def image_of(self) -> torch.Tensor:
        """The image index of every object (T)."""
        return torch.repeat_interleave(torch.arange(len(self)), self.counts().cpu()).to(
            self.labels.device
        )

    def target(self, i: int) -> dict[str, torch.Tensor]:
        """Image i's objects: `boxes`, `labels`, `crowd` and, when the set has them, `masks`."""
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        out = {"boxes": self.boxes[a:b], "labels": self.labels[a:b], "crowd": self.crowd[a:b]}
        if self.masks is not None:
            out["masks"] = self.masks[a:b]
        return out

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            n = len(self)
            if not -n <= index < n:
                raise IndexError(f"image {index} of a DetectionSet of {n}")
            index = int(index) % n
            return self.images[index], self.target(index)
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        elif isinstance(index, Sequence) and not isinstance(index, (str, bytes)):
            index = torch.as_tensor(index, dtype=torch.int64)
        index = torch.arange(len(self))[index]  # slices and masks become indices
        objects = self.object_index(index)
        counts = self.counts()[index]
        offsets = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        return DetectionSet(
            self.images[index],
            self.boxes[objects],
            self.labels[objects],
            offsets,
            self.classes,
            None if self.masks is None else self.masks[objects],
            self.crowd[objects],
            self.image_ids[index],
            self.source,
            self.category_ids,
        )

    def object_index(self, images: torch.Tensor) -> torch.Tensor:
        """The indices of the objects of `images` (image indices), in their order."""
        counts = self.counts()[images]
        starts = self.offsets[:-1][images]
        first = torch.repeat_interleave(
            starts - torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]]), counts
        )
        return first + torch.arange(int(counts.sum()))

    def padded(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Boxes (B×M×4) and labels (B×M, −1 for padding) of `images`, M the most objects any
        of them has: the fixed-shape form a batch carries. Crowd regions get label −2."""
        counts = self.counts()[images]
        m = int(counts.max()) if len(counts) else 0
        objects = self.object_index(images)
        row = torch.repeat_interleave(torch.arange(len(images)), counts)
        col = torch.arange(len(objects)) - torch.repeat_interleave(
            torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]]), counts
        )
        boxes = self.boxes.new_zeros(len(images), m, 4)
        labels = self.labels.new_full((len(images), m), -1)
        boxes[row, col] = self.boxes[objects]
        labels[row, col] = torch.where(self.crowd[objects], -2, self.labels[objects])
        return boxes, labels

    def semantic_masks(self, images: torch.Tensor | None = None) -> torch.Tensor:
        """Per-pixel class maps (B×H×W int64): 0 is background, class c is c + 1; where objects
        overlap the later one wins (the one drawn on top). Needs instance masks."""
        if self.masks is None:
            raise DataError(
                f"DetectionSet ({self.source or 'no source'}) has no instance masks: "
                f"semantic masks need them (read the annotations with their segmentations)"
            )
        images = torch.arange(len(self)) if images is None else images
        objects = self.object_index(images)
        counts = self.counts()[images]
        row = torch.repeat_interleave(torch.arange(len(images)), counts)
        _, h, w = self.shape
        out = torch.zeros(len(images), h, w, dtype=torch.int64)
        # Write the objects in order: a later object's pixels overwrite an earlier one's.
        masks = self.masks[objects]
        value = (self.labels[objects] + 1).view(-1, 1, 1).expand_as(masks)
        rank = torch.arange(1, len(objects) + 1).view(-1, 1, 1).expand_as(masks)
        top = torch.zeros(len(images), h * w, dtype=torch.int64)
        ranks = torch.where(masks, rank, 0).flatten(1)
        top = top.scatter_reduce_(0, row[:, None].expand_as(ranks), ranks, "amax").view(-1, h, w)
        has = top > 0
        flat_value = torch.cat([torch.zeros(1, dtype=torch.int64), value[:, 0, 0]])
        out[has] = flat_value[top[has]]
        return out

    def to(self, device: str | torch.device) -> DetectionSet:
        """The same set with its images and masks on `device` (boxes stay where they are)."""
        masks = None if self.masks is None else self.masks.to(device)
        return DetectionSet(
            self.images.to(device),
            self.boxes,
            self.labels,
            self.offsets,
            self.classes,
            masks,
            self.crowd,
            self.image_ids,
            self.source,
            self.category_ids,
        )

    def show(self, n: int = 16, seed: int = 0) -> Figure:
        """A matplotlib grid of `n` random images with their boxes and class names."""
        from striate.data.plots import detection_grid  # loads matplotlib: only to draw

        return detection_grid(self, n=n, seed=seed)


def check_boxes(
    boxes: torch.Tensor, width: int, height: int, image: torch.Tensor | None = None, where: str = ""
) -> None:
    """Raise a DataError naming the first box that is not finite, has x2 < x1 or y2 < y1, or lies
    outside its width × height image."""
    if not len(boxes):
        return
    x1, y1, x2, y2 = boxes.unbind(1)
    problems = [
        (~torch.isfinite(boxes).all(1), "is not finite"),
        (x2 < x1, "has x2 < x1"),
        (y2 < y1, "has y2 < y1"),
        (
            (x1 < 0) | (y1 < 0) | (x2 > width) | (y2 > height),
            f"lies outside the {width}×{height} image",
        ),
    ]
    for bad, what in problems:
        if bool(bad.any()):
            k = int(bad.nonzero()[0])
            which = f"box {k}" if image is None else f"box {k} (image {int(image[k])})"
            raise DataError(
                f"{where}: {which} {boxes[k].tolist()} {what}: boxes are x1 y1 x2 y2 in pixels "
                f"with 0 ≤ x1 ≤ x2 ≤ width and 0 ≤ y1 ≤ y2 ≤ height (clip or drop it)"
            )
