"""Box-aware batch augmentation: geometric transforms move the boxes and instance masks with the
pixels, photometric ones leave them alone.

A box transform is called as ``t(x, y, g, info=None) -> (x, y)`` with ``x`` float B×C×H×W (0–1)
and ``y`` a `BoxTargets`: boxes B×M×4 (x1 y1 x2 y2 in pixels), labels B×M (−1 padding, −2 crowd)
and optionally masks B×M×H×W (bool). As in `striate.data.augment`, every random parameter is
drawn on the CPU from ``g`` (``get_params``) and applied as batched tensor ops on x's device
(``apply``); nothing loops over images or boxes in Python.

Objects a transform pushes (mostly) out of the image are dropped: their label becomes −1 and
their box and mask zero, and each row is re-packed so that the objects come first in their
order and the padding last.

    BoxFlip(p)                   mirror left-right with probability p
    BoxZoom(scale, min_visible)  zoom by a per-image factor (> 1 a crop, < 1 a smaller image on
                                 a `fill` border) at a random place
    BoxJitter(brightness, contrast, saturation)
                                 per-image colour factors (`ColorJitter`'s formulas)
    BoxCompose(transforms)       apply in order
    parse_box_augment(spec)      "flip,zoom:0.5-1.5,jitter:0.2" → a transform (or None)

Digits change meaning when mirrored (a mirrored 2 is no digit), so leave `flip` out for the
digit scenes; it is for natural scenes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from striate.checks import did_you_mean, fail, is_number, number, probability
from striate.data.augment import BatchInfo, ColorJitter, Transform
from striate.errors import ConfigError, StriateError

__all__ = [
    "BoxCompose",
    "BoxFlip",
    "BoxJitter",
    "BoxTargets",
    "BoxTransform",
    "BoxZoom",
    "box_augment_help",
    "parse_box_augment",
]


class BoxTargets(NamedTuple):
    """A batch's objects: boxes B×M×4 (float, pixels), labels B×M (int64, −1 padding, −2
    crowd), masks B×M×H×W (bool) or None."""

    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None = None


class BoxTransform(Transform):
    """Base class: ``t(x, y: BoxTargets, g, info=None)``; subclasses give ``get_params`` (CPU
    draws) and ``apply(x, y, params)`` (tensor ops), and list their arguments in ``_fields``."""

    def __call__(
        self, x: torch.Tensor, y: BoxTargets, g: torch.Generator, info: BatchInfo | None = None
    ) -> tuple[torch.Tensor, BoxTargets]:
        _check(x, y, g, type(self).__name__)
        return self.apply(x, y, self.get_params(tuple(x.shape), g))


def _check(x: Any, y: Any, g: Any, owner: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise StriateError(
            f"{owner}: images must be a float tensor B×C×H×W with values in [0, 1], got "
            f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}"
        )
    if not isinstance(y, BoxTargets):
        raise StriateError(
            f"{owner}: targets must be BoxTargets(boxes B×M×4, labels B×M, masks B×M×H×W or "
            f"None), got {type(y).__name__}; image-only augmentations are in striate.data.augment"
        )
    b, _, h, w = x.shape
    m = y.labels.shape[1] if y.labels.ndim == 2 else -1
    if y.boxes.shape != (b, m, 4) or y.labels.shape != (b, m):
        raise StriateError(
            f"{owner}: {b} images need boxes B×M×4 and labels B×M with B = {b}, got "
            f"{tuple(y.boxes.shape)} and {tuple(y.labels.shape)}"
        )
    if y.masks is not None and (y.masks.shape != (b, m, h, w) or y.masks.dtype != torch.bool):
        raise StriateError(
            f"{owner}: masks must be bool B×M×H×W = {b}×{m}×{h}×{w}, got "
            f"{y.masks.dtype} of shape {tuple(y.masks.shape)}"
        )
    if not isinstance(g, torch.Generator) or g.device.type != "cpu":
        raise StriateError(
            f"{owner}: the random source must be a CPU torch.Generator; use "
            f"torch.Generator().manual_seed(seed)"
        )


def mask_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Tight x1 y1 x2 y2 boxes (x2, y2 exclusive) of ...×H×W bool masks; zeros where empty."""
    h, w = masks.shape[-2:]
    rows, cols = masks.any(-1), masks.any(-2)
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    y1 = torch.where(rows, ar_h, h).amin(-1)
    y2 = torch.where(rows, ar_h + 1, 0).amax(-1)
    x1 = torch.where(cols, ar_w, w).amin(-1)
    x2 = torch.where(cols, ar_w + 1, 0).amax(-1)
    boxes = torch.stack([x1, y1, x2, y2], -1).float()
    return torch.where(rows.any(-1)[..., None], boxes, 0.0)


def repack(y: BoxTargets, keep: torch.Tensor) -> BoxTargets:
    """Drop the objects where `keep` (B×M) is False and move the padding of every row to its
    end, keeping the objects' order; boxes and masks of padding are zero."""
    keep = keep & (y.labels != -1)
    order = (~keep).to(torch.int8).argsort(dim=1, stable=True)
    keep = keep.gather(1, order)
    boxes = y.boxes.gather(1, order[..., None].expand_as(y.boxes)) * keep[..., None]
    labels = torch.where(keep, y.labels.gather(1, order), -1)
    masks = None
    if y.masks is not None:
        b, m, h, w = y.masks.shape
        masks = y.masks[torch.arange(b, device=order.device)[:, None], order]
        masks = masks & keep[:, :, None, None]
    return BoxTargets(boxes, labels, masks)


class BoxFlip(BoxTransform):
    """Mirror each image left-right with probability `p`: x1, x2 → W − x2, W − x1."""

    _fields = ("p",)

    def __init__(self, p: float = 0.5) -> None:
        self.p = probability("BoxFlip", "p", p)

    def get_params(self, shape, g):
        return {"flip": torch.rand(shape[0], generator=g) < self.p}

    def apply(self, x, y, params):
        w = x.shape[-1]
        flip = params["flip"].to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x1, y1, x2, y2 = y.boxes.unbind(-1)
        mirrored = torch.stack([w - x2, y1, w - x1, y2], -1)
        pad = (y.labels == -1)[..., None]
        boxes = torch.where(flip[:, None, None] & ~pad, mirrored, y.boxes)
        masks = y.masks
        if masks is not None:
            masks = torch.where(flip[:, None, None, None], masks.flip(-1), masks)
        return x, BoxTargets(boxes, y.labels, masks)


class BoxZoom(BoxTransform):
    """Zoom each image by a factor s uniform in `scale` = (min, max) around a random place: an
    input point p goes to s·p + t, with t uniform in [0, W(1 − s)] (and likewise in y), so a
    zoom-in (s > 1) shows a crop lying inside the image and a zoom-out (s < 1) the whole image,
    smaller, somewhere on a `fill` border. Bilinear sampling (``grid_sample``,
    ``align_corners=False``); masks are resampled the same way and kept where ≥ 0.5.

    Boxes move as the pixels (s·box + t) and are clipped to the image; an object keeps its place
    if at least `min_visible` of its moved box lies inside (else it is dropped). With masks, a kept
    object's box is its resampled mask's tight box, and an object whose mask vanished is dropped.
    """

    _fields = ("scale", "min_visible", "fill")

    def __init__(
        self,
        scale: tuple[float, float] = (0.5, 1.5),
        min_visible: float = 0.5,
        fill: float = 0.0,
    ) -> None:
        if not (
            isinstance(scale, (tuple, list))
            and len(scale) == 2
            and all(is_number(s) for s in scale)
            and 0 < scale[0] <= scale[1]
        ):
            raise fail("BoxZoom", "scale", "a (min, max) pair with 0 < min <= max", scale)
        self.scale = (float(scale[0]), float(scale[1]))
        self.min_visible = probability("BoxZoom", "min_visible", min_visible)
        self.fill = number("BoxZoom", "fill", fill)

    def get_params(self, shape, g):
        n, _, h, w = shape
        lo, hi = self.scale
        s = lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64)
        u = torch.rand(n, 2, generator=g, dtype=torch.float64)
        size = torch.tensor([w, h], dtype=torch.float64)
        return {"scale": s, "shift": u * size * (1 - s[:, None])}  # shift: (tx, ty) pixels

    def apply(self, x, y, params):
        n, c, h, w = x.shape
        s, t = params["scale"], params["shift"]  # float64 on the CPU (MPS has no float64)
        # Output pixel u (centre at u + 0.5) samples input (u + 0.5 − t) / s; in grid_sample's
        # normalised coordinates (−1..1 across the image) that is v / s + b.
        theta = torch.zeros(n, 2, 3, dtype=torch.float64)
        theta[:, 0, 0] = 1 / s
        theta[:, 1, 1] = 1 / s
        theta[:, 0, 2] = (1 / s - 1) - 2 * t[:, 0] / (w * s)
        theta[:, 1, 2] = (1 / s - 1) - 2 * t[:, 1] / (h * s)
        theta = theta.to(x.dtype).to(x.device)
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        ones = torch.ones(n, 1, h, w, device=x.device, dtype=x.dtype)
        out = F.grid_sample(torch.cat([x, ones], 1), grid, align_corners=False)
        x = out[:, :c] + (1 - out[:, c:]) * self.fill

        s = s.to(y.boxes.dtype).to(y.boxes.device)
        t = t.to(y.boxes.dtype).to(y.boxes.device)
        moved = y.boxes * s[:, None, None] + torch.cat([t, t], 1)[:, None, :]
        size = torch.tensor([w, h, w, h], device=moved.device, dtype=moved.dtype)
        clipped = torch.minimum(moved.clamp(min=0), size)
        area = (moved[..., 2] - moved[..., 0]) * (moved[..., 3] - moved[..., 1])
        inside = (clipped[..., 2] - clipped[..., 0]) * (clipped[..., 3] - clipped[..., 1])
        keep = inside >= self.min_visible * area
        keep &= area > 0
        masks = y.masks
        boxes = clipped
        if masks is not None and masks.shape[1]:
            m = masks.shape[1]
            flat = masks.flatten(0, 1)[:, None].to(x.dtype)
            mgrid = grid.repeat_interleave(m, 0)
            masks = F.grid_sample(flat, mgrid, align_corners=False)[:, 0] >= 0.5
            masks = masks.view(n, m, h, w)
            boxes = mask_boxes(masks)
            keep &= masks.any((-2, -1))
        return x, repack(BoxTargets(boxes, y.labels, masks), keep)


class BoxJitter(BoxTransform):
    """Per-image brightness, contrast and saturation factors, as `ColorJitter`; boxes and masks
    are left as they are."""

    _fields = ("brightness", "contrast", "saturation")

    def __init__(self, brightness: Any = 0.2, contrast: Any = 0.2, saturation: Any = 0) -> None:
        self._jitter = ColorJitter(brightness, contrast, saturation)
        self.brightness = self._jitter.brightness
        self.contrast = self._jitter.contrast
        self.saturation = self._jitter.saturation

    def get_params(self, shape, g):
        return self._jitter.get_params(shape, g)

    def apply(self, x, y, params):
        return self._jitter.apply(x, None, params)[0], y


class BoxCompose(BoxTransform):
    """Apply box transforms in order, threading (x, targets) and the one generator."""

    def __init__(self, transforms: Iterable[Any]) -> None:
        transforms = list(transforms)
        for t in transforms:
            if not isinstance(t, BoxTransform):
                raise ConfigError(
                    f"BoxCompose: every item must be a box transform (BoxFlip, BoxZoom, "
                    f"BoxJitter, …), got {type(t).__name__}"
                )
        self.transforms = transforms

    def __call__(self, x, y, g, info=None):
        _check(x, y, g, "BoxCompose")
        for t in self.transforms:
            x, y = t(x, y, g, info)
        return x, y

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> BoxTransform:
        return self.transforms[i]

    def __repr__(self) -> str:
        return "BoxCompose([" + ", ".join(repr(t) for t in self.transforms) + "])"


# name: (what the value means, default value text, build(value text) -> transform)
def _flip(v: str) -> BoxTransform:
    return BoxFlip(float(v) if v else 0.5)


def _zoom(v: str) -> BoxTransform:
    lo, _, hi = (v or "0.5-1.5").partition("-")
    return BoxZoom((float(lo), float(hi or lo)))


def _jitter(v: str) -> BoxTransform:
    k = float(v) if v else 0.2
    return BoxJitter(k, k, k)


_ITEMS = {
    "flip": ("mirror left-right with probability P (not for digits)", "P", "0.5", _flip),
    "zoom": ("zoom by a factor in LO-HI at a random place", "LO-HI", "0.5-1.5", _zoom),
    "jitter": ("brightness, contrast and saturation by up to 1±K", "K", "0.2", _jitter),
}


def box_augment_help() -> str:
    """The items of a spec with what their value means, for --help and error messages."""
    return "; ".join(
        f"{name}[:{value}]: {what} ({value}={default})"
        for name, (what, value, default, _) in _ITEMS.items()
    )


def parse_box_augment(spec: str) -> BoxTransform | None:
    """The transform a spec such as "zoom:0.5-1.5,jitter:0.2" describes; None for "none" or ""."""
    spec = spec.strip().lower()
    if spec in ("", "none"):
        return None
    transforms = []
    for item in spec.split(","):
        name, _, value = item.strip().partition(":")
        name = "zoom" if name == "scale" else name  # the name the issue used
        if name not in _ITEMS:
            raise ConfigError(
                f"unknown box augmentation {name!r} in {spec!r}; use none or a comma-separated "
                f"list of {', '.join(_ITEMS)} (each optionally with :value)"
                f"{did_you_mean(name, _ITEMS)}"
            )
        try:
            transforms.append(_ITEMS[name][3](value.strip()))
        except StriateError as e:
            raise ConfigError(f"box augmentation {item!r}: {e}") from e
        except ValueError as e:
            raise ConfigError(
                f"box augmentation {item!r}: {value!r} is not {_ITEMS[name][1]} (numbers)"
            ) from e
    return transforms[0] if len(transforms) == 1 else BoxCompose(transforms)
