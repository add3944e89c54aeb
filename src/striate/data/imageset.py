"""ImageSet: the one currency between the parts of striate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from striate.checks import integer
from striate.data.stratify import encode, stratified
from striate.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images: uint8 `images` (N×C×H×W), int64 `labels` (N), `classes` names, `source`.

    `ds[i]` gives one `(image, label)` pair; `ds[slice]`, `ds[index_tensor]` or `ds[bool_mask]`
    give a new ImageSet sharing the class names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                f"ImageSet images must be a uint8 tensor N×C×H×W, got "
                f"{getattr(images, 'dtype', type(images).__name__)} of shape "
                f"{tuple(getattr(images, 'shape', ()))} ({self.source or 'no source'})"
            )
        if images.shape[1] not in (1, 3):
            raise DataError(
                f"ImageSet images must have 1 or 3 channels, got {images.shape[1]} "
                f"({self.source or 'no source'})"
            )
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.ndim != 1:
            raise DataError(
                f"ImageSet labels must be a 1-D int64 tensor, got "
                f"{getattr(labels, 'dtype', type(labels).__name__)} ({self.source or 'no source'})"
            )
        if len(labels) != len(images):
            raise DataError(
                f"{len(images)} images but {len(labels)} labels ({self.source or 'no source'}): "
                f"each image needs exactly one label"
            )
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if len(self.classes) == 0:
            raise DataError(f"an ImageSet needs class names ({self.source or 'no source'})")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(self.classes)):
            raise DataError(
                f"labels range over {int(labels.min())}..{int(labels.max())} but there are "
                f"{len(self.classes)} classes ({self.source or 'no source'})"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.images[index], int(self.labels[index])
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        elif isinstance(index, Sequence) and not isinstance(index, (str, bytes)):
            index = torch.as_tensor(index, dtype=torch.int64)
        return ImageSet(self.images[index], self.labels[index], self.classes, self.source)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (
            f"ImageSet({len(self)} images, {c}×{h}×{w}, {self.num_classes} classes"
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

    def class_counts(self) -> torch.Tensor:
        """Number of images of each class, indexed like `classes`."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def pixel_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and standard deviation of the pixels, on the 0–1 scale.

        From each channel's histogram of the 256 grey levels (one `bincount`, no float copy of
        the images): mean = Σ h(v)·v / n and variance = Σ h(v)·(v − mean)² / n, in float64.
        """
        if len(self) == 0:
            raise DataError(f"cannot take pixel statistics of an empty ImageSet ({self.source})")
        levels = torch.arange(256, dtype=torch.float64)
        hist = torch.stack(
            [
                torch.bincount(self.images[:, ch].reshape(-1), minlength=256).cpu()
                for ch in range(self.images.shape[1])
            ]
        ).to(torch.float64)
        n = hist.sum(1)
        mean = hist @ levels / n
        var = (hist * (levels - mean[:, None]).square()).sum(1) / n
        return (mean / 255).float(), (var.sqrt() / 255).float()

    def sample(self, n: int | float, seed: int = 0) -> ImageSet:
        """A seeded random subset of `n` images (a count, or a fraction in (0, 1]) in which every
        class keeps its share: class c of n_c images gives n·n_c/N of them, rounded down or up
        (`striate.data.splits.stratified_split`'s rule, so the counts sum to `n`).

        The images keep their original order (a folder set stays sorted by class), so
        `ds.sample(len(ds))` is `ds`; the same seed gives the same subset. Use it instead of
        ``ds[:n]``, which on a folder or zip set holds only the first classes.
        """
        total = len(self)
        where = f"ImageSet.sample ({self.source or 'no source'})"
        if isinstance(n, bool) or not isinstance(n, (int, float, np.integer, np.floating)):
            raise DataError(
                f"{where}: n must be a count of images or a fraction in (0, 1], got {n!r}"
            )
        if isinstance(n, (float, np.floating)):
            if not 0 < n <= 1:
                raise DataError(
                    f"{where}: n={n} is not a fraction in (0, 1]; give a fraction such as 0.1 "
                    f"or a whole count of images such as 500"
                )
            count = math.ceil(round(float(n) * total, 6))  # as stratified_split counts a fraction
        else:
            count = int(n)
            if count <= 0:
                raise DataError(f"{where}: n={count} images: ask for at least 1")
        integer(where, "seed", seed, error=DataError)
        if total == 0:
            raise DataError(f"{where}: the set is empty, there is nothing to sample")
        if count > total:
            raise DataError(
                f"{where}: n={count} but the set holds {total:,} images: ask for at most "
                f"{total:,} (or a fraction in (0, 1])"
            )
        if count == total:
            index = torch.arange(total)
        else:
            codes, counts, _ = encode(self.labels)
            _, index = stratified(codes, counts, count, seed)  # sorted: the original order
        index = index.to(self.images.device)
        note = f"[sample of {count:,}, stratified, seed {seed}]"
        source = f"{self.source} {note}" if self.source else note
        return ImageSet(self.images[index], self.labels[index], self.classes, source)

    def to(self, device: str | torch.device) -> ImageSet:
        """The same set with its tensors on `device`."""
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.source)

    def show(self, n: int = 64, per_class: int | None = None, seed: int = 0) -> Figure:
        """A matplotlib grid of samples: `n` random images, or `per_class` of each class in rows."""
        from striate.data.plots import sample_grid  # loads matplotlib: only to draw

        return sample_grid(self, n=n, per_class=per_class, seed=seed)
