"""MNIST and Fashion-MNIST from their official IDX files (gzip-compressed or plain), read strictly,
and IDX files written.

The format and its strict reader live in `striate.idx_format` (no torch there, for the NumPy
engine); `read_idx` and `read_upto` stay importable from here.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from striate._atomic import atomic_write
from striate.data import download
from striate.data.imageset import ImageSet
from striate.errors import ConfigError, DataError
from striate.idx_format import (
    DTYPES,
    MNIST_FILES,
    find_idx_pair,
    read_idx,
    read_mnist_pair,
    read_upto,
)
from striate.paths import dataset_dirs

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "load_mnist",
    "read_idx",
    "read_upto",
    "write_idx",
]

MNIST_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CLASSES = {"mnist": MNIST_CLASSES, "fashion-mnist": FASHION_MNIST_CLASSES}


def write_idx(path: str | os.PathLike, array: np.ndarray, *, overwrite: bool = False) -> Path:
    """Write `array` (1 to 4 dimensions; uint8, int8, int16, int32, float32 or float64) as an IDX
    file, gzip-compressed when `path` ends in ``.gz``, atomically; `read_idx` reads it back.

    An existing file is replaced only with ``overwrite=True``. Returns the path.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {dtype.newbyteorder("=").str: code for code, dtype in DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise ConfigError(
            f"write_idx: IDX holds uint8, int8, int16, int32, float32 or float64 values, got "
            f"{array.dtype}; convert the array first"
        )
    if not 1 <= array.ndim <= 4 or max(array.shape) >= 2**32:
        raise ConfigError(
            f"write_idx: IDX holds arrays of 1 to 4 dimensions, each under 2**32, got shape "
            f"{array.shape}"
        )
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists: pass overwrite=True to replace it")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=DTYPES[code]).tobytes()
    with atomic_write(path, "wb") as f:
        if path.suffix == ".gz":
            # mtime 0: the same array gives the same bytes
            with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as z:
                z.write(header)
                z.write(payload)
        else:
            f.write(header)
            f.write(payload)
    return path


def load_mnist(
    root: str | os.PathLike | None = None,
    split: Literal["train", "test"] = "train",
    variant: Literal["mnist", "fashion-mnist"] = "mnist",
) -> ImageSet:
    """MNIST or Fashion-MNIST `split` from the official IDX files as an ImageSet (N×1×28×28).

    Looks in `root/<variant>`, then `root` (root None: `data_root()/<variant>`), for the `.gz`
    files or their unpacked versions; when they are missing, fetches the official files.
    """
    if variant not in _CLASSES:
        raise DataError(f"unknown variant {variant!r}: expected 'mnist' or 'fashion-mnist'")
    if split not in MNIST_FILES:
        raise DataError(f"unknown split {split!r} for {variant}: expected 'train' or 'test'")
    dirs, dest = dataset_dirs(root, variant)
    pair = next((p for d in dirs if (p := find_idx_pair(d, MNIST_FILES[split])) is not None), None)
    if pair is None:
        download.fetch_official(variant, dest=dest, searched=dirs)
        pair = find_idx_pair(dest, MNIST_FILES[split])
        if pair is None:
            images_name, labels_name = MNIST_FILES[split]
            raise DataError(
                f"{variant} {split}: {images_name}.gz and {labels_name}.gz are still missing "
                f"from {dest} after the download; put the official files there"
            )
    images_path, labels_path = pair
    images, labels = read_mnist_pair(images_path, labels_path, variant)
    return ImageSet(
        images=torch.from_numpy(images).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        classes=_CLASSES[variant],
        source=f"{variant} {split} ({images_path})",
    )
