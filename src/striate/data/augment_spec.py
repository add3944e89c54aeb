"""Augmentation from a short text spec, as `striate train --augment` takes it.

    "flip,crop:4"      RandomHorizontalFlip then RandomCrop with 4 pixels of padding
    "crop:2,progressive:3:0.75"
                       RandomCrop, then the first 3 epochs on random crops of 3/4 the side
    "auto"             flip + crop (padding size/8) for colour images; nothing for grey ones,
                       whose usual subjects (digits, letters) change meaning when mirrored
    "none"             no augmentation

The items are the names of `AUGMENTATIONS`, each optionally with ``:value`` (`augment_help` lists
them with what the value means; ``progressive`` takes a second one); mixup/cutmix come last
(they mix labels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from striate.checks import did_you_mean
from striate.data.augment import (
    AlternatingFlip,
    ColorJitter,
    Compose,
    CutMix,
    Cutout,
    Mixup,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScaleCrop,
    RandomTranslate,
    Transform,
)
from striate.data.color_pca import PCALighting
from striate.data.progressive import ProgressiveResize
from striate.errors import ConfigError, StriateError
from striate.registry import Registry

__all__ = ["AUGMENTATIONS", "augment_help", "check_augment", "parse_augment", "resolve_auto"]

# name -> build(value, h, w, num_classes, *more values) -> Transform; meta: `value` (what :value
# means, "A:B" for two), `default` (the value without one: a number, a function of the image's
# (h, w), or None) and `values` (how many it takes, 1 unless said)
AUGMENTATIONS: Registry[Callable[..., Transform]] = Registry("augmentation")


def _eighth(h: int, w: int) -> int:
    return max(1, min(h, w) // 8)


def _quarter(h: int, w: int) -> int:
    return max(1, min(h, w) // 4)


@AUGMENTATIONS.register("flip", "mirror left-right with probability p", value="p", default=0.5)
def _flip(p: float, h: int, w: int, num_classes: int) -> Transform:
    return RandomHorizontalFlip(p)


@AUGMENTATIONS.register(
    "altflip", "mirror a fixed half of the images in even epochs, the other half in odd ones"
)
def _altflip(arg: float | None, h: int, w: int, num_classes: int) -> Transform:
    if arg is not None:
        raise StriateError("altflip takes no value")
    return AlternatingFlip()


@AUGMENTATIONS.register(
    "crop", "reflect-pad by N pixels and crop back at random", value="N", default=_eighth
)
def _crop(pad: float, h: int, w: int, num_classes: int) -> Transform:
    return RandomCrop((h, w), padding=int(pad), padding_mode="reflect")


@AUGMENTATIONS.register(
    "translate", "shift by up to N pixels, zero fill", value="N", default=_eighth
)
def _translate(m: float, h: int, w: int, num_classes: int) -> Transform:
    return RandomTranslate(int(m))


@AUGMENTATIONS.register("cutout", "zero an N×N square", value="N", default=_quarter)
def _cutout(size: float, h: int, w: int, num_classes: int) -> Transform:
    return Cutout(int(size))


@AUGMENTATIONS.register(
    "affine",
    "rotate by up to D degrees, shift by 10%, scale by 0.9-1.1",
    value="D",
    default=10.0,
)
def _affine(deg: float, h: int, w: int, num_classes: int) -> Transform:
    return RandomAffine(degrees=deg, translate=(0.1, 0.1), scale=(0.9, 1.1))


@AUGMENTATIONS.register(
    "jitter", "brightness, contrast and saturation by up to a factor 1±K", value="K", default=0.2
)
def _jitter(k: float, h: int, w: int, num_classes: int) -> Transform:
    return ColorJitter(brightness=k, contrast=k, saturation=k)


@AUGMENTATIONS.register(
    "pca",
    "AlexNet's fancy PCA colour offsets, fitted on the training images",
    value="S",
    default=0.1,
)
def _pca(std: float, h: int, w: int, num_classes: int) -> Transform:
    return PCALighting(std)


@AUGMENTATIONS.register(
    "scale",
    "ResNet's scale augmentation: short side resized to a random L in [8/7, 8/7·F]×size, "
    "random crop back to the size ([256, 480] for 224 crops)",
    value="F",
    default=1.875,
)
def _scale(f: float, h: int, w: int, num_classes: int) -> Transform:
    low = max(min(h, w) * 256 / 224, max(h, w))  # the crop must fit
    return RandomScaleCrop((h, w), scale=(low, max(low, min(h, w) * 256 / 224 * f)))


@AUGMENTATIONS.register(
    "progressive",
    "the first E epochs on random crops F times the side (progressive resizing), to save time",
    value="E:F",
    default=None,
    values=2,
)
def _progressive(
    epochs: float | None, h: int, w: int, num_classes: int, scale: float = 0.75
) -> Transform:
    if epochs is None or not float(epochs).is_integer():
        raise StriateError(
            f"progressive needs E, a whole number of epochs (progressive:E or progressive:E:F, "
            f"F=0.75), got {'nothing' if epochs is None else f'{epochs:g}'}"
        )
    return ProgressiveResize(int(epochs), scale)


@AUGMENTATIONS.register(
    "mixup", "mix pairs of images and their labels, Beta(A, A) weights", value="A", default=0.2
)
def _mixup(a: float, h: int, w: int, num_classes: int) -> Transform:
    return Mixup(a, num_classes=num_classes)


@AUGMENTATIONS.register(
    "cutmix", "paste a box of another image, labels by area, Beta(A, A)", value="A", default=1.0
)
def _cutmix(a: float, h: int, w: int, num_classes: int) -> Transform:
    return CutMix(a, num_classes=num_classes)


def augment_help() -> str:
    """The items of a spec with what their value means, for --help and error messages."""
    parts = []
    for e in AUGMENTATIONS.entries():
        value, default = e.meta.get("value"), e.meta.get("default")
        if callable(default):
            default = {_eighth: "size/8", _quarter: "size/4"}[default]
        item = f"{e.name}[:{value}]" if value else e.name
        shown = f" ({value}={default})" if value and default is not None else ""
        parts.append(f"{item}: {e.summary}{shown}")
    return "; ".join(parts)


def resolve_auto(spec: str, channels: int) -> str:
    """The spec with "auto" replaced by what it means for images with `channels` channels."""
    spec = spec.strip().lower()
    if spec == "auto":
        return "flip,crop" if channels == 3 else "none"
    return spec


def check_augment(spec: str) -> None:
    """Refuse a spec that no images would accept (an unknown item, a value that is not a number or
    out of range, mixup not last) before any data is loaded: it is built for images larger than
    any value can reach, so what depends on the images' size is left to `parse_augment`."""
    if not isinstance(spec, str):
        raise ConfigError(f"augment must be a string, got {spec!r}")
    parse_augment(spec, (3, _ANY_SIZE, _ANY_SIZE), 2)


_ANY_SIZE = 1 << 16


def parse_augment(spec: str, shape: tuple[int, int, int], num_classes: int) -> Transform | None:
    """The transform a spec describes for images of `shape` (C, H, W); None for no augmentation."""
    c, h, w = shape
    spec = resolve_auto(spec, c)
    if spec in ("", "none"):
        return None
    transforms = []
    for item in spec.split(","):
        name, _, arg = item.strip().partition(":")
        if name not in AUGMENTATIONS:
            raise ConfigError(
                f"unknown augmentation {name!r} in {spec!r}; use none, auto or a comma-separated "
                f"list of {', '.join(AUGMENTATIONS)} (each optionally with :value)"
                f"{did_you_mean(name, AUGMENTATIONS)}"
            )
        entry = AUGMENTATIONS.entry(name)
        default: Any = entry.meta.get("default")
        args = arg.split(":") if arg else []
        if len(args) > entry.meta.get("values", 1):
            raise ConfigError(
                f"augmentation {item!r}: {name} takes at most "
                f"{'one value' if entry.meta.get('values', 1) == 1 else 'two values'}, got "
                f"{len(args)}"
            )
        try:
            values = [float(a) for a in args]
        except ValueError as e:
            raise ConfigError(f"augmentation {item!r}: {arg!r} is not a number") from e
        if not values:
            values = [default(h, w) if callable(default) else default]
        try:
            transforms.append(entry.obj(*values[:1], h, w, num_classes, *values[1:]))
        except StriateError as e:
            raise ConfigError(f"augmentation {item!r}: {e}") from e
    mixing = [i for i, t in enumerate(transforms) if isinstance(t, (Mixup, CutMix))]
    if mixing and (len(mixing) > 1 or mixing[0] != len(transforms) - 1):
        raise ConfigError("mixup or cutmix must be the last augmentation, and only one of them")
    return transforms[0] if len(transforms) == 1 else Compose(transforms)
