"""Image sets from `.npz` files (`numpy.savez` with `x_train`, `y_train`, `x_test`, `y_test`).

Arrays are read with `np.load(..., allow_pickle=False)`, after each member's `.npy` header has been
checked against the bytes actually present, so a lying header cannot drive a large allocation.

Image layout rule: 3-D arrays are grey N×H×W. A 4-D array can be channels last (N×H×W×C, Keras
style) when its last axis is 1, 3 or 4 (4: the alpha channel is dropped), and channels first
(N×C×H×W, PyTorch style) when axis 1 is 1 or 3. When only one reading is possible it is used; when
both are (tiny images, e.g. N×3×4×4), the shorter of the two axes holds the channels, and on a tie
(e.g. N×3×32×3) channels last wins. Pixels: uint8; other integers within 0..255; floats within
[0, 1] (scaled by 255 and rounded).
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from striate.data.idx import read_upto
from striate.data.imageset import ImageSet
from striate.errors import DataError
from striate.paths import not_a_file

__all__ = ["load_npz"]

_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
_REDO = "save it again with numpy.savez (no object arrays)"


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One `.npy` member: header checked against the real payload size, then `np.load`."""
    with archive.open(info) as f:
        data = read_upto(f, info.file_size + 1)  # memory bounded by the bytes really present
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise DataError(f"{where}: .npy format version {version} is not supported; {_REDO}")
    except (ValueError, TypeError, SyntaxError, MemoryError) as e:
        raise DataError(f"{where}: not a valid .npy array ({str(e)[:200]}); {_REDO}") from None
    if dtype.hasobject:
        raise DataError(
            f"{where}: holds Python objects (dtype {dtype}), which would need unpickling; "
            f"striate loads only numeric arrays — {_REDO}"
        )
    expected = math.prod(shape) * dtype.itemsize
    present = len(data) - fp.tell()
    if present != expected:
        raise DataError(
            f"{where}: the header promises shape {shape} of {dtype} ({expected} bytes) but "
            f"{present} bytes follow; the file is truncated or corrupt"
        )
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{where}: could not be read ({str(e)[:200]}); {_REDO}") from None


def _as_uint8_images(x: np.ndarray, where: str) -> np.ndarray:
    """Images in any accepted layout and dtype as contiguous uint8 N×C×H×W (C 1 or 3)."""
    last = x.ndim == 4 and x.shape[-1] in (1, 3, 4)
    first = x.ndim == 4 and x.shape[1] in (1, 3)
    if x.ndim == 3:
        x = x[:, None]
    elif last and (not first or x.shape[-1] <= x.shape[1]):
        x = x[..., :3].transpose(0, 3, 1, 2)
    elif not first:
        raise DataError(
            f"{where}: images must be N×H×W (grey), N×H×W×C (C 1, 3 or 4) or N×C×H×W (C 1 or 3); "
            f"found a {x.ndim}-D array of shape {x.shape}"
        )
    kind = x.dtype.kind
    if kind == "u" and x.dtype.itemsize == 1:
        pass
    elif kind in "iu":
        if x.size and (int(x.min()) < 0 or int(x.max()) > 255):
            raise DataError(
                f"{where}: integer pixels must be within 0..255, found {int(x.min())}..."
                f"{int(x.max())}"
            )
        x = x.astype(np.uint8)
    elif kind == "f":
        if x.size and not np.isfinite(x).all():
            raise DataError(f"{where}: pixels include NaN or infinity")
        if x.size and (float(x.min()) < 0 or float(x.max()) > 1):
            raise DataError(
                f"{where}: float pixels must be within [0, 1], found {float(x.min()):g}..."
                f"{float(x.max()):g}; store uint8 0..255, or divide by 255"
            )
        x = np.rint(x * 255).astype(np.uint8)
    else:
        raise DataError(
            f"{where}: pixels must be uint8, integers 0..255 or floats in [0, 1]; found {x.dtype}"
        )
    return np.ascontiguousarray(x)


def _as_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    """Integer labels (N or N×1) as int64 N, non-negative."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(
            f"{where}: labels must be integers, shape N or N×1; found {y.dtype} of shape {y.shape}"
        )
    if len(y) != n:
        raise DataError(f"{where}: {len(y)} labels for {n} images; each image needs one label")
    if len(y) and int(y.min()) < 0:
        raise DataError(f"{where}: labels must be non-negative, found {int(y.min())}")
    if len(y) and int(y.max()) > np.iinfo(np.int64).max:
        raise DataError(f"{where}: label {int(y.max())} does not fit in int64")
    return y.astype(np.int64)


def _classes(archive, members, path: Path, labels: list[np.ndarray], where: str):
    """Class names: the `classes` array if present, else "0".."K-1" over all label arrays."""
    if "classes" in members:
        names = _read_member(archive, members["classes"], f"{path} (classes)")
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(
                f"{path} (classes): must be a 1-D array of strings, found {names.dtype} of "
                f"shape {names.shape}"
            )
        if names.dtype.kind == "S":
            try:
                return tuple(bytes(n).decode("utf-8") for n in names)
            except UnicodeDecodeError:
                raise DataError(f"{path} (classes): names must be UTF-8") from None
        return tuple(str(n) for n in names)
    k = max((int(y.max()) + 1 for y in labels if len(y)), default=0)
    if k > 1_000_000:
        raise DataError(f"{where}: largest label {k - 1} is implausible for a class index")
    return tuple(str(i) for i in range(k))


def load_npz(path: str | os.PathLike, split: Literal["train", "test"] = "train") -> ImageSet:
    """The `split` of an `.npz` file (keys `x_<split>`, `y_<split>`, optional `classes`).

    See the module docstring for the accepted image layouts and pixel types. Without `classes`,
    names are "0".."K-1", K one more than the largest label in `y_train` and `y_test`.
    """
    path = Path(path)
    if split not in _KEYS:
        raise DataError(f"unknown split {split!r} for {path}: expected 'train' or 'test'")
    x_key, y_key = _KEYS[split]
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): info
                for info in archive.infolist()
                if info.filename.endswith(".npy")
            }
            if x_key not in members or y_key not in members:
                present = ", ".join(sorted(members)) or "none"
                raise DataError(
                    f"{path}: no {split} split: keys {x_key} and {y_key} are needed, keys present: "
                    f"{present}"
                )
            x = _read_member(archive, members[x_key], f"{path} ({x_key})")
            y = _read_member(archive, members[y_key], f"{path} ({y_key})")
            images = _as_uint8_images(x, f"{path} ({x_key})")
            labels = _as_labels(y, len(images), f"{path} ({y_key})")
            all_labels = [labels]
            other = "y_test" if split == "train" else "y_train"
            if other in members and "classes" not in members:  # K counts both splits' labels
                where = f"{path} ({other})"
                y_other = _read_member(archive, members[other], where)
                n_other = y_other.shape[0] if y_other.ndim else 0
                all_labels.append(_as_labels(y_other, n_other, where))
            classes = _classes(archive, members, path, all_labels, f"{path} ({y_key})")
    except DataError:
        raise
    except (FileNotFoundError, IsADirectoryError) as e:
        raise not_a_file(path, e, "an .npz file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        raise DataError(
            f"{path} is not a readable .npz (zip) file ({e}); it is corrupt or truncated"
        ) from None
    except (OSError, EOFError, zlib.error, ValueError, RuntimeError, NotImplementedError) as e:
        # RuntimeError: encrypted member; NotImplementedError: unknown compression
        raise DataError(f"{path} could not be read as .npz ({type(e).__name__}: {e})") from None
    if len(labels) and int(labels.max()) >= len(classes):
        raise DataError(
            f"{path} ({y_key}): label {int(labels.max())} but only {len(classes)} class names"
        )
    return ImageSet(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        classes=classes,
        source=f"npz {split} ({path})",
    )
