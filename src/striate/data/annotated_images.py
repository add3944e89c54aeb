"""What the annotation formats (COCO, VOC) share: reading the image files an annotation file
lists, checked against the sizes it states, and refusing to write over existing files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from striate.data.folder import MAX_MEMBER_BYTES, UnreadableImage, decode_image
from striate.errors import DataError
from striate.outputs import OutputExists
from striate.progress import progress_bar

MAX_IMAGE_BYTES = MAX_MEMBER_BYTES


def refuse_existing(owner: str, paths: list[Path]) -> None:
    """An OutputExists naming the first of `paths` that exists (and how many more do)."""
    existing = [p for p in paths if p.exists()]
    if existing:
        more = f" (and {len(existing) - 1} more of the files to write)" if len(existing) > 1 else ""
        raise OutputExists(
            f"{owner}: {existing[0]} exists{more}: pass overwrite=True to replace, "
            f"or write elsewhere"
        )


def read_images(
    path: Path | list[Path],
    folder: Path,
    files: list[str],
    heights: np.ndarray,
    widths: np.ndarray,
    target: tuple[int, int] | None,
) -> torch.Tensor:
    """Decode `folder/files` (uint8 N×C×H×W, resized to `target`), each checked to be the
    width × height its annotation (`path`, or `path[k]` per image) says; grey images among colour
    ones become RGB."""
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        first = files.index(missing[0])
        src = path[first] if isinstance(path, list) else path
        raise DataError(
            f"{src}: {len(missing)} of {len(files)} image files are missing from {folder}, "
            f"e.g. {missing[0]!r}: restore them, or point to the folder that holds them"
        )
    arrays = []
    with progress_bar("reading images", len(files), "images", enabled=len(files) >= 500) as adv:
        for k, name in enumerate(files):  # one file each: reading is per file
            file = folder / name
            n = file.stat().st_size
            if n > MAX_IMAGE_BYTES:
                raise DataError(f"{file}: {n:,} bytes is too large for an image")
            data = file.read_bytes()
            try:
                with Image.open(io.BytesIO(data)) as probe:
                    got = probe.size
                if got != (int(widths[k]), int(heights[k])):
                    src = path[k] if isinstance(path, list) else path
                    raise DataError(
                        f"{file}: the image is {got[0]}×{got[1]} but {src.name} says it is "
                        f"{int(widths[k])}×{int(heights[k])} (width × height): its boxes and "
                        f"masks would be misplaced; fix the file's width and height"
                    )
                arrays.append(decode_image(data, target))
            except UnreadableImage as e:
                raise DataError(f"{file}: unreadable image ({e})") from None
            except DataError:
                raise
            except Exception as e:  # noqa: BLE001 - PIL's probe raises many kinds
                raise DataError(f"{file}: unreadable image ({type(e).__name__}: {e})") from None
            adv(1)
    if not arrays:
        h, w = target if target is not None else (1, 1)
        return torch.zeros(0, 3, h, w, dtype=torch.uint8)
    channels = {a.shape[2] for a in arrays}
    if len(channels) > 1:  # greyscale among colour images: grey → RGB
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
