"""Batched data augmentation: whole batches as tensor ops on the training device.

Every transform is a plain class called as ``t(x, y, g) -> (x, y)``:

- ``x``: float tensor N×C×H×W with values in [0, 1], on any device;
- ``y``: int64 labels (N,), float soft targets (N, K), or None;
- ``g``: a CPU ``torch.Generator``. All random parameters are drawn on the CPU from ``g`` (by
  ``t.get_params(x.shape, g)``) and only then moved to ``x.device``, so one seed gives the same
  parameters, and the same output up to float rounding, on CPU and on CUDA.

No transform loops over samples or pixels in Python. Transforms never modify their input in place.

The loaders also pass ``info``, a `BatchInfo` (the images' dataset indices, the epoch, the seed),
to transforms that depend on which image they see and when (`AlternatingFlip`); the others ignore
it, and plain callables in a `Compose` are called as ``t(x, y, g)``.

Geometric
    RandomHorizontalFlip(p)       flip each sample left-right with probability p
    AlternatingFlip()             flip a fixed random half of the images in even epochs and the
                                  other half in odd ones (Jordan 2024, arXiv:2404.00498 §3.6)
    RandomCrop(size, padding, padding_mode)
                                  crop of the padded image at a per-sample offset (one gather)
    RandomTranslate(max_shift)    per-sample integer shift, zero fill
    Cutout(size, p)               zero a square around a per-sample centre, clipped at the border
                                  (DeVries & Taylor 2017, arXiv:1708.04552)
    RandomAffine(degrees, translate, scale, shear, fill)
                                  per-sample rotation/translation/scale/shear, bilinear
                                  (``affine_grid`` + ``grid_sample``, ``align_corners=False``;
                                  torchvision's matrix, positive angles clockwise)
Photometric
    ColorJitter(brightness, contrast, saturation)
                                  per-sample factors, torchvision's formulas
Label mixing (return soft targets N×num_classes)
    Mixup(alpha, *, num_classes)  Zhang et al. 2018, arXiv:1710.09412
    CutMix(alpha, *, num_classes) Yun et al. 2019, arXiv:1905.04899
Progressive resizing (smaller images in the first epochs): `striate.data.progressive`
Chaining and seeding
    Compose(transforms)           apply in order
    augment(x, y, transform, seed, info)
                                  run a transform with a fresh generator seeded with ``seed``

About 780 lines: a family file of small transform classes (each check at the door, draw on the
CPU, apply on the device), like the schedules and the model families.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from striate.checks import (
    fail,
    image_size,
    integer,
    is_number,
    non_negative_int,
    one_of,
    positive_int,
    positive_number,
    probability,
)
from striate.errors import StriateError

__all__ = [
    "AlternatingFlip",
    "BatchInfo",
    "ColorJitter",
    "Compose",
    "CutMix",
    "Cutout",
    "Mixup",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomTranslate",
    "Transform",
    "augment",
]

Batch = tuple[torch.Tensor, "torch.Tensor | None"]
Params = dict[str, torch.Tensor]


# --------------------------------------------------------------------------- validation helpers


def _check_range(name: str, v: Any, owner: str, *, centre: float | None, low: float) -> tuple:
    """A number v means (centre - v, centre + v) (or (-v, v) when centre is None); a pair is kept.

    Both ends must be at least `low` and in order.
    """
    if is_number(v):
        if v < 0:
            raise fail(owner, name, "non-negative", v)
        lo, hi = (-float(v), float(v)) if centre is None else (max(low, centre - v), centre + v)
        return (lo, hi)
    if (
        isinstance(v, Sequence)
        and len(v) == 2
        and all(is_number(e) for e in v)
        and low <= v[0] <= v[1]
    ):
        return (float(v[0]), float(v[1]))
    bound = "min <= max" if low == -math.inf else f"{low:g} <= min <= max"
    raise fail(owner, name, f"a non-negative number or a (min, max) pair with {bound}", v)


def _check_batch(x: Any, y: Any, g: Any, owner: str) -> None:
    """What every transform needs: a float N×C×H×W batch, matching targets, a CPU generator."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise StriateError(
            f"{owner}: images must be a float tensor N×C×H×W with values in [0, 1], got "
            f"{_describe(x)}; convert uint8 batches with x.float() / 255 and add a batch "
            f"dimension to one image with x[None]"
        )
    if y is not None:
        ok = isinstance(y, torch.Tensor) and (
            (y.ndim == 1 and y.dtype == torch.int64) or (y.ndim == 2 and y.is_floating_point())
        )
        if not ok:
            raise StriateError(
                f"{owner}: targets must be int64 labels (N,) or float soft targets (N, K), "
                f"got {_describe(y)}; convert labels with y.long()"
            )
        if len(y) != len(x):
            raise StriateError(
                f"{owner}: {len(x)} images but {len(y)} targets: give one target per image"
            )
    if not isinstance(g, torch.Generator) or g.device.type != "cpu":
        raise StriateError(
            f"{owner}: the random source must be a CPU torch.Generator (got "
            f"{getattr(g, 'device', type(g).__name__)}); use torch.Generator().manual_seed(seed) "
            f"or striate.data.augment.augment(x, y, transform, seed=seed)"
        )


def _describe(v: Any) -> str:
    """A tensor's dtype and shape, or another value's type, for an error message."""
    if isinstance(v, torch.Tensor):
        return f"{v.dtype} tensor of shape {tuple(v.shape)}"
    return type(v).__name__


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """n floats uniform in [lo, hi), drawn on the CPU from g (float64 so no range is lost)."""
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)


def _beta(alpha: float, g: torch.Generator) -> float:
    """One draw from Beta(alpha, alpha), reproducible from g.

    torch's Beta sampler takes no generator, so a NumPy generator is seeded from g instead.
    """
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _padded_crops(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    size: tuple[int, int],
    pad: tuple[int, int],
    mode: str,
) -> torch.Tensor:
    """out[n] = xp[n, :, top[n]:top[n]+h, left[n]:left[n]+w] where xp is x padded by pad[0] rows
    and pad[1] columns on each side, with zeros or by reflection (as ``F.pad`` 'reflect').

    The padded batch is never built: each output pixel's source index is computed (reflected,
    or clamped and then zeroed) and fetched with one gather.
    """
    n, c, hi, wi = x.shape
    h, w = size
    dev = x.device
    rows = top.to(dev)[:, None] + torch.arange(h, device=dev) - pad[0]  # N×h, in x's coordinates
    cols = left.to(dev)[:, None] + torch.arange(w, device=dev) - pad[1]  # N×w
    if mode == "reflect":  # -k → k and (size - 1) + k → (size - 1) - k; needs pad < size
        rows = rows.abs()
        rows = torch.where(rows >= hi, 2 * (hi - 1) - rows, rows)
        cols = cols.abs()
        cols = torch.where(cols >= wi, 2 * (wi - 1) - cols, cols)
        inside = None
    else:
        inside = ((rows >= 0) & (rows < hi))[:, :, None] & ((cols >= 0) & (cols < wi))[:, None, :]
        rows, cols = rows.clamp(0, hi - 1), cols.clamp(0, wi - 1)
    index = (rows[:, :, None] * wi + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    out = x.reshape(n, c, hi * wi).gather(2, index).reshape(n, c, h, w)
    return out if inside is None else out * inside[:, None].to(x.dtype)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Greyscale N×1×H×W with ITU-R 601 weights, as torchvision's rgb_to_grayscale."""
    if x.shape[1] == 1:
        return x
    r, gr, b = x.unbind(1)
    return (0.2989 * r + 0.587 * gr + 0.114 * b).unsqueeze(1)


# --------------------------------------------------------------------------- base class


@dataclass(frozen=True)
class BatchInfo:
    """Where a batch comes from: its images' positions in the dataset (int64, any device), the
    epoch (from 0) and the loader's seed. The loaders pass it to every `Transform`."""

    index: torch.Tensor
    epoch: int
    seed: int = 0


class Transform:
    """Base class: ``t(x, y, g)`` draws parameters on the CPU with ``get_params``, then ``apply``.

    Subclasses list their constructor arguments in ``_fields`` (for ``__repr__``) and override
    ``get_params`` (random choices only, CPU tensors) and ``apply`` (tensor ops only).
    """

    _fields: tuple[str, ...] = ()

    def get_params(self, shape: torch.Size | tuple[int, ...], g: torch.Generator) -> Params:
        """The random parameters for a batch of this shape, as CPU tensors drawn from g."""
        return {}

    def apply(self, x: torch.Tensor, y: torch.Tensor | None, params: Params) -> Batch:
        raise NotImplementedError

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        g: torch.Generator,
        info: BatchInfo | None = None,
    ) -> Batch:
        _check_batch(x, y, g, type(self).__name__)
        self._check_input(x, y)
        return self.apply(x, y, self.get_params(tuple(x.shape), g))

    def _check_input(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        """Checks that depend on the batch (image size, channels, targets); none by default."""

    def __repr__(self) -> str:
        args = ", ".join(f"{f}={getattr(self, f)!r}" for f in self._fields)
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, threading (x, y) and the one generator through them."""

    def __init__(self, transforms: Iterable[Any]) -> None:
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise StriateError(
                    f"Compose: every item must be a transform called as t(x, y, g), got "
                    f"{type(t).__name__}"
                )
        self.transforms = transforms

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        g: torch.Generator,
        info: BatchInfo | None = None,
    ) -> Batch:
        _check_batch(x, y, g, "Compose")
        for t in self.transforms:
            x, y = call_transform(t, x, y, g, info)
        return x, y

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> Any:
        return self.transforms[i]

    def __repr__(self) -> str:
        if not self.transforms:
            return "Compose([])"
        inner = "".join(f"    {t!r},\n" for t in self.transforms)
        return f"Compose([\n{inner}])"


def augment(
    x: torch.Tensor,
    y: torch.Tensor | None,
    transform: Any,
    seed: int = 0,
    info: BatchInfo | None = None,
) -> Batch:
    """Run ``transform(x, y, g)`` with a fresh CPU generator seeded with ``seed`` (and ``info``
    for a `Transform`)."""
    seed = integer("augment", "seed", seed)
    return call_transform(transform, x, y, torch.Generator().manual_seed(seed), info)


def fit_to(transform: Any, images: torch.Tensor) -> Any:
    """Fit the transforms that learn from the training images (those with a ``fit``, such as
    `PCALighting`) on `images`; returns `transform`."""
    if transform is None:
        return None
    items = transform.transforms if isinstance(transform, Compose) else [transform]
    for t in items:
        if hasattr(t, "fit"):
            t.fit(images)
    return transform


def call_transform(
    t: Any, x: torch.Tensor, y: torch.Tensor | None, g: torch.Generator, info: BatchInfo | None
) -> Batch:
    """``t(x, y, g, info)`` for a `Transform`; a plain callable is called as ``t(x, y, g)``."""
    return t(x, y, g, info) if isinstance(t, Transform) else t(x, y, g)


# --------------------------------------------------------------------------- geometric


class RandomHorizontalFlip(Transform):
    """Flip each sample left-right with probability ``p``."""

    _fields = ("p",)

    def __init__(self, p: float = 0.5) -> None:
        self.p = probability("RandomHorizontalFlip", "p", p)

    def get_params(self, shape, g):
        return {"flip": torch.rand(shape[0], generator=g) < self.p}

    def apply(self, x, y, params):
        flip = params["flip"].to(x.device)[:, None, None, None]
        return torch.where(flip, x.flip(-1), x), y


class AlternatingFlip(Transform):
    """Flip a fixed random half of the images in even epochs and the other half in odd epochs,
    so every image is seen both ways in every two epochs (airbench's "alternating flip", Jordan
    2024, arXiv:2404.00498 §3.6: fewer repeated views than a coin per epoch).

    The half is a coin per (seed, dataset index): SplitMix64's finaliser (Steele, Lea & Flood
    2014) of ``index + seed·φ·2⁶⁴``. It needs ``info`` (the loaders pass it): called without,
    it raises.
    """

    def __call__(self, x, y, g, info=None):
        _check_batch(x, y, g, "AlternatingFlip")
        if not isinstance(info, BatchInfo):
            raise StriateError(
                "AlternatingFlip: needs the images' dataset indices and the epoch; use it "
                "through BatchLoader/StreamingLoader, or pass "
                "info=BatchInfo(index=..., epoch=..., seed=...)"
            )
        if info.index.shape != (len(x),):
            raise StriateError(
                f"AlternatingFlip: info.index must hold one dataset index per image "
                f"({len(x)}), got shape {tuple(info.index.shape)}"
            )
        return self.apply(x, y, self.get_info_params(info))

    def get_info_params(self, info: BatchInfo) -> Params:
        odd = info.epoch % 2 == 1
        return {"flip": torch.from_numpy(_coins(info.index, info.seed) ^ odd)}

    apply = RandomHorizontalFlip.apply  # the same {"flip": mask} parameters


def _coins(index: torch.Tensor, seed: int) -> np.ndarray:
    """A fair coin per (seed, index), the same in every call: the top bit of SplitMix64's
    output for ``index + seed·0x9E3779B97F4A7C15`` (uint64 arithmetic wraps around)."""
    z = index.detach().cpu().numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(seed % 2**64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(63)).astype(bool)


class RandomCrop(Transform):
    """Pad every side by ``padding`` (zeros or reflection), then crop ``size`` at a per-sample
    offset drawn uniformly over all positions, as torchvision's RandomCrop.

    Reflection is ``F.pad``'s 'reflect' (torchvision's too): the edge pixel is not repeated.
    """

    _fields = ("size", "padding", "padding_mode")
    _modes = ("zeros", "reflect")

    def __init__(
        self, size: int | tuple[int, int], padding: int = 4, padding_mode: str = "zeros"
    ) -> None:
        self.size = image_size("RandomCrop", size)
        self.padding = non_negative_int("RandomCrop", "padding", padding)
        self.padding_mode = one_of("RandomCrop", "padding_mode", padding_mode, self._modes)

    def _check_input(self, x, y):
        _, _, h, w = x.shape
        p = self.padding
        if self.padding_mode == "reflect" and p > 0 and (p >= h or p >= w):
            raise StriateError(
                f"RandomCrop: reflect padding {p} needs images larger than {p}×{p}, got {h}×{w}; "
                f"use a smaller padding or padding_mode='zeros'"
            )
        if self.size[0] > h + 2 * p or self.size[1] > w + 2 * p:
            raise StriateError(
                f"RandomCrop: crop {self.size[0]}×{self.size[1]} is larger than the padded image "
                f"{h + 2 * p}×{w + 2 * p}; lower size or raise padding"
            )

    def get_params(self, shape, g):
        n, _, h, w = shape
        p = self.padding
        top = torch.randint(0, h + 2 * p - self.size[0] + 1, (n,), generator=g)
        left = torch.randint(0, w + 2 * p - self.size[1] + 1, (n,), generator=g)
        return {"top": top, "left": left}

    def apply(self, x, y, params):
        p = self.padding
        crops = _padded_crops(
            x, params["top"], params["left"], self.size, (p, p), self.padding_mode
        )
        return crops, y


class RandomTranslate(Transform):
    """Shift each sample by whole pixels, independently in x and y, uniformly in
    [-max_shift, max_shift]; uncovered pixels are zero. An int is pixels, a float in [0, 1) a
    fraction of the image height (for y) and width (for x), rounded to whole pixels."""

    _fields = ("max_shift",)

    def __init__(self, max_shift: int | float) -> None:
        ok = is_number(max_shift) and (
            (isinstance(max_shift, numbers.Integral) and max_shift >= 0)
            or (not isinstance(max_shift, numbers.Integral) and 0.0 <= max_shift < 1.0)
        )
        if not ok:
            raise StriateError(
                f"RandomTranslate: max_shift must be a non-negative int (pixels) or a float in "
                f"[0, 1) (fraction of the image size), got {max_shift!r}"
            )
        self.max_shift = max_shift

    def _shifts(self, h: int, w: int) -> tuple[int, int]:
        if isinstance(self.max_shift, numbers.Integral):
            return int(self.max_shift), int(self.max_shift)
        return round(self.max_shift * h), round(self.max_shift * w)

    def get_params(self, shape, g):
        n, _, h, w = shape
        sy, sx = self._shifts(h, w)
        dy = torch.randint(-sy, sy + 1, (n,), generator=g)
        dx = torch.randint(-sx, sx + 1, (n,), generator=g)
        return {"dy": dy, "dx": dx}

    def apply(self, x, y, params):
        _, _, h, w = x.shape
        sy, sx = self._shifts(h, w)
        # Shifting content down by dy is cropping the zero-padded image starting dy rows higher.
        top, left = sy - params["dy"], sx - params["dx"]
        return _padded_crops(x, top, left, (h, w), (sy, sx), "zeros"), y


class RandomScaleCrop(Transform):
    """ResNet's scale augmentation (He et al. 2016 §3.4, after Simonyan & Zisserman 2015): each
    image resized (bilinear) so that its short side is a random L in ``scale`` = (low, high),
    then cropped to ``size`` at a random position. For 224 crops the papers draw L in [256, 480].

    Batched: each output pixel is sampled straight from the image at the point the resize and the
    crop send it to (one ``grid_sample``), the same values as resizing then cropping.
    """

    _fields = ("size", "scale")

    def __init__(self, size: int | tuple[int, int], scale: tuple[float, float] = (256, 480)):
        self.size = image_size("RandomScaleCrop", size)
        if is_number(scale):
            raise fail("RandomScaleCrop", "scale", "a (low, high) pair of short sides", scale)
        lo, hi = _check_range("scale", scale, "RandomScaleCrop", centre=None, low=1.0)
        if lo < max(self.size):
            raise StriateError(
                f"RandomScaleCrop: the short side after resizing ({lo:g} at least) must hold "
                f"the {self.size[0]}×{self.size[1]} crop; raise scale or lower size"
            )
        self.scale = (lo, hi)

    def get_params(self, shape, g):
        n = shape[0]
        return {
            "short": _uniform(n, *self.scale, g),
            "u": torch.rand(n, generator=g, dtype=torch.float64),
            "v": torch.rand(n, generator=g, dtype=torch.float64),
        }

    def apply(self, x, y, params):
        _, _, h, w = x.shape
        ch, cw = self.size
        dev = x.device
        s = params["short"].to(torch.float64) / min(h, w)  # the resize factor of each image
        top = params["u"] * (h * s - ch)  # the crop's corner in the resized image
        left = params["v"] * (w * s - cw)
        rows = (top[:, None] + torch.arange(ch, dtype=torch.float64) + 0.5) / s[:, None]
        cols = (left[:, None] + torch.arange(cw, dtype=torch.float64) + 0.5) / s[:, None]
        gy = (2 * rows / h - 1).to(dev, x.dtype)[:, :, None].expand(-1, ch, cw)
        gx = (2 * cols / w - 1).to(dev, x.dtype)[:, None, :].expand(-1, ch, cw)
        grid = torch.stack((gx, gy), dim=-1)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out, y


class Cutout(Transform):
    """Zero a ``size``×``size`` square in each sample (with probability ``p``); the centre is
    uniform over the whole image, so the square is clipped near the border.

    DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks with Cutout".
    Rows ``cy - size//2`` to ``cy - size//2 + size - 1`` (and likewise columns) are zeroed.
    """

    _fields = ("size", "p")

    def __init__(self, size: int, p: float = 1.0) -> None:
        self.size = positive_int("Cutout", "size", size, hint="pixels")
        self.p = probability("Cutout", "p", p)

    def get_params(self, shape, g):
        n, _, h, w = shape
        cy = torch.randint(0, h, (n,), generator=g)
        cx = torch.randint(0, w, (n,), generator=g)
        apply = torch.rand(n, generator=g) < self.p
        return {"cy": cy, "cx": cx, "apply": apply}

    def apply(self, x, y, params):
        _, _, h, w = x.shape
        dev = x.device
        top = (params["cy"].to(dev) - self.size // 2)[:, None]
        left = (params["cx"].to(dev) - self.size // 2)[:, None]
        rows = torch.arange(h, device=dev)
        cols = torch.arange(w, device=dev)
        in_rows = (rows >= top) & (rows < top + self.size)  # N×H
        in_cols = (cols >= left) & (cols < left + self.size)  # N×W
        box = in_rows[:, :, None] & in_cols[:, None, :] & params["apply"].to(dev)[:, None, None]
        # x · keep rather than masked_fill: a third of the time on CPU, and x is finite.
        return x * (~box)[:, None].to(x.dtype), y


class RandomAffine(Transform):
    """Per-sample affine warp with bilinear sampling, torchvision's parameter meanings.

    degrees: a number d (angle uniform in [-d, d]) or a (min, max) pair; positive turns
    clockwise as displayed, as torchvision's ``F.affine``/``RandomAffine`` (``F.rotate`` is the
    other way). translate: (a, b) maximum fractions of width and height; the shift is uniform
    in [-a·W, a·W] × [-b·H, b·H] pixels (torchvision rounds it to whole pixels; here it is not
    rounded). scale: (min, max). shear: a number s (x-shear in [-s, s] degrees), a pair (x-shear
    range) or four numbers (x-shear range, y-shear range). fill: value for pixels that come from
    outside the image.

    As torchvision: in pixel coordinates centred on the image, y down, an input point p maps to
    ``scale · R(angle) · ShY(shear_y) · ShX(shear_x) · p + t`` with
    ``R = [[cos, -sin], [sin, cos]]``, ``ShY = [[1, 0], [-tan, 1]]``, ``ShX = [[1, -tan], [0, 1]]``.
    The inverse is applied with ``affine_grid``/``grid_sample(align_corners=False)``: pixel i
    has centre i + 0.5 and the image spans [0, W], so a 90° turn of a square image maps pixel
    centres onto pixel centres (it equals ``torch.rot90(x, -1, dims=(-2, -1))``).
    """

    _fields = ("degrees", "translate", "scale", "shear", "fill")

    def __init__(
        self,
        degrees: float | tuple[float, float],
        translate: tuple[float, float] | None = None,
        scale: tuple[float, float] | None = None,
        shear: float | Sequence[float] | None = None,
        fill: float = 0.0,
    ) -> None:
        owner = "RandomAffine"
        self.degrees = _check_range("degrees", degrees, owner, centre=None, low=-math.inf)
        if translate is not None and not (
            isinstance(translate, Sequence)
            and len(translate) == 2
            and all(is_number(t) and 0.0 <= t <= 1.0 for t in translate)
        ):
            raise StriateError(
                f"{owner}: translate must be None or (a, b), fractions of width and height in "
                f"[0, 1], got {translate!r}"
            )
        self.translate = None if translate is None else (float(translate[0]), float(translate[1]))
        if scale is not None and not (
            isinstance(scale, Sequence)
            and len(scale) == 2
            and all(is_number(s) for s in scale)
            and 0 < scale[0] <= scale[1]
        ):
            raise StriateError(
                f"{owner}: scale must be None or a (min, max) pair with 0 < min <= max, "
                f"got {scale!r}"
            )
        self.scale = None if scale is None else (float(scale[0]), float(scale[1]))
        self.shear = self._check_shear(shear, owner)
        if not is_number(fill):
            raise fail(owner, "fill", "a number", fill)
        self.fill = float(fill)

    @staticmethod
    def _check_shear(shear: Any, owner: str) -> tuple[float, float, float, float] | None:
        if shear is None:
            return None
        if isinstance(shear, Sequence) and len(shear) == 4 and all(is_number(s) for s in shear):
            sx = _check_range("shear", tuple(shear[:2]), owner, centre=None, low=-math.inf)
            sy = _check_range("shear", tuple(shear[2:]), owner, centre=None, low=-math.inf)
        else:
            sx = _check_range("shear", shear, owner, centre=None, low=-math.inf)
            sy = (0.0, 0.0)
        if max(abs(v) for v in sx + sy) >= 90:
            raise StriateError(
                f"{owner}: shear angles must lie in (-90, 90) degrees, got {shear!r}"
            )
        return (*sx, *sy)

    def get_params(self, shape, g):
        n, _, h, w = shape
        zeros = torch.zeros(n, dtype=torch.float64)
        angle = _uniform(n, *self.degrees, g)
        if self.translate is None:
            tx, ty = zeros, zeros
        else:
            a, b = self.translate
            tx = _uniform(n, -a * w, a * w, g)
            ty = _uniform(n, -b * h, b * h, g)
        scale = zeros + 1 if self.scale is None else _uniform(n, *self.scale, g)
        if self.shear is None:
            shx, shy = zeros, zeros
        else:
            shx = _uniform(n, *self.shear[:2], g)
            shy = _uniform(n, *self.shear[2:], g)
        return {"angle": angle, "tx": tx, "ty": ty, "scale": scale, "shear_x": shx, "shear_y": shy}

    @staticmethod
    def theta(params: Params, height: int, width: int) -> torch.Tensor:
        """N×2×3 matrices for ``affine_grid(align_corners=False)``: output → input, normalised."""
        rad = torch.deg2rad(params["angle"])
        cos, sin = torch.cos(rad), torch.sin(rad)
        kx = torch.tan(torch.deg2rad(params["shear_x"]))
        ky = torch.tan(torch.deg2rad(params["shear_y"]))
        s = params["scale"]
        # L = s · R · ShY · ShX; R · ShY = [[cos + sin·ky, -sin], [sin - cos·ky, cos]] = m.
        m00, m01, m10, m11 = cos + sin * ky, -sin, sin - cos * ky, cos
        l00, l01 = s * m00, s * (m01 - m00 * kx)
        l10, l11 = s * m10, s * (m11 - m10 * kx)
        det = l00 * l11 - l01 * l10  # = s², never zero
        i00, i01, i10, i11 = l11 / det, -l01 / det, -l10 / det, l00 / det
        tx, ty = params["tx"], params["ty"]
        # Pixels (centred) → normalised: multiply x by 2/W and y by 2/H.
        row0 = torch.stack([i00, i01 * height / width, -(i00 * tx + i01 * ty) * 2 / width], -1)
        row1 = torch.stack([i10 * width / height, i11, -(i10 * tx + i11 * ty) * 2 / height], -1)
        return torch.stack([row0, row1], 1)

    def apply(self, x, y, params):
        n, c, h, w = x.shape
        theta = self.theta(params, h, w).to(device=x.device, dtype=x.dtype)
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        if self.fill == 0.0:
            return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False), y
        # Sample a channel of ones alongside: 1 - it is how much of each pixel came from outside.
        ones = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
        out = F.grid_sample(
            torch.cat([x, ones], 1), grid, padding_mode="zeros", align_corners=False
        )
        return out[:, :c] + (1 - out[:, c:]) * self.fill, y


# --------------------------------------------------------------------------- photometric


class ColorJitter(Transform):
    """Per-sample brightness, contrast and saturation factors, applied in that order.

    A number v means a factor uniform in [max(0, 1 - v), 1 + v]; a (min, max) pair is used as
    given; 0 or None switches the adjustment off. Formulas as torchvision's, each followed by a
    clamp to [0, 1]: brightness ``f·x``; contrast ``f·x + (1 - f)·mean(gray(x))``; saturation
    ``f·x + (1 - f)·gray(x)``, with gray = 0.2989 R + 0.587 G + 0.114 B. Saturation does nothing
    on 1-channel images. Unlike torchvision the order is fixed, not shuffled per call.
    """

    _fields = ("brightness", "contrast", "saturation")

    def __init__(
        self,
        brightness: float | tuple[float, float] | None = 0,
        contrast: float | tuple[float, float] | None = 0,
        saturation: float | tuple[float, float] | None = 0,
    ) -> None:
        self.brightness = self._factor("brightness", brightness)
        self.contrast = self._factor("contrast", contrast)
        self.saturation = self._factor("saturation", saturation)

    @staticmethod
    def _factor(name: str, v: Any) -> tuple[float, float] | None:
        if v is None or (is_number(v) and v == 0):
            return None
        return _check_range(name, v, "ColorJitter", centre=1.0, low=0.0)

    def _check_input(self, x, y):
        if x.shape[1] not in (1, 3):
            raise StriateError(
                f"ColorJitter: images must have 1 (grey) or 3 (RGB) channels, got {x.shape[1]}"
            )

    def get_params(self, shape, g):
        n = shape[0]
        return {
            name: _uniform(n, *rng, g)
            for name in self._fields
            if (rng := getattr(self, name)) is not None
        }

    def apply(self, x, y, params):
        def factor(name: str) -> torch.Tensor:
            return params[name].to(device=x.device, dtype=x.dtype)[:, None, None, None]

        if "brightness" in params:
            x = (x * factor("brightness")).clamp(0, 1)
        if "contrast" in params:
            f = factor("contrast")
            mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
            x = (f * x + (1 - f) * mean).clamp(0, 1)
        if "saturation" in params and x.shape[1] == 3:
            f = factor("saturation")
            x = (f * x + (1 - f) * _gray(x)).clamp(0, 1)
        return x, y


# --------------------------------------------------------------------------- label mixing


class _Mix(Transform):
    """Shared by Mixup and CutMix: alpha, num_classes, targets made soft, a random partner."""

    _fields = ("alpha", "num_classes")

    def __init__(self, alpha: float = 1.0, *, num_classes: int) -> None:
        owner = type(self).__name__
        self.alpha = positive_number(owner, "alpha", alpha)
        self.num_classes = positive_int(
            owner, "num_classes", num_classes, hint="the length of the soft targets"
        )

    def _check_input(self, x, y):
        owner = type(self).__name__
        if y is None:
            raise StriateError(f"{owner} mixes targets as well as images: pass the targets y")
        if y.ndim == 2 and y.shape[1] != self.num_classes:
            raise StriateError(
                f"{owner}: soft targets have {y.shape[1]} columns but num_classes is "
                f"{self.num_classes}"
            )
        if y.ndim == 1 and len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise StriateError(
                f"{owner}: labels range over {int(y.min())}..{int(y.max())} but num_classes is "
                f"{self.num_classes}"
            )

    def _soft(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if y.ndim == 1:
            return F.one_hot(y, self.num_classes).to(dtype)
        return y

    def _mix_targets(self, x, y, perm, lam: float) -> torch.Tensor:
        y = self._soft(y, x.dtype)
        return lam * y + (1 - lam) * y[perm.to(y.device)]


class Mixup(_Mix):
    """Mixup (Zhang et al. 2018): ``x = λ·x + (1-λ)·x[perm]`` and the same for one-hot targets,
    one λ ~ Beta(alpha, alpha) per batch, perm a random permutation of the batch."""

    def get_params(self, shape, g):
        lam = torch.tensor(_beta(self.alpha, g), dtype=torch.float64)
        return {"lam": lam, "perm": torch.randperm(shape[0], generator=g)}

    def apply(self, x, y, params):
        lam = float(params["lam"])
        perm = params["perm"].to(x.device)
        return lam * x + (1 - lam) * x[perm], self._mix_targets(x, y, perm, lam)


class CutMix(_Mix):
    """CutMix (Yun et al. 2019): paste a box from x[perm] into every sample; one box per batch.

    λ ~ Beta(alpha, alpha) sets the box sides to ``sqrt(1 - λ)`` of the image's; the centre is
    uniform over the image and the box is clipped, then λ is recomputed as the fraction of pixels
    left from the sample itself, and the targets are mixed with that λ.
    """

    def get_params(self, shape, g):
        n, _, h, w = shape
        lam = _beta(self.alpha, g)
        perm = torch.randperm(n, generator=g)
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (1,), generator=g))
        cx = int(torch.randint(0, w, (1,), generator=g))
        y0, y1 = min(max(cy - ch // 2, 0), h), min(max(cy + ch // 2, 0), h)
        x0, x1 = min(max(cx - cw // 2, 0), w), min(max(cx + cw // 2, 0), w)
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        return {
            "lam": torch.tensor(lam, dtype=torch.float64),
            "perm": perm,
            "box": torch.tensor([y0, y1, x0, x1]),
        }

    def apply(self, x, y, params):
        lam = float(params["lam"])
        perm = params["perm"].to(x.device)
        y0, y1, x0, x1 = (int(v) for v in params["box"])
        out = x.clone()
        out[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        return out, self._mix_targets(x, y, perm, lam)
