"""Generated detection scenes: MNIST digits pasted on CIFAR-10 backgrounds, with boxes and masks.

No real detection set can be had on these machines, so `digit_scenes` makes one: each scene is a
background (upscaled to `size`) with 1–4 digits, each scaled to its own size, pasted at a random
place with its intensity as alpha, later digits on top. An object's instance mask is its digit's
pixels with alpha above `threshold` that no later digit's mask covers; its box is that mask's
tight bounding box (x1 y1 x2 y2 in pixels, x2 and y2 exclusive: one pixel at column 3 spans 3..4).
A digit with fewer than `min_pixels` such pixels is not drawn; an object left with fewer visible
pixels than that, or than `min_visible` of its mask, is dropped (it stays in the picture as
clutter).

Colour: a white digit vanishes on a pale sky and a grey one on a grey ship, which makes some
objects invisible rather than hard. Each digit gets a random colour (independent of its class, so
colour says nothing about the label), made dark when the pixels it covers are bright on average
and bright when they are dark: luminance at most 0.35 over a background of mean luminance ≥ 0.5,
at least 0.65 under 0.5, so every digit keeps a contrast of at least 0.15 with what it covers.

Placement: each digit tries `candidates` random positions (fully inside the image) and takes the
first whose ink box is covered by at most `overlap` of any earlier digit's ink box, and covers at
most `overlap` of any earlier one's (intersection over the smaller box); when none fits, the
digit is left out. Train scenes use the train splits of MNIST and CIFAR-10 and test scenes their
test splits, so no digit or background is shared between the splits.

Every scene is drawn at once as tensor ops: digits resized per size (a loop over the ≤ 25
sizes, antialiased), pasted with one gather per slot, composited slot by slot (a loop over the
≤ 4 slots, as later digits cover earlier ones); scenes are processed in chunks only to bound
memory, after all random draws are made, so the chunking never changes the result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from striate.checks import fail, integer, is_int, number, positive_int, probability
from striate.data.box_augment import mask_boxes
from striate.data.detectionset import DetectionSet
from striate.data.imageset import ImageSet
from striate.data.registry import load_dataset
from striate.errors import ConfigError
from striate.progress import progress_bar

__all__ = ["digit_scenes", "scenes_from_sources"]

_OWNER = "digit_scenes"
_CHUNK = 512  # scenes rendered at once (memory: chunk × slots × H × W floats)
_DARK, _BRIGHT = 0.35, 0.65  # a digit's luminance range over bright / dark backgrounds


def _pair(name: str, v: Any, low: int, high: int | None = None) -> tuple[int, int]:
    if (
        isinstance(v, (str, bytes))
        or not isinstance(v, Sequence)
        or len(v) != 2
        or not all(is_int(e) for e in v)
        or not low <= v[0] <= v[1]
        or (high is not None and v[1] > high)
    ):
        top = f" <= {high}" if high is not None else ""
        raise fail(_OWNER, name, f"a (min, max) pair of integers with {low} <= min <= max{top}", v)
    return int(v[0]), int(v[1])


def _luminance(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×H×W: ITU-R 601 luma for RGB, the mean of the channels otherwise."""
    if x.shape[1] == 3:
        return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    return x.mean(1)


def _draw(
    n: int,
    num_digits: int,
    num_backgrounds: int,
    channels: int,
    size: int,
    per_image: tuple[int, int],
    digit_size: tuple[int, int],
    candidates: int,
    g: torch.Generator,
) -> dict[str, torch.Tensor]:
    """Every random choice of n scenes, on the CPU: slots per scene, background and digit
    indices, digit sizes, colours and candidate positions (top-left corners)."""
    k = per_image[1]
    count = torch.randint(per_image[0], per_image[1] + 1, (n,), generator=g)
    if n <= num_backgrounds:
        background = torch.randperm(num_backgrounds, generator=g)[:n]
    else:
        background = torch.randint(0, num_backgrounds, (n,), generator=g)
    if n * k <= num_digits:
        digit = torch.randperm(num_digits, generator=g)[: n * k].view(n, k)
    else:
        digit = torch.randint(0, num_digits, (n, k), generator=g)
    side = torch.randint(digit_size[0], digit_size[1] + 1, (n, k), generator=g)
    colour = torch.rand(n, k, channels, generator=g)
    room = (size - side + 1)[:, :, None, None].double()  # positions 0..size-side
    pos = (torch.rand(n, k, candidates, 2, generator=g, dtype=torch.float64) * room).long()
    return {
        "count": count,
        "background": background,
        "digit": digit,
        "side": side,
        "colour": colour,
        "pos": pos,
    }


def _resized(digits: torch.Tensor, side: torch.Tensor, s_max: int) -> torch.Tensor:
    """Alpha (0–1) of each digit resized to its side (antialiased bilinear), top-left in an
    s_max × s_max frame of zeros. digits: L×h×w float 0–1; side: L ints. A loop over sizes."""
    out = digits.new_zeros(len(digits), s_max, s_max)
    for s in side.unique().tolist():
        at = (side == s).nonzero()[:, 0]
        small = F.interpolate(
            digits[at, None], size=(s, s), mode="bilinear", align_corners=False, antialias=True
        )
        out[at, :s, :s] = small[:, 0].clamp(0, 1)
    return out


def _cover(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over the smaller area of boxes a (...×4) and b (...×4), broadcast; 1 when
    either box is empty and they touch nothing (so an empty box never counts as placed)."""
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    smaller = torch.minimum(area_a, area_b)
    return torch.where(smaller > 0, iw * ih / smaller.clamp(min=1e-9), 0.0)


def _place(
    ink: torch.Tensor, pos: torch.Tensor, use: torch.Tensor, overlap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose each slot's position: the first candidate whose ink box overlaps every earlier
    placed one by at most `overlap`. ink: N×K×4 boxes in the digit's frame; pos: N×K×P×2
    (x, y) candidates. Returns the chosen N×K×2 positions and the N×K placed flags. A loop over
    the K slots: each depends on the ones before."""
    n, k, p, _ = pos.shape
    shift = pos.repeat(1, 1, 1, 2).float()  # (x, y) → (x, y, x, y)
    cand = ink[:, :, None, :] + shift  # N×K×P×4
    placed = torch.zeros(n, k, dtype=torch.bool)
    chosen = torch.zeros(n, k, 2, dtype=torch.long)
    boxes = torch.zeros(n, k, 4)
    for j in range(k):
        ok = torch.ones(n, p, dtype=torch.bool)
        if j:
            cov = _cover(cand[:, j, :, None, :], boxes[:, None, :j, :])  # N×P×j
            ok = ((cov <= overlap) | ~placed[:, None, :j]).all(2)
        first = ok.int().argmax(1)
        placed[:, j] = ok.any(1) & use[:, j]
        chosen[:, j] = pos[torch.arange(n), j, first]
        boxes[:, j] = cand[torch.arange(n), j, first]
    return chosen, placed


def _paste(alpha: torch.Tensor, pos: torch.Tensor, size: int) -> torch.Tensor:
    """L×S×S alphas placed with their top-left corner at pos (L×2, x y) in size×size canvases:
    canvas pixel (r, c) takes alpha[r - y, c - x] inside the frame and 0 outside (one gather)."""
    n, s, _ = alpha.shape
    ar = torch.arange(size)
    rows = ar[None, :] - pos[:, 1:2]  # L×size
    cols = ar[None, :] - pos[:, 0:1]
    inside = ((rows >= 0) & (rows < s))[:, :, None] & ((cols >= 0) & (cols < s))[:, None, :]
    index = rows.clamp(0, s - 1)[:, :, None] * s + cols.clamp(0, s - 1)[:, None, :]
    out = alpha.reshape(n, s * s).gather(1, index.reshape(n, -1)).view(n, size, size)
    return out * inside


def _render(
    digits: torch.Tensor,
    backgrounds: torch.Tensor,
    draws: dict[str, torch.Tensor],
    size: int,
    overlap: float,
    threshold: float,
    min_visible: float,
    min_pixels: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scenes of one chunk: uint8 images n×C×size×size, and the kept objects' image-major
    (scene, slot) index (2×T), visible masks T×size×size and boxes T×4, plus kept flags n×K."""
    side, pos, count = draws["side"], draws["pos"], draws["count"]
    n, k = side.shape
    s_max = int(side.max())
    alpha = _resized(digits[draws["digit"].flatten()], side.flatten(), s_max).view(
        n, k, s_max, s_max
    )
    ink = mask_boxes((alpha > threshold).flatten(0, 1)).view(n, k, 4)
    pixels = (alpha > threshold).sum((2, 3))
    use = (torch.arange(k) < count[:, None]) & (pixels >= min_pixels)
    chosen, placed = _place(ink, pos, use, overlap)
    canvas = _paste(alpha.flatten(0, 1), chosen.flatten(0, 1), size).view(n, k, size, size)
    canvas = canvas * placed[:, :, None, None]
    image = F.interpolate(
        backgrounds, size=(size, size), mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)
    for j in range(k):  # later digits over earlier ones
        a = canvas[:, j, None]
        under = (a[:, 0] * _luminance(image)).sum((1, 2)) / a[:, 0].sum((1, 2)).clamp(min=1e-6)
        c = draws["colour"][:, j]
        colour = torch.where((under >= 0.5)[:, None], _DARK * c, _BRIGHT + (1 - _BRIGHT) * c)
        image = image * (1 - a) + colour[:, :, None, None] * a
    masks = canvas > threshold
    visible = masks.clone()
    covered = torch.zeros_like(masks[:, 0])  # the masks of the slots after j
    for j in range(k - 1, -1, -1):
        visible[:, j] &= ~covered
        covered |= masks[:, j]
    own, seen = masks.sum((2, 3)), visible.sum((2, 3))
    kept = placed & (seen >= max(min_pixels, 1)) & (seen >= min_visible * own)
    where = kept.nonzero().T  # image-major, slots in drawing order
    vis = visible[where[0], where[1]]
    images = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return images, where, vis, mask_boxes(vis), kept


def digit_scenes(
    digits: ImageSet,
    backgrounds: ImageSet,
    n: int,
    *,
    size: int = 64,
    per_image: tuple[int, int] = (1, 4),
    digit_size: tuple[int, int] = (16, 40),
    overlap: float = 0.3,
    threshold: float = 0.5,
    min_visible: float = 0.5,
    min_pixels: int = 10,
    candidates: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> DetectionSet:
    """`n` scenes of `size`×`size` pixels: digits from `digits` (an ImageSet of grey digits,
    e.g. MNIST; their classes become the set's) pasted on `backgrounds` (e.g. CIFAR-10), with
    boxes, labels and instance masks; see the module docstring for how they are drawn.

    per_image: (min, max) digits per scene; digit_size: (min, max) side in pixels of the square a
    28×28 digit is scaled to; overlap: the most that two digits' ink boxes may overlap
    (intersection over the smaller box); threshold: the alpha above which a pixel is the digit's;
    min_visible and min_pixels: the fraction of its mask and the pixels a digit must keep
    visible to stay an object (a digit with fewer than min_pixels is not drawn at all); seed: the
    same seed gives the same scenes.
    """
    if not isinstance(digits, ImageSet) or not isinstance(backgrounds, ImageSet):
        raise ConfigError(
            f"{_OWNER}: digits and backgrounds must be ImageSets (e.g. load_dataset('mnist') "
            f"and a CIFAR-10 split), got {type(digits).__name__} and {type(backgrounds).__name__}"
        )
    n = positive_int(_OWNER, "n", n, hint="the number of scenes")
    size = integer(_OWNER, "size", size, low=8, hint="pixels")
    per_image = _pair("per_image", per_image, 1)
    digit_size = _pair("digit_size", digit_size, 4, size)
    overlap = probability(_OWNER, "overlap", overlap)
    threshold = number(_OWNER, "threshold", threshold, low=0, high=1, high_open=True)
    min_visible = probability(_OWNER, "min_visible", min_visible)
    min_pixels = integer(_OWNER, "min_pixels", min_pixels, low=0)
    candidates = positive_int(_OWNER, "candidates", candidates)
    seed = integer(_OWNER, "seed", seed)
    for name, ds in (("digits", digits), ("backgrounds", backgrounds)):
        if len(ds) == 0:
            raise ConfigError(f"{_OWNER}: {name} is empty; give it at least one image")
    g = torch.Generator().manual_seed(seed)
    channels = backgrounds.shape[0]
    draws = _draw(
        n, len(digits), len(backgrounds), channels, size, per_image, digit_size, candidates, g
    )
    images, masks, boxes, labels, counts = [], [], [], [], []
    with progress_bar("drawing digit scenes", n, "scenes", enabled=progress) as advance:
        for start in range(0, n, _CHUNK):
            part = {key: v[start : start + _CHUNK] for key, v in draws.items()}
            used_digits, inverse = part["digit"].unique(return_inverse=True)
            part["digit"] = inverse
            grey = digits.images[used_digits].float() / 255
            grey = _luminance(grey) if grey.shape[1] > 1 else grey[:, 0]
            bg = backgrounds.images[part["background"]].float() / 255
            im, where, vis, bx, kept = _render(
                grey, bg, part, size, overlap, threshold, min_visible, min_pixels
            )
            images.append(im)
            masks.append(vis)
            boxes.append(bx)
            labels.append(digits.labels[used_digits][inverse[where[0], where[1]]])
            counts.append(kept.sum(1))
            advance(len(im))
    counts_all = torch.cat(counts)
    return DetectionSet(
        torch.cat(images),
        torch.cat(boxes),
        torch.cat(labels).long(),
        torch.cat([counts_all.new_zeros(1), counts_all.cumsum(0)]),
        digits.classes,
        masks=torch.cat(masks),
        source=f"digit scenes (seed {seed}: {digits.source} on {backgrounds.source})",
    )


def _shared(name: str) -> Path | None:
    """`name` under $STRIATE_SHARED_DATA (default ../shared/data) if it is there, else None."""
    path = Path(os.environ.get("STRIATE_SHARED_DATA", Path("..") / "shared" / "data")) / name
    return path if path.exists() else None


def _backgrounds(root: str | os.PathLike | None, split: str, progress: bool) -> ImageSet:
    """CIFAR-10's `split`: from an image folder/zip/npz path (as ../shared/data's JPEG zip), a
    folder holding one, or the root of the official batches (None: the default data folder)."""
    if root is not None:
        path = Path(root)
        if path.is_dir() and (path / "cifar10-jpeg.zip").is_file():
            path = path / "cifar10-jpeg.zip"
        if path.is_file() or (path / split).is_dir():
            return load_dataset(path, split, progress=progress)
    return load_dataset("cifar10", split, root=root, progress=progress)


def scenes_from_sources(
    n: int,
    split: str = "train",
    *,
    root_mnist: str | os.PathLike | None = None,
    root_cifar: str | os.PathLike | None = None,
    progress: bool = False,
    **options: Any,
) -> DetectionSet:
    """`n` digit scenes (`digit_scenes`, with `options`) from MNIST's and CIFAR-10's `split`
    ("train" or "test"), so train and test scenes share no digit and no background.

    root_mnist: MNIST's folder. root_cifar: CIFAR-10 as an image folder, zip or npz with train/
    and test/ (e.g. ../shared/data/cifar10/cifar10-jpeg.zip), a folder holding cifar10-jpeg.zip,
    or the folder of the official batches. None: mnist/ and cifar10/ under $STRIATE_SHARED_DATA
    (default ../shared/data) when they exist, else the default data folder.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"{_OWNER}: split must be 'train' or 'test', got {split!r}")
    root_mnist = _shared("mnist") if root_mnist is None else root_mnist
    root_cifar = _shared("cifar10") if root_cifar is None else root_cifar
    digits = load_dataset("mnist", split, root=root_mnist, progress=progress)
    backgrounds = _backgrounds(root_cifar, split, progress)
    return digit_scenes(digits, backgrounds, n, progress=progress, **options)
