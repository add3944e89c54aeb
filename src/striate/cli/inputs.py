"""What the commands that look at images share: a model from a run folder or pretrained weights,
and image files read with one clear line for each that cannot be."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np

    from striate.models.io import ImageClassifier

PRETRAINED = typer.Option(
    "--pretrained",
    metavar="NAME",
    help="Use a network with pretrained weights (efficientnet_lite0: ImageNet) instead of a run; "
    "then every path is an image.",
)


def split_model_and_images(
    paths: list[Path], pretrained: str | None, command: str
) -> tuple[Path | None, list[Path]]:
    """RUN IMAGE... or, with --pretrained, IMAGE...: the run (None) and the images."""
    from striate.errors import ConfigError

    run, images = (None, paths) if pretrained else (paths[0] if paths else None, paths[1:])
    if not images:
        raise ConfigError(
            f"{command}: give a run folder and image files (striate {command} RUN IMAGE...), "
            f"or --pretrained NAME and image files"
        )
    return run, images


def load_classifier(run: Path | None, pretrained: str | None, device: str) -> ImageClassifier:
    """The run's model, or the named network with its pretrained weights."""
    from striate.device import resolve_device
    from striate.models.io import load_model
    from striate.models.io import pretrained as load_pretrained

    if pretrained:
        return load_pretrained(pretrained, device=resolve_device(device))
    return load_model(run, device=resolve_device(device))


def read_images(paths: list[Path]) -> list[np.ndarray]:
    """Each file decoded to uint8 H×W×C; a missing or unreadable one is a DataError naming it."""
    from striate.data.folder import decode_image
    from striate.errors import DataError

    arrays = []
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}") from e
        try:
            arrays.append(decode_image(raw, None))
        except DataError as e:
            raise DataError(f"{path} is not a readable image ({e})") from e
    return arrays
