"""Test data for painterly harmonization, made by a script: an object cut from a photograph along
its own outline and pasted into a painting, with the mask of the paste.

    examples = harmonization_examples("harmonization/")   # NAME/painting.png, pasted.png, mask.png
    python -m striate.synthesis.examples OUT_DIR [--size PX]

The masks come from colour thresholds and morphology on the photographs that ship with
scikit-image and scikit-learn (the rocket against the evening sky, the red cup and saucer on the
wooden table, the orange dahlia against the dark leaves): largest connected component, holes
filled, so each follows the object, not a rectangle. Everything is deterministic.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from striate.checks import integer
from striate.errors import DataError
from striate.synthesis.images import photograph, read_image, resize_to, save_image

__all__ = ["EXAMPLES", "Example", "harmonization_examples", "object_mask"]

OWNER = "harmonization_examples"


@dataclass(frozen=True, eq=False)  # tensors: compare fields with torch.equal
class Example:
    """A painting, the painting with an object pasted in, and the paste's mask (1×1×H×W, 0 or 1);
    the object came from `photograph`'s pixels `crop` (top, left, height, width), resized to
    `box` (top, left, height, width) on the painting."""

    name: str
    painting: torch.Tensor
    pasted: torch.Tensor
    mask: torch.Tensor
    photograph: str
    crop: tuple[int, int, int, int]
    box: tuple[int, int, int, int]


def _hsv(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2hsv

    return rgb2hsv(rgb)


def _rocket(rgb: np.ndarray) -> np.ndarray:
    """Not the blue of the evening sky (blue well above red), inside the launch pad's column;
    the thin bars of the service tower opened away."""
    unlike_sky = rgb[..., 2] - rgb[..., 0] < 25 / 255
    column = np.zeros_like(unlike_sky)
    column[100:360, 298:342] = True  # above the lit pad, between the towers
    return ndimage.binary_opening(unlike_sky & column, _disk(4))


def _coffee(rgb: np.ndarray) -> np.ndarray:
    """The saturated red of the cup and saucer (the wood is orange and less saturated) and the
    pale crema and rim inside it."""
    h, s, v = np.moveaxis(_hsv(rgb), 2, 0)
    red = (s > 0.85) & ((h < 0.045) | (h > 0.95))
    pale = (s < 0.3) & (v > 0.8)
    return ndimage.binary_opening(ndimage.binary_closing(red | pale, _disk(3)), _disk(3))


def _dahlia(rgb: np.ndarray) -> np.ndarray:
    """Orange petals against blue-green leaves."""
    h, s, v = np.moveaxis(_hsv(rgb), 2, 0)
    orange = (h < 0.15) & (s > 0.25) & (v > 0.45)
    return ndimage.binary_opening(orange, _disk(3))


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius


MASKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "rocket": _rocket,
    "coffee": _coffee,
    "flower": _dahlia,
}

# name, photograph, painting, the object's height as a fraction of the painting's, its centre
# (fraction down, fraction across)
EXAMPLES = (
    ("rocket-starry-night", "rocket", "starry_night.jpg", 0.6, (0.45, 0.62)),
    ("dahlia-starry-night", "flower", "starry_night.jpg", 0.3, (0.62, 0.4)),
    ("coffee-scream", "coffee", "scream.jpg", 0.22, (0.8, 0.68)),
)


def object_mask(name: str) -> np.ndarray:
    """The object of photograph `name` (one of MASKS) as an H×W bool array: the largest
    connected component of its colour mask, holes filled."""
    return _object_mask(name).copy()


@functools.cache
def _object_mask(name: str) -> np.ndarray:
    rgb = photograph(name)[0].permute(1, 2, 0).double().numpy()
    rough = MASKS[name](rgb)
    labels, n = ndimage.label(rough)
    if n == 0:
        raise DataError(f"no object found in photograph {name!r}")
    largest = np.bincount(labels.ravel())[1:].argmax() + 1
    return ndimage.binary_fill_holes(labels == largest)


def default_images_dir() -> Path:
    """``images`` under $STRIATE_SHARED_DATA, or ``../shared/data/images``."""
    root = Path(os.environ.get("STRIATE_SHARED_DATA", Path("..") / "shared" / "data"))
    return root / "images"


def harmonization_examples(
    out_dir: str | os.PathLike | None = None,
    size: int = 384,
    images_dir: str | os.PathLike | None = None,
) -> list[Example]:
    """The examples of `EXAMPLES` with paintings brought to longer side `size`; written as
    out_dir/NAME/painting.png, pasted.png and mask.png when `out_dir` is given (replacing
    earlier ones)."""
    size = integer(OWNER, "size", size, low=64, hint="smaller pastes lose their shape")
    images = Path(images_dir) if images_dir is not None else default_images_dir()
    examples = []
    for name, photo, painting_file, height, centre in EXAMPLES:
        path = images / painting_file
        if not path.is_file():
            raise DataError(
                f"{OWNER}: no painting {path}; pass images_dir or set STRIATE_SHARED_DATA "
                f"to the folder that holds images/{painting_file}"
            )
        examples.append(_paste(name, photo, read_image(path, size), height, centre))
    if out_dir is not None:
        for e in examples:
            folder = Path(out_dir) / e.name
            save_image(e.painting, folder / "painting.png")
            save_image(e.pasted, folder / "pasted.png")
            save_image(e.mask.expand(-1, 3, -1, -1), folder / "mask.png")
    return examples


def _paste(
    name: str, photo: str, painting: torch.Tensor, height: float, centre: tuple[float, float]
) -> Example:
    found = object_mask(photo)
    rows, cols = np.nonzero(found.any(1))[0], np.nonzero(found.any(0))[0]
    crop = (int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    y, x, ch, cw = crop
    big_h, big_w = painting.shape[-2:]
    h = min(big_h, max(1, round(height * big_h)))
    w = min(big_w, max(1, round(h * cw / ch)))
    top = min(max(0, round(centre[0] * big_h - h / 2)), big_h - h)
    left = min(max(0, round(centre[1] * big_w - w / 2)), big_w - w)
    piece = resize_to(photograph(photo)[..., y : y + ch, x : x + cw], (h, w))
    outline = torch.from_numpy(found[y : y + ch, x : x + cw]).float()[None, None]
    inside = resize_to(outline, (h, w)) > 0.5
    if not bool(inside.any()):
        raise DataError(f"{OWNER}: the {photo} vanished at this size; use a larger size")
    mask = torch.zeros(1, 1, big_h, big_w)
    mask[..., top : top + h, left : left + w] = inside.float()
    pasted = painting.clone()
    region = pasted[..., top : top + h, left : left + w]
    pasted[..., top : top + h, left : left + w] = torch.where(inside, piece, region)
    return Example(name, painting, pasted, mask, photo, crop, (top, left, h, w))


def main(argv: list[str] | None = None) -> int:
    """python -m striate.synthesis.examples OUT_DIR [--size PX]: write the examples."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m striate.synthesis.examples", description=main.__doc__
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", type=int, default=384, help="longer side of the paintings")
    parser.add_argument("--images-dir", type=Path, default=None, help="folder of the paintings")
    args = parser.parse_args(argv)
    from striate.errors import StriateError

    try:
        examples = harmonization_examples(args.out_dir, args.size, args.images_dir)
    except StriateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for e in examples:
        print(args.out_dir / e.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
