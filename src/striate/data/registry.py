"""`load_dataset` and the registry of named sources (`striate datasets` lists it)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from striate.checks import did_you_mean
from striate.data.cifar import load_cifar
from striate.data.folder import load_folder, parse_size, scan
from striate.data.idx import load_mnist
from striate.data.imageset import ImageSet
from striate.data.npz import load_npz
from striate.data.splits import derived_split
from striate.errors import DataError, StriateError
from striate.registry import Registry


@dataclass(frozen=True)
class Source:
    """A named dataset: how to load one split of it, and what it needs on disk."""

    name: str
    description: str
    files: str
    splits: tuple[str, ...]
    load: Callable[..., ImageSet]  # (root, split, **options) -> ImageSet


def _digits(root: Path | None, split: str) -> ImageSet:
    from sklearn.datasets import load_digits  # scikit-learn's datasets load SciPy: only here

    bunch = load_digits()
    # 8×8 images of values 0..16 (Alpaydin & Kaynak 1998), rescaled to the 0..255 of every source.
    images = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
    ds = ImageSet(
        torch.from_numpy(images),
        torch.from_numpy(bunch.target.astype(np.int64)),
        tuple(str(c) for c in bunch.target_names),
        "digits (scikit-learn)",
    )
    return ds if split == "all" else derived_split(ds, split)


def _mnist(variant: str) -> Callable[..., ImageSet]:
    def load(root: Path | None, split: str) -> ImageSet:
        return load_mnist(root, split, variant)

    return load


def _cifar(variant: str) -> Callable[..., ImageSet]:
    def load(root: Path | None, split: str, **options) -> ImageSet:
        return load_cifar(root, split, variant, **options)

    return load


_IDX_FILES = "{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (IDX; .gz or not)"

SOURCES: Registry[Source] = Registry("dataset")  # the named sources, in `striate datasets` order
for _source in (
    Source(
        "digits",
        "scikit-learn's bundled 8×8 handwritten digits, 1,797 images; needs no files",
        "none (bundled with scikit-learn)",
        ("train", "test", "all"),
        _digits,
    ),
    Source(
        "mnist",
        "handwritten digits, 28×28 grey, 60,000 + 10,000",
        _IDX_FILES,
        ("train", "test"),
        _mnist("mnist"),
    ),
    Source(
        "fashion-mnist",
        "Zalando clothing images, 28×28 grey, 60,000 + 10,000",
        _IDX_FILES,
        ("train", "test"),
        _mnist("fashion-mnist"),
    ),
    Source(
        "cifar10",
        "10 classes of 32×32 colour images, 50,000 + 10,000",
        "cifar-10-python.tar.gz, or cifar-10-batches-py/ (-bin/ for the binary batches)",
        ("train", "test"),
        _cifar("cifar10"),
    ),
    Source(
        "cifar100",
        "100 classes (20 superclasses: label_mode='coarse'), 32×32, 50,000 + 10,000",
        "cifar-100-python.tar.gz, or cifar-100-python/ (cifar-100-binary/)",
        ("train", "test"),
        _cifar("cifar100"),
    ),
):
    SOURCES.add(_source.name, _source, _source.description)
del _source


PATH_KINDS = (
    ("image folder", "DIR with class/xxx.png, or train/ and test/ tops each holding class folders"),
    ("zip of an image folder", "FILE.zip in the same layout, read without extracting"),
    ("arrays", "FILE.npz with x_train, y_train, x_test, y_test (optional classes)"),
)


def load_dataset(
    name_or_path: str | os.PathLike,
    split: str = "train",
    root: str | os.PathLike | None = None,
    *,
    size: int | Sequence[int] | None = None,
    on_bad_image: str = "error",
    cache: bool = True,
    progress: bool = True,
    **options,
) -> ImageSet:
    """Load one split of a named dataset (see `SOURCES`) or of a folder, .zip or .npz path.

    `root` is the folder holding a named dataset's files (ROOT or ROOT/NAME is searched; missing
    files are downloaded there when the network is up). `size` resizes every image to (H, W).
    `on_bad_image` ('error' or 'skip') and `cache` apply to image folders and zips; `options` go to
    the source (e.g. ``label_mode='coarse'`` for cifar100). The environment variable
    STRIATE_MAX_IMAGES=N keeps a stratified sample of at most N images of every split (seed 0),
    for a quick trial of a command or script.
    """
    ds = _load(name_or_path, split, root, size, on_bad_image, cache, progress, **options)
    limit = max_images()
    if limit is None or len(ds) <= limit:
        return ds
    note = f"{ds.source} [STRIATE_MAX_IMAGES: {limit} of {len(ds)}]"
    return dataclasses.replace(ds.sample(limit, seed=0), source=note)


def max_images() -> int | None:
    """STRIATE_MAX_IMAGES as a positive int, None when unset."""
    text = os.environ.get("STRIATE_MAX_IMAGES", "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise DataError(f"STRIATE_MAX_IMAGES must be a positive number of images, got {text!r}")
    return int(text)


def _load(
    name_or_path: str | os.PathLike,
    split: str,
    root: str | os.PathLike | None,
    size: int | Sequence[int] | None,
    on_bad_image: str,
    cache: bool,
    progress: bool,
    **options,
) -> ImageSet:
    name = str(name_or_path)
    if name in SOURCES:
        source = SOURCES[name]
        if split not in source.splits:
            raise DataError(f"{name} has no split '{split}'; it has {', '.join(source.splits)}")
        ds = source.load(Path(root) if root is not None else None, split, **options)
        return resize(ds, size) if size is not None else ds
    path = Path(name_or_path).expanduser()
    if root is not None and not path.is_absolute() and not path.exists():
        path = Path(root) / path
    if not path.exists():
        raise DataError(
            f"unknown dataset '{name}'{did_you_mean(name, SOURCES)}: not a known name "
            f"({', '.join(SOURCES)}) nor an existing path; give a folder, a .zip or a .npz "
            f"(see `striate datasets`)"
        )
    if options:
        raise StriateError(f"unexpected options for {path}: {', '.join(options)}")
    if path.suffix.lower() == ".npz":
        ds = load_npz(path, split)
        return resize(ds, size) if size is not None else ds
    if path.is_dir() or path.suffix.lower() == ".zip":
        return load_folder(path, split, size, on_bad_image, cache, progress)
    raise DataError(
        f"{path}: don't know how to read '{path.suffix or path.name}' files; give an image folder, "
        f"a .zip of one or a .npz (named datasets: {', '.join(SOURCES)})"
    )


def resize(ds: ImageSet, size: int | Sequence[int]) -> ImageSet:
    """Every image resized to `size` (H, W) with antialiased bilinear interpolation, in batches."""
    h, w = parse_size(size)  # type: ignore[misc]
    if ds.shape[1:] == (h, w):
        return ds
    out = torch.empty((len(ds), ds.shape[0], h, w), dtype=torch.uint8)
    for start in range(0, len(ds), 4096):  # chunks bound the float copy
        chunk = ds.images[start : start + 4096].float()
        out[start : start + 4096] = (
            F.interpolate(chunk, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
            .round_()
            .clamp_(0, 255)
            .to(torch.uint8)
        )
    return ImageSet(out, ds.labels, ds.classes, f"{ds.source} [resized to {h}×{w}]")


def available_splits(
    name_or_path: str | os.PathLike, root: str | os.PathLike | None = None
) -> list[str]:
    """The splits worth showing for a source: its own (train/test), or `all` for a flat folder."""
    name = str(name_or_path)
    if name in SOURCES:
        return [s for s in SOURCES[name].splits if s != "all"]
    path = Path(name_or_path).expanduser()
    if root is not None and not path.is_absolute() and not path.exists():
        path = Path(root) / path
    if path.suffix.lower() == ".npz" and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{path} is not a readable .npz file ({e})") from e
        return [s for s in ("train", "test") if f"x_{s}" in keys] or ["train"]
    if path.is_dir() or (path.suffix.lower() == ".zip" and path.is_file()):
        return list(scan(path).splits)
    return ["train"]  # load_dataset will say what is wrong with it
