"""The distorted MNIST variants by name (Jaderberg et al. 2015, Table 1) and an ImageSet of one."""

from __future__ import annotations

from collections.abc import Callable

import torch

from striate.checks import did_you_mean
from striate.data.imageset import ImageSet
from striate.errors import ConfigError
from striate.spatial.cluttered import cluttered
from striate.spatial.distorted import elastic, projective, rotated, rotated_translated_scaled

__all__ = ["VARIANTS", "distorted_set", "variant_name"]

Generator = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]

VARIANTS: dict[str, tuple[Generator, str]] = {
    "R": (rotated, "rotated by U(-90°, 90°), 28×28"),
    "RTS": (rotated_translated_scaled, "rotated U(±45°), scaled U(0.7, 1.2), placed in 42×42"),
    "P": (projective, "projective: scaled U(0.75, 1), corners moved by N(0, 5²) px, 28×28"),
    "E": (elastic, "elastic (Simard et al. 2003, α 34, σ 4), 28×28"),
    "cluttered": (cluttered, "translated in 60×60 with six 6×6 distractor crops"),
}
_ALIASES = {name.lower(): name for name in VARIANTS} | {"tc": "cluttered"}


def variant_name(name: str) -> str:
    """The variant's name as `VARIANTS` spells it (any case; "TC" for cluttered), or a
    ConfigError listing them."""
    key = _ALIASES.get(name.lower()) if isinstance(name, str) else None
    if key is None:
        raise ConfigError(
            f"unknown distorted MNIST variant {name!r}: choose one of "
            f"{', '.join(VARIANTS)}{did_you_mean(name, VARIANTS)}"
        )
    return key


def distorted_set(ds: ImageSet, variant: str, seed: int = 0) -> ImageSet:
    """The images of `ds` distorted as `variant` (its generator seeded with `seed`), same
    labels and classes."""
    name = variant_name(variant)
    images, _ = VARIANTS[name][0](ds.images, seed=seed)
    return ImageSet(
        images, ds.labels.clone(), ds.classes, f"{name} MNIST, seed {seed} ({ds.source})"
    )
