"""MNIST (or Fashion-MNIST) as NumPy arrays for the scratch engine, from the official IDX files,
read by striate's strict IDX parser, without torch.

    x, y = load_mnist_arrays("../shared/data", "train")   # (60000, 784) float32 in [0, 1], int64
    x, y = load_mnist_arrays("../shared/data", "test", normalize=True)  # (x - 0.1307) / 0.3081

Unlike `striate.data.load_mnist`, nothing is downloaded: the files must be there already.
"""

from __future__ import annotations

import os

import numpy as np

from striate.checks import boolean, one_of, positive_int
from striate.errors import DataError
from striate.idx_format import MNIST_FILES, find_idx_pair, read_mnist_pair
from striate.paths import dataset_dirs

__all__ = ["MEAN_STD", "VARIANTS", "load_mnist_arrays"]

VARIANTS = ("mnist", "fashion-mnist")
# the training sets' pixel mean and std on the 0-1 scale (MNIST's are the usual 0.1307, 0.3081;
# striate's Normalizer fitted on each training set gives the same to 4 places)
MEAN_STD = {"mnist": (0.1307, 0.3081), "fashion-mnist": (0.2860, 0.3530)}


def load_mnist_arrays(
    root: str | os.PathLike | None = None,
    split: str = "train",
    *,
    variant: str = "mnist",
    flatten: bool = True,
    limit: int | None = None,
    normalize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 in [0, 1], shaped (N, 784) with `flatten`, else (N, 1, 28, 28), and
    labels as int64; the first `limit` samples only when given. With `normalize`, the images are
    then standardised with the variant's training-set mean and std (`MEAN_STD`).

    Looks where `striate.data.load_mnist` does (`striate.paths.dataset_dirs`: `root/<variant>`,
    then `root`; without a root, `data_root()/<variant>`) for the official `.gz` files or their
    unpacked versions.
    """
    variant = one_of("load_mnist_arrays", "variant", variant, VARIANTS)
    split = one_of("load_mnist_arrays", "split", split, tuple(MNIST_FILES))
    flatten = boolean("load_mnist_arrays", "flatten", flatten)
    normalize = boolean("load_mnist_arrays", "normalize", normalize)
    if limit is not None:
        limit = positive_int("load_mnist_arrays", "limit", limit)
    dirs, _ = dataset_dirs(root, variant)
    pair = next((p for d in dirs if (p := find_idx_pair(d, MNIST_FILES[split])) is not None), None)
    if pair is None:
        images_name, labels_name = MNIST_FILES[split]
        raise DataError(
            f"{variant} {split}: {images_name}(.gz) and {labels_name}(.gz) not found in "
            f"{' or '.join(map(str, dirs))}; put the official IDX files there or give --root"
        )
    images, labels = read_mnist_pair(*pair, variant)
    images, labels = images[:limit], labels[:limit]
    x = images.astype(np.float32) / np.float32(255)
    if normalize:
        mean, std = MEAN_STD[variant]
        x = (x - np.float32(mean)) / np.float32(std)
    x = x.reshape(len(x), -1) if flatten else x[:, None]
    return x, labels.astype(np.int64)
