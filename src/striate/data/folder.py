"""Image folders in the ImageFolder layout, as a directory or a .zip read without extracting.

Layout: ``class/xxx.png`` (one split, called ``all``), or ``train/class/xxx.png`` and
``test/class/xxx.png`` (also ``val``/``valid``/``validation``). Files are found recursively inside a
class folder, classes are sorted by name (as torchvision's ImageFolder does), and a single wrapping
folder (``mydata/train/...``, as zipping a folder produces) is looked through.

About 550 lines: one format's reader (directory and zip, discovery, parallel decoding, the
bad-image policy, the fingerprint the decode cache keys on), read top to bottom; the shared parts
are in paths, cache and imageset.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import os
import re
import struct
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from striate.checks import fail, is_int, one_of
from striate.data import cache as decode_cache
from striate.data.imageset import ImageSet
from striate.data.splits import derived_split
from striate.errors import DataError, StriateWarning
from striate.progress import progress_bar

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
SPLIT_NAMES = ("train", "val", "valid", "validation", "test")
MAX_MEMBER_BYTES = 256 << 20  # a bigger "image" inside a zip is refused rather than read
BAD_IMAGE_POLICIES = ("error", "skip")


class UnreadableImage(DataError):
    """An image file the decoder cannot read. The message says why, in words (never a Python
    object's repr); the caller, who knows the file's name, puts it in front."""


@dataclass
class FolderIndex:
    """What a folder or zip holds: per split, the image paths and their class indices."""

    path: Path
    is_zip: bool
    classes: tuple[str, ...]
    splits: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def parse_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """Normalise a `size` argument (int or (H, W)) to (H, W)."""
    if size is None:
        return None
    if is_int(size):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise fail("", "size", "a positive integer or (height, width)", size)
    return size  # type: ignore[return-value]


def fingerprint(path: Path) -> str:
    """A key that changes when the source's content does.

    For a zip this hashes the central directory, which records every member's name, sizes and
    CRC-32: the content, without decompressing anything. For a directory it hashes each file's
    relative path, size and modification time, which is what `make` trusts too.
    """
    h = hashlib.sha256()
    if path.is_dir():
        for rel, full in _walk_files(path):
            st = full.stat()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    directory = _zip_central_directory(path)
    if directory is not None:
        h.update(directory)
        return h.hexdigest()
    with _open_zip(path) as zf:  # an unusual zip: let zipfile find the members
        for info in zf.infolist():
            h.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
    return h.hexdigest()


def _zip_central_directory(path: Path) -> bytes | None:
    """The raw central directory of a zip (PKWARE APPNOTE 4.3.12-4.3.16), or None if unusual."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            tail_start = max(0, size - (22 + 0xFFFF))  # end record plus the longest comment
            f.seek(tail_start)
            tail = f.read()
            end = tail.rfind(b"PK\x05\x06")
            if end < 0 or len(tail) - end < 22:
                return None
            count, cd_size, cd_offset = struct.unpack_from("<xxxxxxxxxxHII", tail, end)
            if count == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):  # Zip64 end records
                loc = end - 20
                if loc < 0 or tail[loc : loc + 4] != b"PK\x06\x07":
                    return None
                (record,) = struct.unpack_from("<Q", tail, loc + 8)
                f.seek(record)
                z64 = f.read(56)
                if len(z64) < 56 or z64[:4] != b"PK\x06\x06":
                    return None
                cd_size, cd_offset = struct.unpack_from("<QQ", z64, 40)
            if cd_offset + cd_size > size or cd_size > 1 << 31:
                return None
            f.seek(cd_offset)
            directory = f.read(cd_size)
    except OSError:
        return None
    return directory if directory[:4] == b"PK\x01\x02" else None


def _zip_entries(path: Path) -> list[tuple[str, bool]] | None:
    """(name, is a folder) of every member, read from the central directory as zipfile reads
    it (names UTF-8 when flag bit 11 is set, else cp437; cut at a NUL) but ten times faster on
    a 60,000-member zip; None when the directory is unusual (zipfile then decides)."""
    directory = _zip_central_directory(path)
    if directory is None:
        return None
    entries, pos, end = [], 0, len(directory)
    while pos < end:
        if directory[pos : pos + 4] != b"PK\x01\x02" or pos + 46 > end:
            return None
        (flags,) = struct.unpack_from("<H", directory, pos + 8)
        n, extra, comment = struct.unpack_from("<HHH", directory, pos + 28)
        raw = directory[pos + 46 : pos + 46 + n]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", errors="replace")
        name = name.split("\0", 1)[0]
        entries.append((name, name.endswith("/")))
        pos += 46 + n + extra + comment
    return entries if pos == end else None


def scan(path: Path) -> FolderIndex:
    """Index an image folder or zip: splits, classes, image paths (DataError on a bad layout)."""
    path = Path(path)
    is_zip = path.is_file()
    if is_zip:
        entries = _zip_entries(path)
        if entries is None:  # an unusual zip: let zipfile find the members
            with _open_zip(path) as zf:
                entries = [(i.filename, i.is_dir()) for i in zf.infolist()]
    elif path.is_dir():
        entries = [(rel, False) for rel, _ in _walk_files(path)]
        entries += [(rel + "/", True) for rel in _walk_dirs(path)]
    else:
        raise DataError(f"{path} does not exist: give an image folder or a .zip of one")
    return _index(path, is_zip, entries)


def _index(path: Path, is_zip: bool, entries: list[tuple[str, bool]]) -> FolderIndex:
    # Plain string parts: PurePosixPath costs seconds on a 60,000-member zip.
    files = [(n, _parts(n)) for n, is_dir in entries if not is_dir and _is_image(n)]
    dirs = [(n, _parts(n)) for n, is_dir in entries if is_dir]
    if not files:
        raise DataError(
            f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}): an image folder needs "
            f"class/xxx.png or train/class/xxx.png"
        )
    depth0 = 0
    # Look through single wrapping folders, e.g. a zip of "cifar10/train/cat/1.png".
    while True:
        tops = {parts[depth0] for _, parts in files}
        deep = all(len(parts) > depth0 + 2 for _, parts in files)
        if len(tops) == 1 and deep and tops.isdisjoint(SPLIT_NAMES):
            depth0 += 1
        else:
            break
    tops = {parts[depth0] for _, parts in files if len(parts) > depth0 + 1}
    split_layout = any(t in SPLIT_NAMES for t in tops)

    grouped: dict[str, dict[str, list[str]]] = {}
    for f, parts in files:
        rel = parts[depth0:]
        if split_layout:
            if rel[0] not in SPLIT_NAMES:
                raise DataError(
                    f"{path}: '{f}' is outside the split folders ({', '.join(SPLIT_NAMES)}); "
                    f"move it into one, or remove it"
                )
            split, rel = rel[0], rel[1:]
        else:
            split = "all"
        if len(rel) < 2:
            raise DataError(
                f"{path}: image '{f}' is not inside a class folder; the layout is "
                f"{'split/' if split_layout else ''}class/image"
            )
        grouped.setdefault(split, {}).setdefault(rel[0], []).append(f)

    # Class folders with no images in them (a zip lists empty folders as entries).
    for d, parts in dirs:
        rel = parts[depth0:]
        if split_layout and len(rel) == 2 and rel[0] in SPLIT_NAMES:
            split, cls = rel
        elif not split_layout and len(rel) == 1:
            split, cls = "all", rel[0]
        else:
            continue
        if cls not in grouped.get(split, {}):
            raise DataError(
                f"{path}: class folder '{d.rstrip('/')}' holds no images; add images or remove it"
            )

    class_sets = {split: sorted(by_class) for split, by_class in grouped.items()}
    reference_split = "train" if "train" in class_sets else next(iter(class_sets))
    classes = class_sets[reference_split]
    for split, names in class_sets.items():
        if names != classes:
            missing = sorted(set(classes) - set(names))
            extra = sorted(set(names) - set(classes))
            raise DataError(
                f"{path}: split '{split}' has different classes from '{reference_split}'"
                + (f"; missing {missing}" if missing else "")
                + (f"; extra {extra}" if extra else "")
                + ": every split needs the same class folders"
            )
    index = FolderIndex(path=path, is_zip=is_zip, classes=tuple(classes))
    for split in sorted(grouped, key=lambda s: (SPLIT_NAMES + ("all",)).index(s)):
        names, labels = [], []
        for c, cls in enumerate(classes):
            members = sorted(grouped[split][cls])
            names += members
            labels += [c] * len(members)
        index.splits[split] = (names, np.asarray(labels, dtype=np.int64))
    return index


# --- decoding -------------------------------------------------------------------------------------

_worker_zip: zipfile.ZipFile | None = None


def _worker_init(path: str, is_zip: bool) -> None:
    global _worker_zip
    _worker_zip = zipfile.ZipFile(path) if is_zip else None


def read_member(root: Path, name: str, zf: zipfile.ZipFile | None) -> bytes:
    """The raw bytes of one image file, from the zip or the directory."""
    if zf is None:
        return (root / name).read_bytes()
    info = zf.getinfo(name)
    if info.file_size > MAX_MEMBER_BYTES:
        raise ValueError(f"{info.file_size} bytes is too large for an image")
    return zf.read(info)


def decode_image(data: bytes, size: tuple[int, int] | None) -> np.ndarray:
    """Decode one image file to uint8 H×W×C (C = 1 for greyscale, 3 otherwise), resized if asked.

    Whatever goes wrong in the decoder becomes an `UnreadableImage` saying why.
    """
    try:
        return _decode(data, size)
    except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a bad file
        raise UnreadableImage(_decoder_reason(e)) from e


def _decoder_reason(e: BaseException) -> str:
    """Why the decoder failed, in words: PIL's messages name the in-memory buffer it read
    ("<_io.BytesIO object at 0x…>"), which means nothing to a user."""
    if isinstance(e, Image.UnidentifiedImageError):
        return "not a recognised image format; damaged, or not an image"
    text = _BUFFER_REPR.sub("the file", str(e)).strip()
    if isinstance(e, OSError) and text:
        return text  # PIL's own wording: "image file is truncated (3 bytes not processed)"
    return describe_failure(e)


_BUFFER_REPR = re.compile(r"<_io\.[^>]*>|<[\w.]+ object at 0x[0-9a-fA-F]+>")


def _decode(data: bytes, size: tuple[int, int] | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(io.BytesIO(data))
        img.load()
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.int64)
        shift = 8 if img.mode.startswith("I;16") or arr.max() > 255 else 0
        img = Image.fromarray((arr >> shift).clip(0, 255).astype(np.uint8))
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr.clip(0, 1) * 255).round().astype(np.uint8))
    elif img.mode in ("1", "L", "LA"):
        img = img.convert("L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA").convert("RGB")
    elif img.mode != "RGB":
        img = img.convert("RGB")  # alpha is dropped; CMYK/YCbCr/palette converted
    if size is not None and img.size != (size[1], size[0]):
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def describe_failure(e: BaseException) -> str:
    """Why one file could not be read (decoding or reading it), without the file's name."""
    if isinstance(e, UnreadableImage):
        return str(e)
    text = _BUFFER_REPR.sub("the file", str(e)).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _decode_chunk(
    root: str, names: list[str], size: tuple[int, int] | None
) -> list[np.ndarray | str]:
    """Decode a list of files; each entry is an H×W×C array or the reason it failed."""
    out: list[np.ndarray | str] = []
    for name in names:
        try:
            out.append(decode_image(read_member(Path(root), name, _worker_zip), size))
        except Exception as e:  # noqa: BLE001 - any decoder failure marks the file bad
            out.append(describe_failure(e))
    return out


@dataclass
class Decoded:
    """Decoded images of one split: the uint8 array, labels and the files that were skipped."""

    images: np.ndarray
    labels: np.ndarray
    skipped: list[tuple[str, str]]


def decode_split(
    index: FolderIndex,
    split: str,
    size: tuple[int, int] | None,
    on_bad_image: str = "error",
    workers: int | None = None,
    progress: bool = True,
) -> Decoded:
    """Decode every image of a split into one N×C×H×W uint8 array (worker processes, progress)."""
    check_policy(on_bad_image)
    names, labels = index.splits[split]
    results = list(_run_decoders(index, names, size, workers, progress, f"decoding {split}"))
    skipped = [(n, r) for n, r in zip(names, results, strict=True) if isinstance(r, str)]
    if skipped and on_bad_image == "error":
        raise DataError(bad_image_message(index.path, skipped))
    good = [i for i, r in enumerate(results) if not isinstance(r, str)]
    if not good:
        raise DataError(f"{index.path}: none of the {len(names)} images of '{split}' could be read")
    arrays = [results[i] for i in good]
    shapes = {a.shape[:2] for a in arrays}  # type: ignore[union-attr]
    if len(shapes) > 1:
        first = arrays[0].shape[:2]  # type: ignore[union-attr]
        j = next(k for k, a in enumerate(arrays) if a.shape[:2] != first)  # type: ignore[union-attr]
        raise DataError(
            f"{index.path}: images differ in size ('{names[good[0]]}' is {first[0]}×{first[1]}, "
            f"'{names[good[j]]}' is {arrays[j].shape[0]}×{arrays[j].shape[1]}); pass "  # type: ignore[union-attr]
            f"size=(H, W) (--size) to resize them all"
        )
    channels = max(a.shape[2] for a in arrays)  # type: ignore[union-attr]
    h, w = next(iter(shapes))
    images = np.empty((len(arrays), channels, h, w), dtype=np.uint8)
    for k, a in enumerate(arrays):
        images[k] = a.transpose(2, 0, 1)  # a 1-channel image broadcasts to 3 when others are RGB
    return Decoded(images, labels[good], skipped)


def _run_decoders(
    index: FolderIndex,
    names: list[str],
    size: tuple[int, int] | None,
    workers: int | None,
    progress: bool,
    label: str,
) -> Iterator[np.ndarray | str]:
    workers = workers or min(os.cpu_count() or 1, 8)
    chunk = 512
    chunks = [names[i : i + chunk] for i in range(0, len(names), chunk)]
    with progress_bar(label, total=len(names), unit="img", enabled=progress) as advance:
        if workers <= 1 or len(names) < 2 * chunk:
            _worker_init(str(index.path), index.is_zip)
            try:
                for c in chunks:
                    yield from _decode_chunk(str(index.path), c, size)
                    advance(len(c))
            finally:
                _close_worker_zip()
            return
        pool = ProcessPoolExecutor(
            workers,
            mp_context=_mp_context(),
            initializer=_worker_init,
            initargs=(str(index.path), index.is_zip),
        )
        try:
            futures = [pool.submit(_decode_chunk, str(index.path), c, size) for c in chunks]
            for c, fut in zip(chunks, futures, strict=True):
                yield from fut.result()
                advance(len(c))
        finally:  # on Ctrl-C or an error, drop the chunks not started rather than decode them
            pool.shutdown(wait=True, cancel_futures=True)


def _close_worker_zip() -> None:
    global _worker_zip
    if _worker_zip is not None:
        _worker_zip.close()
        _worker_zip = None


def _mp_context():
    # fork is cheapest and safe here: workers only run PIL and NumPy, never torch ops.
    return mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")


# --- helpers --------------------------------------------------------------------------------------


def _parts(name: str) -> tuple[str, ...]:
    return tuple(p for p in name.split("/") if p)


def _is_image(name: str) -> bool:
    """An image suffix, outside hidden (".x") and macOS resource ("__MACOSX") folders."""
    dot = name.rfind(".")
    if dot < 0 or name[dot:].lower() not in IMAGE_SUFFIXES:
        return False
    wrapped = "/" + name
    return "/." not in wrapped and "/__MACOSX/" not in wrapped + "/"


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            yield full.relative_to(root).as_posix(), full


def _walk_dirs(root: Path) -> Iterator[str]:
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            yield (Path(dirpath) / d).relative_to(root).as_posix()


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(
            f"{path} is not a readable zip file ({e}); re-create it or give the folder instead"
        ) from e


# --- the source -----------------------------------------------------------------------------------


def load_folder(
    path: str | os.PathLike,
    split: str = "train",
    size: int | Sequence[int] | None = None,
    on_bad_image: str = "error",
    cache: bool = True,
    progress: bool = True,
) -> ImageSet:
    """Load one split of an image folder or zip, decoding once and caching the uint8 result.

    A folder without split tops has one split, ``all``; ``train``/``test`` of it are a fixed
    stratified 80/20 split (seed 0), see `striate.data.splits.derived_split`.
    """
    path = Path(path)
    size = parse_size(size)
    check_policy(on_bad_image)
    if not path.exists():
        raise DataError(f"{path} does not exist: give an image folder or a .zip of one")
    fp = fingerprint(path)
    indexed: list[FolderIndex] = []

    def index() -> FolderIndex:  # scanned at most once per call, and not at all on a cache hit
        if not indexed:
            indexed.append(scan(path))
        return indexed[0]

    def decoded(split_name: str) -> ImageSet | None:
        key = decode_cache.cache_key(fp, split_name, size)
        hit = decode_cache.load(key) if cache else None
        if hit is not None:
            images, labels, info = hit
            classes, skipped = tuple(info["classes"]), [tuple(s) for s in info["skipped"]]
        else:
            if split_name not in index().splits:
                return None
            d = decode_split(index(), split_name, size, on_bad_image, progress=progress)
            classes, skipped = index().classes, d.skipped
            if cache:
                info = {"classes": classes, "skipped": skipped}
                info.update(source=str(Path(path).resolve()), split=split_name)
                decode_cache.store(key, d.images, d.labels, info)
            images, labels = torch.from_numpy(d.images), torch.from_numpy(d.labels)
        if skipped:
            if on_bad_image == "error":
                raise DataError(bad_image_message(path, skipped))
            warnings.warn(
                skipped_message(path, f"'{split_name}'", skipped), StriateWarning, stacklevel=3
            )
        note = f", {len(skipped)} unreadable skipped" if skipped else ""
        return ImageSet(images, labels, classes, f"{path} [{split_name}{note}]")

    ds = decoded(split)
    if ds is not None:
        return ds
    available = list(index().splits)
    if available == ["all"] and split in ("train", "test"):
        return derived_split(decoded("all"), split)
    raise DataError(
        f"{path} has no split '{split}'; it has {', '.join(available)}"
        + (" (and train/test as a fixed 80/20 split of all)" if available == ["all"] else "")
    )


def check_policy(on_bad_image: str) -> None:
    """A ConfigError unless `on_bad_image` is one of `BAD_IMAGE_POLICIES`."""
    one_of("", "on_bad_image", on_bad_image, BAD_IMAGE_POLICIES)


def bad_image_message(path: Path, skipped: list[tuple[str, str]]) -> str:
    """The error for the first unreadable image under on_bad_image='error'."""
    name, reason = skipped[0]
    more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
    return (
        f"{path}: cannot read image '{name}': {reason}{more}; fix or remove it, or pass "
        f"on_bad_image='skip' (--on-bad-image skip) to leave unreadable files out"
    )


def skipped_message(path: Path, where: str, skipped: list[tuple[str, str]], show: int = 3) -> str:
    """One line for the files left out under on_bad_image='skip': how many, and the first few
    by name (the path inside a zip) with the reason."""
    n = len(skipped)
    names = ", ".join(f"{name} ({reason})" for name, reason in skipped[:show])
    more = f", and {n - show} more" if n > show else ""
    return f"{path}: skipped {n} unreadable image{'s' if n != 1 else ''} in {where}: {names}{more}"
