"""CIFAR-10 and CIFAR-100 from the official python batches (folder or .tar.gz) or binary batches.

The python batches are pickles, so they go through `RestrictedUnpickler`, which can build only
what the official files contain (numeric numpy arrays, lists, dicts, strings, numbers) and refuses
anything else before it runs; what it builds is bounded by the size of the file. A `.tar.gz` is
read in place, never extracted. Every malformed, truncated or inconsistent input raises
`DataError` naming the file. Dataset: Krizhevsky, "Learning Multiple Layers of Features from Tiny
Images", 2009, https://www.cs.toronto.edu/~kriz/cifar.html.

About 560 lines: two official formats (python pickles through the restricted unpickler, and the
binary batches) with their checks, which share the layouts and the error wording.
"""

from __future__ import annotations

import codecs
import contextvars
import io
import itertools
import math
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from striate.data import download
from striate.data.imageset import ImageSet
from striate.errors import DataError
from striate.paths import dataset_dirs

__all__ = ["RestrictedUnpickler", "load_cifar", "safe_unpickle"]

_PIXELS = 3 * 32 * 32
_MAX_FILE_BYTES = 1 << 29  # 512 MiB; the largest official file (CIFAR-100 train) is ~160 MB
_MAX_TAR_MEMBERS = 1000  # the official archives hold fewer than 10
_MAX_ARCHIVE_BYTES = 1 << 31  # unpacked; the largest official archive unpacks to ~180 MB
_NUM_CLASSES = {"labels": 10, "fine_labels": 100, "coarse_labels": 20}


# ---------------------------------------------------------------- restricted unpickling


_NP_RECONSTRUCT = np.ndarray((0,)).__reduce__()[0]  # numpy's array-reconstruction function
_NDARRAY = object()  # stands for numpy.ndarray: only ever an argument, never called
_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "iso_8859_1", "l1"}
# bytes that latin-1 encoding and array states may still create while unpickling one file
_BUDGET: contextvars.ContextVar[list[int]] = contextvars.ContextVar("_BUDGET")


class _Refused(Exception):
    """Raised inside the unpickler for input no official batch contains; becomes a DataError."""


def _spend(n: int) -> None:
    """Charge `n` bytes to the current file's budget: a small file cannot build a large object."""
    budget = _BUDGET.get()
    budget[0] -= n
    if budget[0] < 0:
        raise _Refused("more data than the file holds (repeated references to large objects)")


class _CheckedArray(np.ndarray):
    """The array type the unpickler builds: `__setstate__` accepts only plain numeric data."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _Refused("a malformed array state")
        shape, dtype, _fortran, raw = state[-4:]
        if not isinstance(shape, tuple) or not 1 <= len(shape) <= 4:
            raise _Refused("an array with an unexpected number of dimensions")
        if not all(type(d) is int and d >= 0 for d in shape):
            raise _Refused("an array with a malformed shape")
        if not isinstance(dtype, np.dtype) or not _plain_numeric(dtype):
            raise _Refused(f"an array of dtype {dtype!r}; only plain numeric arrays are allowed")
        if type(raw) is not bytes or len(raw) != math.prod(shape) * dtype.itemsize:
            raise _Refused("an array whose data does not match its shape")
        _spend(len(raw))
        super().__setstate__(state)


def _plain_numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf" and dtype.fields is None and dtype.subdtype is None


def _reconstruct(subtype, shape, typecode):
    """numpy's `_reconstruct`, limited to the empty placeholder array that pickles start from."""
    if subtype is not _NDARRAY or shape != (0,) or not isinstance(typecode, (bytes, str)):
        raise _Refused("array reconstruction with unexpected arguments")
    return _NP_RECONSTRUCT(_CheckedArray, (0,), b"b")


def _dtype(spec, align=False, copy=False):
    """`numpy.dtype`, limited to plain numeric type strings such as 'u1' or '<i8'."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", errors="replace")
    if not isinstance(spec, str) or len(spec) > 8:
        raise _Refused("a dtype that is not a plain type string")
    try:
        dtype = np.dtype(spec)
    except (TypeError, ValueError) as e:
        raise _Refused(f"an unknown dtype {spec!r}") from e
    if not _plain_numeric(dtype):
        raise _Refused(f"dtype {spec!r}; only plain numeric arrays are allowed")
    return dtype


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """`_codecs.encode` as protocol-2 pickles use it for bytes: str to latin-1, nothing else."""
    if type(text) is not str or type(encoding) is not str or errors != "strict":
        raise _Refused("_codecs.encode with unexpected arguments")
    if encoding.lower() not in _LATIN1:
        raise _Refused(f"_codecs.encode to {encoding[:40]!r}; only latin-1 is allowed")
    _spend(len(text))
    return codecs.latin_1_encode(text)[0]


def _refuse_opcode(self) -> None:
    raise _Refused("out-of-band buffers or a bytearray (pickle protocol 5)")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickler for CIFAR python batches: finds only numpy's array reconstruction, `numpy.dtype`
    and latin-1 `_codecs.encode`, each limited to plain numeric data; refuses every other global.

    Built on the pure-Python unpickler, whose memo is a dict: the C one sizes its memo table by
    the largest index a file names, so a few bytes can make it allocate gigabytes. Protocol 5's
    BYTEARRAY8 (allocated at the size the file claims) and out-of-band buffers are refused.
    `source` names the file in error messages. Loads Python 2 pickles with `encoding="bytes"`.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    for _op in (pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER):
        dispatch[_op[0]] = _refuse_opcode
    del _op

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise DataError(
                f"refusing to unpickle {str(module)[:80]}.{str(name)[:80]} from {self.source}: "
                f"CIFAR batches contain only arrays, lists and strings; this file is not an "
                f"official batch"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise _Refused("a persistent id")


def safe_unpickle(data: bytes, source: str) -> object:
    """Unpickle `data` (the bytes of `source`) with `RestrictedUnpickler`; any failure is a
    DataError naming `source`."""
    token = _BUDGET.set([2 * len(data) + 4096])
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except _Refused as e:
        raise DataError(
            f"refusing to unpickle {source}: it asks for {e}; CIFAR batches contain only "
            f"arrays, lists and strings; this file is not an official batch"
        ) from None
    except Exception as e:  # a malformed pickle can raise almost anything; all mean "corrupt"
        raise DataError(
            f"{source} is not a readable CIFAR python batch ({type(e).__name__}: "
            f"{str(e)[:200]}); the file is corrupt or truncated — download it again"
        ) from None
    finally:
        _BUDGET.reset(token)


# ---------------------------------------------------------------- validation


def _fields(obj: object, source: str, required: tuple[str, ...]) -> dict[str, object]:
    """The unpickled dict with str keys (Python 2 batches have bytes keys); checks `required`."""
    if not isinstance(obj, dict):
        raise DataError(
            f"{source}: expected a dict, found {type(obj).__name__}; not an official CIFAR batch"
        )
    fields: dict[str, object] = {}
    for key, value in obj.items():  # a handful of keys
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(key, str):
            fields[key] = value
    missing = [k for k in required if k not in fields]
    if missing:
        present = ", ".join(sorted(fields)[:20]) or "none"
        raise DataError(
            f"{source}: missing {', '.join(missing)} (keys present: {present}); not an official "
            f"CIFAR batch"
        )
    return fields


def _ints_from_list(items: list, count: int, source: str, key: str) -> np.ndarray:
    """`count` Python ints from an iterable as int64, checked type by type (in C, no copy)."""
    types = set(map(type, items))
    if not types <= {int}:
        found = ", ".join(sorted(t.__name__ for t in types - {int}))
        raise DataError(f"{source}: {key} must hold integers, found {found}")
    try:
        return np.fromiter(items, dtype=np.int64, count=count)
    except (ValueError, OverflowError) as e:
        raise DataError(f"{source}: {key} holds an out-of-range integer ({e})") from None


def _pixels(value: object, source: str, budget: int) -> np.ndarray:
    """The `data` entry (an array, or a list of rows) as a uint8 array n×3072."""
    if isinstance(value, np.ndarray):
        data = value.view(np.ndarray)
    elif isinstance(value, list):  # rows of ints; no nesting or sharing can make it grow
        if not set(map(type, value)) <= {list} or not set(map(len, value)) <= {_PIXELS}:
            raise DataError(f"{source}: data must be a list of rows of {_PIXELS} integers")
        if len(value) * _PIXELS > budget:
            raise DataError(f"{source}: data lists more pixels than the file can hold")
        rows = list(itertools.chain.from_iterable(value))
        data = _ints_from_list(rows, len(rows), source, "data").reshape(-1, _PIXELS)
    else:
        raise DataError(
            f"{source}: data must be an array, found {type(value).__name__}; not an official "
            f"CIFAR batch"
        )
    if data.dtype.kind not in "iu" or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(
            f"{source}: data must be n×{_PIXELS} integers (one 3×32×32 image per row), found "
            f"{data.dtype} of shape {data.shape}; not an official CIFAR batch"
        )
    if data.dtype != np.uint8:
        if data.size and (int(data.min()) < 0 or int(data.max()) > 255):
            raise DataError(f"{source}: data values must be 0..255, found values outside")
        data = data.astype(np.uint8)
    return data


def _labels(value: object, source: str, key: str, n: int) -> np.ndarray:
    """A label list (or array) as int64, checked against the image count and the class count."""
    if isinstance(value, list):
        labels = _ints_from_list(value, len(value), source, key)
    elif isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.ndim == 1:
        labels = value.view(np.ndarray)
    else:
        raise DataError(
            f"{source}: {key} must be a list of integers, found {type(value).__name__}; not an "
            f"official CIFAR batch"
        )
    if len(labels) != n:
        raise DataError(
            f"{source}: {n} images but {len(labels)} {key}; each image needs exactly one label"
        )
    k = _NUM_CLASSES[key]
    if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise DataError(
            f"{source}: {key} must be in 0..{k - 1}, found {int(labels.min())}..{int(labels.max())}"
        )
    return labels.astype(np.int64)


def _names(value: object, source: str, key: str, expected: int) -> tuple[str, ...]:
    """A list of class names (bytes or str) with exactly `expected` entries."""
    if not isinstance(value, (list, tuple)) or len(value) != expected:
        found = len(value) if isinstance(value, (list, tuple)) else type(value).__name__
        raise DataError(f"{source}: {key} must be a list of {expected} names, found {found}")
    names = []
    for name in value:  # 10 to 100 names
        if isinstance(name, bytes):
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{source}: {key} holds a name that is not UTF-8") from None
        if not isinstance(name, str):
            raise DataError(f"{source}: {key} must hold strings, found {type(name).__name__}")
        names.append(name)
    return tuple(names)


def _text_names(data: bytes, source: str, expected: int) -> tuple[str, ...]:
    """Class names from a binary-version text file: one per line, blank lines ignored."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{source}: not a UTF-8 text file of class names") from None
    names = tuple(line.strip() for line in lines if line.strip())
    if len(names) != expected:
        raise DataError(
            f"{source}: expected {expected} class names, one per line, found {len(names)}"
        )
    return names


# ---------------------------------------------------------------- layouts and file access


@dataclass(frozen=True)
class _Layout:
    """One official distribution format: its folder, archive, meta file and batch files."""

    binary: bool
    folder: str
    archive: str
    meta: tuple[str, ...]
    train: tuple[str, ...]
    test: tuple[str, ...]


_LAYOUTS = {
    "cifar10": (
        _Layout(
            False,
            "cifar-10-batches-py",
            "cifar-10-python.tar.gz",
            ("batches.meta",),
            tuple(f"data_batch_{i}" for i in range(1, 6)),
            ("test_batch",),
        ),
        _Layout(
            True,
            "cifar-10-batches-bin",
            "cifar-10-binary.tar.gz",
            ("batches.meta.txt",),
            tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
            ("test_batch.bin",),
        ),
    ),
    "cifar100": (
        _Layout(
            False, "cifar-100-python", "cifar-100-python.tar.gz", ("meta",), ("train",), ("test",)
        ),
        _Layout(
            True,
            "cifar-100-binary",
            "cifar-100-binary.tar.gz",
            ("fine_label_names.txt", "coarse_label_names.txt"),
            ("train.bin",),
            ("test.bin",),
        ),
    ),
}


@dataclass(frozen=True)
class _Found:
    """Where a layout was found: a folder holding its files, or its archive."""

    layout: _Layout
    path: Path
    archive: bool


def _looks_like(folder: Path, layout: _Layout) -> bool:
    return any((folder / n).is_file() for n in layout.meta + layout.train + layout.test)


def _locate(dirs: list[Path], variant: str) -> _Found | None:
    """The first layout present: per folder, extracted python, extracted binary, then archives."""
    layouts = _LAYOUTS[variant]
    for base in dirs:
        for layout in layouts:
            for folder in (base / layout.folder, base):
                if folder.is_dir() and _looks_like(folder, layout):
                    return _Found(layout, folder, archive=False)
        for layout in layouts:
            if (base / layout.archive).is_file():
                return _Found(layout, base / layout.archive, archive=True)
    return None


def _read_folder(folder: Path, names: tuple[str, ...]) -> dict[str, tuple[bytes, str]]:
    """The named files of `folder`: name → (bytes, description for messages)."""
    out = {}
    for name in names:
        path = folder / name
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise FileNotFoundError
        except FileNotFoundError:
            raise DataError(
                f"{path} is missing: the CIFAR folder {folder} is incomplete; extract the official "
                f"archive again (or remove the folder so the archive is used)"
            ) from None
        if size > _MAX_FILE_BYTES:
            raise DataError(f"{path} is {size} bytes, too large for a CIFAR batch; wrong file?")
        try:
            out[name] = (path.read_bytes(), str(path))
        except OSError as e:
            raise DataError(f"{path} could not be read ({e})") from None
    return out


def _read_archive(archive: Path, layout: _Layout, names: tuple[str, ...]):
    """The named members of a CIFAR .tar.gz, read in place in one forward pass."""
    wanted = {f"{layout.folder}/{n}": n for n in names}
    out: dict[str, tuple[bytes, str]] = {}
    redo = "the archive is corrupt or truncated — download it again"
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for count, member in enumerate(tar):
                if count >= _MAX_TAR_MEMBERS:
                    raise DataError(
                        f"{archive} has more than {_MAX_TAR_MEMBERS} members; not an official "
                        f"CIFAR archive"
                    )
                name = member.name.removeprefix("./")
                where = f"{archive} (member {name[:200]})"
                if member.offset_data + member.size > _MAX_ARCHIVE_BYTES:
                    raise DataError(
                        f"{where} is {member.size} bytes, too large for a CIFAR archive; "
                        f"this is not the official {layout.archive}"
                    )
                if name not in wanted or not member.isreg():
                    continue
                if member.size > _MAX_FILE_BYTES:
                    raise DataError(f"{where} is {member.size} bytes, too large for a CIFAR batch")
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise DataError(
                        f"{where}: ends after {len(data)} of {member.size} bytes; {redo}"
                    )
                out[wanted[name]] = (data, where)
                if len(out) == len(wanted):
                    break
            # read to the end so the gzip checksum, which covers the whole archive, is verified
            while tar.fileobj.read(1 << 20):  # type: ignore[union-attr]
                if tar.fileobj.tell() > _MAX_ARCHIVE_BYTES:  # type: ignore[union-attr]
                    raise DataError(f"{archive} unpacks to more than {_MAX_ARCHIVE_BYTES} bytes")
    except DataError:
        raise
    except (tarfile.TarError, EOFError, OSError, zlib.error, ValueError) as e:
        raise DataError(f"{archive} could not be read as a .tar.gz ({e}); {redo}") from None
    missing = [f"{layout.folder}/{n}" for n in names if n not in out]
    if missing:
        raise DataError(
            f"{archive} lacks {', '.join(missing)}; it is not the official "
            f"{layout.archive} or it is truncated — download it again"
        )
    return out


# ---------------------------------------------------------------- parsing


def _parse_python(files, layout: _Layout, batches, variant: str, coarse: bool):
    meta_data, meta_src = files[layout.meta[0]]
    meta = safe_unpickle(meta_data, meta_src)
    if variant == "cifar10":
        keys: tuple[str, ...] = ("labels",)
        fields = _fields(meta, meta_src, ("label_names",))
        classes = _names(fields["label_names"], meta_src, "label_names", 10)
    else:  # both name lists must be sound, whichever is used
        keys = ("fine_labels", "coarse_labels")
        fields = _fields(meta, meta_src, ("fine_label_names", "coarse_label_names"))
        fine = _names(fields["fine_label_names"], meta_src, "fine_label_names", 100)
        coarse_names = _names(fields["coarse_label_names"], meta_src, "coarse_label_names", 20)
        classes = coarse_names if coarse else fine
    images, labels = [], []
    for batch in batches:
        data, src = files[batch]
        fields = _fields(safe_unpickle(data, src), src, ("data", *keys))
        pixels = _pixels(fields["data"], src, len(data))
        checked = {k: _labels(fields[k], src, k, len(pixels)) for k in keys}
        images.append(pixels)
        labels.append(checked["coarse_labels" if coarse else keys[0]])
    return images, labels, classes


def _parse_binary(files, layout: _Layout, batches, variant: str, coarse: bool):
    if variant == "cifar10":
        classes = _text_names(*files["batches.meta.txt"], 10)
        limits, column = (10,), 0
    else:  # record: coarse label byte, fine label byte, pixels
        fine_names = _text_names(*files["fine_label_names.txt"], 100)
        coarse_names = _text_names(*files["coarse_label_names.txt"], 20)
        classes = coarse_names if coarse else fine_names
        limits, column = (20, 100), 0 if coarse else 1
    record = len(limits) + _PIXELS
    images, labels = [], []
    for batch in batches:
        data, src = files[batch]
        if not data or len(data) % record:
            raise DataError(
                f"{src}: size {len(data)} bytes is not a positive multiple of the {record}-byte "
                f"record ({len(limits)} label byte(s) + {_PIXELS} pixels); the file is truncated "
                f"or not a {variant} binary batch"
            )
        rows = np.frombuffer(data, dtype=np.uint8).reshape(-1, record)
        for col, limit in enumerate(limits):
            top = int(rows[:, col].max())
            if top >= limit:
                raise DataError(
                    f"{src}: a record has label {top} in its label byte {col}, which must be "
                    f"below {limit}; the file is corrupt or not a {variant} binary batch"
                )
        images.append(rows[:, len(limits) :])
        labels.append(rows[:, column].astype(np.int64))
    return images, labels, classes


def load_cifar(
    root: str | os.PathLike | None = None,
    split: Literal["train", "test"] = "train",
    variant: Literal["cifar10", "cifar100"] = "cifar10",
    label_mode: Literal["fine", "coarse"] = "fine",
) -> ImageSet:
    """CIFAR-10 or CIFAR-100 `split` from the official files as an ImageSet (N×3×32×32 uint8).

    Looks in `root/<variant>`, then `root` (root None: `data_root()/<variant>`); in each, for the
    extracted python folder, the extracted binary folder, then the python and binary `.tar.gz`
    (read in place). When nothing is found, fetches the official python archive. `label_mode`
    picks CIFAR-100's 100 fine or 20 coarse classes.
    """
    if variant not in _LAYOUTS:
        raise DataError(f"unknown variant {variant!r}: expected 'cifar10' or 'cifar100'")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r} for {variant}: expected 'train' or 'test'")
    if label_mode not in ("fine", "coarse") or (variant == "cifar10" and label_mode != "fine"):
        raise DataError(
            f"label_mode {label_mode!r} is not available for {variant}: CIFAR-100 has 'fine' "
            f"(100 classes) and 'coarse' (20 superclasses); CIFAR-10 has only 'fine'"
        )
    dirs, dest = dataset_dirs(root, variant)
    found = _locate(dirs, variant)
    if found is None:
        fetched = download.fetch_official(variant, dest=dest, searched=dirs)
        archive = _LAYOUTS[variant][0].archive
        path = next((Path(p) for p in fetched if Path(p).name == archive), dest / archive)
        if not path.is_file():
            raise DataError(f"{variant}: {archive} is missing from {dest} after the download")
        found = _Found(_LAYOUTS[variant][0], path, archive=True)
    layout = found.layout
    batches = layout.train if split == "train" else layout.test
    names = layout.meta + batches
    if found.archive:
        files = _read_archive(found.path, layout, names)
    else:
        files = _read_folder(found.path, names)
    parse = _parse_binary if layout.binary else _parse_python
    images, labels, classes = parse(files, layout, batches, variant, label_mode == "coarse")
    pixels = np.concatenate(images)  # one copy: contiguous, writable
    mode = " coarse" if label_mode == "coarse" else ""
    return ImageSet(
        images=torch.from_numpy(pixels).view(-1, 3, 32, 32),  # rows are R, G, B planes
        labels=torch.from_numpy(np.concatenate(labels)),
        classes=classes,
        source=f"{variant} {split}{mode} ({found.path})",
    )
