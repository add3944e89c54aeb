"""The IDX file format (LeCun et al., http://yann.lecun.com/exdb/mnist/), read strictly, without
torch, so that the NumPy engine (`striate.scratch`) can read MNIST too.

IDX: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension,
then the row-major payload. The header is checked first and only as many bytes as it promises
(plus one, to catch trailing garbage) are ever read, so a lying header cannot make the reader
allocate more than the file holds.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from striate.errors import DataError
from striate.paths import not_a_file

__all__ = ["DTYPES", "MNIST_FILES", "find_idx_pair", "read_idx", "read_mnist_pair", "read_upto"]

# the official file names of MNIST and Fashion-MNIST (images, labels), each also as `.gz`
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes; multi-byte types are big-endian in the file.
DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CHUNK = 1 << 24  # read in 16 MiB steps: memory grows with the data actually present


def read_upto(f: BinaryIO, n: int) -> bytearray:
    """At most `n` bytes from `f`, fewer only at end of file; memory grows with what is read."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse_idx(f: BinaryIO, path: Path, file_size: int | None) -> np.ndarray:
    """Header, then exactly the promised payload; `file_size` (plain files) gives an early check."""
    redo = "download the file again or check that it is an IDX file"
    head = read_upto(f, 4)
    if len(head) < 4:
        raise DataError(
            f"{path}: the file ends after {len(head)} bytes, inside the 4-byte IDX header; "
            f"it is empty or truncated — {redo}"
        )
    if head[0] or head[1]:
        raise DataError(
            f"{path}: not an IDX file (it starts with bytes {bytes(head).hex()}, an IDX file "
            f"starts with two zero bytes); expected e.g. train-images-idx3-ubyte(.gz) from MNIST"
        )
    code, ndim = head[2], head[3]
    if code not in DTYPES:
        raise DataError(
            f"{path}: unknown IDX type code 0x{code:02X} (known: 0x08 0x09 0x0B 0x0C 0x0D 0x0E); "
            f"the file is corrupt or not an IDX file — {redo}"
        )
    if not 1 <= ndim <= 4:
        raise DataError(
            f"{path}: IDX header says {ndim} dimensions, expected 1 to 4; the file is corrupt — "
            f"{redo}"
        )
    raw_dims = read_upto(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"{path}: the file ends inside the IDX header ({ndim} dimensions need {4 * ndim} "
            f"bytes, {len(raw_dims)} present); it is truncated — {redo}"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = DTYPES[code]
    size = math.prod(dims) * dtype.itemsize
    promise = f"the header promises {'×'.join(map(str, dims))} {dtype.name} values ({size} bytes)"
    if file_size is not None and file_size - 4 - 4 * ndim < size:
        raise DataError(
            f"{path}: {promise} but the file holds only {file_size - 4 - 4 * ndim} bytes after "
            f"the header; it is truncated — {redo}"
        )
    payload = read_upto(f, size + 1)
    if len(payload) < size:
        raise DataError(
            f"{path}: {promise} but only {len(payload)} bytes follow the header; the file is "
            f"truncated — {redo}"
        )
    if len(payload) > size:
        raise DataError(
            f"{path}: {promise} but more bytes follow them; the file has trailing data or a wrong "
            f"header — {redo}"
        )
    array = np.frombuffer(payload, dtype=dtype).reshape(dims)  # a bytearray: writable, no copy
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array in an IDX file, gzip-compressed (detected by magic bytes) or plain.

    The result is writable and in native byte order. Any malformed, truncated or corrupt file
    raises `DataError` naming it.
    """
    path = Path(path)
    compressed = False
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return _parse_idx(f, path, None)  # type: ignore[arg-type]
            return _parse_idx(raw, path, os.fstat(raw.fileno()).st_size)
    except DataError:
        raise
    except (IsADirectoryError, FileNotFoundError) as e:
        raise not_a_file(path, e, "an IDX file") from None
    except (EOFError, zlib.error, OSError, ValueError, struct.error) as e:  # BadGzipFile: OSError
        what = "gzip stream is corrupt or truncated" if compressed else "file could not be read"
        raise DataError(f"{path}: the {what} ({e}); download the file again") from e


def find_idx_pair(directory: Path, names: tuple[str, str]) -> tuple[Path, Path] | None:
    """The images and labels files in `directory` (official `.gz` name first, then unpacked)."""
    found = []
    for name in names:
        for candidate in (directory / f"{name}.gz", directory / name):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found[0], found[1]


def read_mnist_pair(
    images_path: Path, labels_path: Path, variant: str = "mnist"
) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (n×h×w) and uint8 labels (0..9) of an MNIST-style split, checked to be
    what they claim and to match in number."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or 0 in images.shape[1:]:
        raise DataError(
            f"{images_path}: expected uint8 images n×h×w (MNIST: n×28×28), found {images.dtype} "
            f"of shape {images.shape}; is this the images file?"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(
            f"{labels_path}: expected 1-D uint8 labels, found {labels.dtype} of shape "
            f"{labels.shape}; is this the labels file?"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
            f"labels; the two files must come from the same split of the same release"
        )
    if len(labels) and int(labels.max()) > 9:
        raise DataError(
            f"{labels_path}: labels must be 0..9, found {int(labels.max())}; the file is corrupt "
            f"or not a {variant} labels file"
        )
    return images, labels
