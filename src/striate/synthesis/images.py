"""Images in and out of the synthesis methods: files ↔ 1×3×H×W float tensors in 0–1.

`read_image` decodes a file (greyscale repeated to RGB, alpha dropped) and can bring its longer
side to `size`; `save_image` writes a PNG or JPEG atomically and refuses to replace a file unless
asked. `photograph(name)` gives the photographs that ship inside scikit-image and scikit-learn
(astronaut, chelsea, coffee, rocket, brick, grass, gravel; china, flower) as tensors.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from striate._atomic import atomic_path
from striate.checks import did_you_mean, positive_int
from striate.data.folder import decode_image
from striate.errors import DataError, InputError, StriateError

__all__ = [
    "PHOTOGRAPHS",
    "photograph",
    "read_image",
    "resize_to",
    "save_image",
    "to_tensor",
]

PHOTOGRAPHS = (
    "astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "china", "flower"
)  # fmt: skip


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 H×W (grey), H×W×1, H×W×3 or H×W×4 → 1×3×H×W float32 in 0–1."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise InputError(f"an image must be H×W, H×W×1, H×W×3 or H×W×4, got shape {a.shape}")
    a = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a[..., :3]
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    t = torch.from_numpy(np.array(a)).permute(2, 0, 1).float() / scale
    return t.unsqueeze(0).clamp_(0, 1)


def resize_to(image: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """`image` (N×C×H×W) with its longer side `size` (aspect kept), or exactly (H, W)."""
    if isinstance(size, int):
        h, w = image.shape[-2:]
        scale = size / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.clamp(0, 1)


def read_image(path: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """The image file at `path` as 1×3×H×W in 0–1, its longer side brought to `size` if given."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        image = to_tensor(decode_image(raw, None))
    except StriateError as e:
        raise DataError(f"{path} is not a readable image ({e})") from e
    if size is not None:
        image = resize_to(image, positive_int("read_image", "size", size))
    return image


def save_image(image: torch.Tensor, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write `image` (1×3×H×W or 3×H×W, 0–1) to `path` (.png, .jpg) atomically; with
    `overwrite` False an existing file is an error."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise InputError(f"{path}: save images as .png or .jpg")
    if path.exists() and not overwrite:
        raise StriateError(f"{path} exists; choose another name or pass --overwrite")
    t = image.detach().float().cpu()
    t = t[0] if t.dim() == 4 else t
    array = (t.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG" if path.suffix.lower() == ".png" else "JPEG")
    return path


def photograph(name: str) -> torch.Tensor:
    """A photograph shipped in scikit-image / scikit-learn (`PHOTOGRAPHS`) as 1×3×H×W in 0–1."""
    if name not in PHOTOGRAPHS:
        raise InputError(
            f"no photograph {name!r}{did_you_mean(name, PHOTOGRAPHS)}; "
            f"choose one of {', '.join(PHOTOGRAPHS)}"
        )
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return to_tensor(load_sample_image(f"{name}.jpg"))
    import skimage.data

    return to_tensor(getattr(skimage.data, name)())
