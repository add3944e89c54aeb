"""Augmentation from a short text spec, as `striate train --augment` takes it.

    "flip,crop:4"      RandomHorizontalFlip then RandomCrop with 4 pixels of padding
    "auto"             flip + crop (padding size/8) for colour images; nothing for grey ones,
                       whose usual subjects (digits, letters) change meaning when mirrored
    "none"             no augmentation

Items: flip[:p], altflip (airbench's alternating flip), crop[:padding], translate[:max_shift],
cutout[:size], affine[:degrees], jitter[:strength], mixup[:alpha], cutmix[:alpha]; mixup/cutmix
come last (they mix labels).
"""

from __future__ import annotations

from collections.abc import Callable

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
    RandomTranslate,
    Transform,
)
from striate.errors import ConfigError, StriateError


def _alternating_flip(arg: float | None) -> AlternatingFlip:
    if arg is not None:
        raise StriateError("altflip takes no value")
    return AlternatingFlip()


def _builders(h: int, w: int, num_classes: int) -> dict[str, tuple[Callable, float | None]]:
    s = min(h, w)
    return {
        "flip": (lambda p: RandomHorizontalFlip(p), 0.5),
        "altflip": (_alternating_flip, None),
        "crop": (
            lambda pad: RandomCrop((h, w), padding=int(pad), padding_mode="reflect"),
            max(1, s // 8),
        ),
        "translate": (lambda m: RandomTranslate(int(m)), max(1, s // 8)),
        "cutout": (lambda size: Cutout(int(size)), max(1, s // 4)),
        "affine": (
            lambda deg: RandomAffine(degrees=deg, translate=(0.1, 0.1), scale=(0.9, 1.1)),
            10.0,
        ),
        "jitter": (lambda k: ColorJitter(brightness=k, contrast=k, saturation=k), 0.2),
        "mixup": (lambda a: Mixup(a, num_classes=num_classes), 0.2),
        "cutmix": (lambda a: CutMix(a, num_classes=num_classes), 1.0),
    }


def resolve_auto(spec: str, channels: int) -> str:
    """The spec with "auto" replaced by what it means for images with `channels` channels."""
    spec = spec.strip().lower()
    if spec == "auto":
        return "flip,crop" if channels == 3 else "none"
    return spec


def parse_augment(spec: str, shape: tuple[int, int, int], num_classes: int) -> Transform | None:
    """The transform a spec describes for images of `shape` (C, H, W); None for no augmentation."""
    c, h, w = shape
    spec = resolve_auto(spec, c)
    if spec in ("", "none"):
        return None
    builders = _builders(h, w, num_classes)
    transforms = []
    for item in spec.split(","):
        name, _, arg = item.strip().partition(":")
        if name not in builders:
            raise ConfigError(
                f"unknown augmentation {name!r} in {spec!r}; use none, auto or a comma-separated "
                f"list of {', '.join(builders)} (each optionally with :value)"
            )
        build, default = builders[name]
        try:
            value = float(arg) if arg else default
        except ValueError as e:
            raise ConfigError(f"augmentation {item!r}: {arg!r} is not a number") from e
        try:
            transforms.append(build(value))
        except StriateError as e:
            raise ConfigError(f"augmentation {item!r}: {e}") from e
    mixing = [i for i, t in enumerate(transforms) if isinstance(t, (Mixup, CutMix))]
    if mixing and (len(mixing) > 1 or mixing[0] != len(transforms) - 1):
        raise ConfigError("mixup or cutmix must be the last augmentation, and only one of them")
    return transforms[0] if len(transforms) == 1 else Compose(transforms)


# the augmentations that show a model each test-time view during training
_SEEN_BY = {"flip": ("flip", "altflip"), "translate": ("crop", "translate", "affine")}


def untrained_views(
    tta: bool | str | None, augment: str | None, shape: tuple[int, int, int]
) -> list[str]:
    """Warnings for the test-time augmentation views of `tta` that the training augmentation
    `augment` never showed the model (mirror images of digits, say, are other symbols; such a view
    usually lowers accuracy). `augment` None: unknown, nothing to say."""
    from striate.evaluate.tta import parse_tta

    if augment is None or len(parse_tta(tta)) == 1:
        return []
    trained = {
        item.strip().partition(":")[0] for item in resolve_auto(augment, shape[0]).split(",")
    }
    asked = {part.strip().partition(":")[0] for part in ("flip" if tta is True else tta).split(",")}
    shown = {"flip": "mirrored", "translate": "shifted"}
    return [
        f"--tta {view}: the model was not trained with {shown[view]} images (augment "
        f"{augment!r}), so this view may lower its accuracy"
        for view in ("flip", "translate")
        if view in asked and not trained & set(_SEEN_BY[view])
    ]
