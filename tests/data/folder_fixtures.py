"""Small image folders and zips written by the tests, with the pixels they hold."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def random_images(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    """n uint8 images H×W×C (C=1 gives H×W×1)."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def write_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(path, format="PNG")


def make_folder(
    root: Path,
    classes=("cat", "dog", "owl"),
    per_class=(4, 3, 5),
    splits=("train", "test"),
    h: int = 6,
    w: int = 5,
    c: int = 3,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write PNGs in the ImageFolder layout; returns per split the N×C×H×W pixels and labels in
    the order striate lists them (classes sorted, files sorted within a class)."""
    expected = {}
    for s, split in enumerate(splits):
        images, labels = [], []
        for k, cls in enumerate(sorted(classes)):
            n = per_class[k]
            arrs = random_images(n, h, w, c, seed=seed + 100 * s + k)
            for i in range(n):
                base = root / split if split else root
                write_png(base / cls / f"{i:04d}.png", arrs[i])
            images.append(arrs)
            labels += [k] * n
        expected[split or "all"] = (
            np.concatenate(images).transpose(0, 3, 1, 2),
            np.asarray(labels, dtype=np.int64),
        )
    return expected


def zip_folder(folder: Path, zip_path: Path, prefix: str = "", dirs: bool = True) -> Path:
    """Zip a folder (with directory entries, as `zip -r` writes them)."""
    with zipfile.ZipFile(zip_path, "w") as zf:
        for p in sorted(folder.rglob("*")):
            arc = prefix + p.relative_to(folder).as_posix()
            if p.is_dir():
                if dirs:
                    zf.writestr(arc + "/", b"")
            else:
                zf.write(p, arc)
    return zip_path
