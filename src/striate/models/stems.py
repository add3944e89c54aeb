"""The ``stem`` option of the ResNet, DenseNet and GoogLeNet families, and their size checks.

``stem="imagenet"`` keeps the published first layers (a 7×7/2 convolution and a 3×3/2 max-pool,
for 224×224 images); ``stem="cifar"`` puts a 3×3/1 convolution in their place and no max-pool,
for small images such as CIFAR's 32×32. The names of the modules stay those of torchvision (a
dropped pool is an ``nn.Identity``), so its weights still load with the ImageNet stem.
"""

from __future__ import annotations

from striate.errors import ConfigError

__all__ = ["STEMS", "check_min_side", "check_min_size", "check_stem", "stem_stride"]

STEMS = ("imagenet", "cifar")
_STEM_HELP = (
    "'imagenet' (7x7/2 conv + 3x3/2 max-pool, for 224x224 images) or 'cifar' (one 3x3/1 conv, "
    "no max-pool, for small images such as 32x32)"
)


def check_stem(stem: object, owner: str) -> str:
    """``stem`` if it is one of `STEMS`, else a ConfigError listing them."""
    if not isinstance(stem, str) or stem not in STEMS:
        raise ConfigError(f"{owner}: unknown stem {stem!r}; choose {_STEM_HELP}")
    return stem


def stem_stride(stem: str) -> int:
    """How much the stem shrinks the image: 4 for "imagenet" (conv/2, pool/2), 1 for "cifar"."""
    return 4 if stem == "imagenet" else 1


def check_min_size(h: int, w: int, minimum: int, owner: str, stem: str | None = None) -> None:
    """A ConfigError if an H×W input is smaller than the net's total stride ``minimum``."""
    if min(h, w) >= minimum:
        return
    if stem == "imagenet":
        hint = (
            "; for small images use stem='cifar' (3x3/1 conv, no max-pool), or resize the images up"
        )
    else:
        hint = "; use larger images (resize or pad them)"
    where = f" with stem={stem!r}" if stem is not None else ""
    raise ConfigError(
        f"{owner}{where} shrinks its input {minimum}-fold, so images must be at least "
        f"{minimum}x{minimum}; got {h}x{w}{hint}"
    )


def check_min_side(
    owner: str,
    h: int,
    w: int,
    stem: str,
    low: int,
    cifar_low: int,
    *,
    detail: str = "",
    otherwise: str = "larger images",
) -> None:
    """A ConfigError if an H×W input is below the side ``low`` that ``stem`` needs (``detail``
    says with what, e.g. " with 4 blocks"); the hint offers the CIFAR stem's ``cifar_low``, or
    with that stem ``otherwise``."""
    if min(h, w) >= low:
        return
    hint = (
        f"use stem='cifar' for small images (it accepts {cifar_low}x{cifar_low} and up)"
        if stem != "cifar"
        else f"use {otherwise}"
    )
    raise ConfigError(
        f"{owner}: a {h}x{w} input is too small for stem={stem!r}{detail}, whose minimum size is "
        f"{low}x{low}; {hint}"
    )
