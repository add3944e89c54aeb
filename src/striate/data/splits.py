"""Seeded train/test splits and k-fold indices, stratified by class, vectorised in torch.

Every function returns sorted int64 index tensors (on the CPU) and is deterministic for a seed.
Stratified splits give each class its exact share of the test side rounded down or up (so within
one sample of the exact proportion) and, whenever that rounding allows it, put every class with at
least two samples on both sides (scikit-learn's StratifiedShuffleSplit may leave a rare class out
of the test side).
"""

from __future__ import annotations

import numpy as np
import torch

from striate.checks import integer
from striate.data.imageset import ImageSet
from striate.data.stratify import (
    LabelsLike,
    encode,
    generator,
    group_by_class,
    held_out_count,
    stratified,
)
from striate.errors import DataError, StriateError

__all__ = ["derived_split", "kfold", "stratified_split", "train_val_split"]

# a source that ships as one set (scikit-learn's digits, a flat image folder): its train/test
DERIVED_TEST_FRACTION = 0.2
DERIVED_SEED = 0


def stratified_split(
    labels: LabelsLike | ImageSet, test_size: float | int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split sample indices into `(train_idx, test_idx)` keeping each class's proportion.

    `test_size` is a fraction in (0, 1) (the test side gets `ceil(test_size * n)` samples, as in
    scikit-learn) or a count of samples. Class `c` with `n_c` samples puts `n_c * n_test / n`
    samples, rounded down or up, in the test side; the classes rounded up are first those whose test
    side would otherwise be empty, then those with the largest fractional share, and last those
    whose train side would become empty (ties broken by `seed`).
    """
    codes, counts, _ = _encode(labels)
    n_test = held_out_count(test_size, len(codes), "test_size")
    return stratified(codes, counts, n_test, seed)


def train_val_split(
    ds: ImageSet, val_size: float | int = 0.1, seed: int = 0, stratify: bool = True
) -> tuple[ImageSet, ImageSet]:
    """Split an ImageSet into `(train, val)` sets; their `source` records the split and the seed."""
    if not isinstance(ds, ImageSet):
        raise StriateError(
            f"train_val_split expects an ImageSet, got {type(ds).__name__}: "
            f"use stratified_split for plain label arrays"
        )
    n = len(ds)
    if n == 0:
        raise StriateError(f"cannot split an empty ImageSet ({ds.source or 'no source'})")
    n_val = held_out_count(val_size, n, "val_size")
    if stratify:
        codes, counts, _ = encode(ds.labels)
        train_idx, val_idx = stratified(codes, counts, n_val, seed)
    else:
        perm = torch.randperm(n, generator=generator(seed))
        train_idx, val_idx = perm[n_val:].sort().values, perm[:n_val].sort().values

    def part(index: torch.Tensor, name: str) -> ImageSet:
        pct = f"{100 * len(index) / n:.3g}%"
        note = f"[{name} {pct}, seed {seed}]"
        source = f"{ds.source} {note}" if ds.source else note
        index = index.to(ds.images.device)
        return ImageSet(ds.images[index], ds.labels[index], ds.classes, source)

    return part(train_idx, "train"), part(val_idx, "val")


def kfold(
    labels_or_n: LabelsLike | ImageSet | int, k: int = 5, seed: int = 0, stratify: bool = True
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`k` pairs `(train_idx, val_idx)` whose validation folds partition the samples.

    Given labels and `stratify`, the samples of each class are shuffled (by `seed`) and dealt out
    in turn across the folds, in class order, as scikit-learn's StratifiedKFold does: fold sizes
    differ by at most one overall and within each class. Given a count `n` (or `stratify=False`),
    the folds are a shuffled deal of all samples.
    """
    k = integer("kfold", "k", k, hint="a whole number of folds, 2 or more")
    if k < 2:
        raise StriateError(f"k={k} folds: cross-validation needs at least 2 folds")
    gen = generator(seed)
    if isinstance(labels_or_n, (int, np.integer)) and not isinstance(labels_or_n, bool):
        n = int(labels_or_n)
        if n <= 0:
            raise StriateError(f"kfold needs at least one sample, got n={n}")
        codes = None
    else:
        codes, counts, names = _encode(labels_or_n)
        n = len(codes)
    if k > n:
        raise StriateError(f"k={k} folds but only {n} samples: use k <= {n}")
    if codes is not None and stratify:
        smallest = int(counts.argmin())
        if int(counts[smallest]) < k:
            raise StriateError(
                f"k={k} folds but class {names[smallest]} has only {int(counts[smallest])} "
                f"samples: stratified k-fold needs at least k samples of every class; "
                f"use k <= {int(counts[smallest])} or stratify=False"
            )
        idx, _, _ = group_by_class(codes, counts, gen)
    else:
        idx = torch.randperm(n, generator=gen)
    fold = torch.arange(n) % k  # deal the (grouped, shuffled) samples out in turn
    folds = []
    for f in range(k):
        in_fold = fold == f
        folds.append((idx[~in_fold].sort().values, idx[in_fold].sort().values))
    return folds


def _encode(labels: LabelsLike | ImageSet) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`stratify.encode` of labels, or of an ImageSet's labels named by its classes."""
    if isinstance(labels, ImageSet):
        return encode(labels.labels, labels.classes)
    return encode(labels)


def derived_split(ds: ImageSet, split: str) -> ImageSet:
    """`train`/`test` of a source that ships as one set: a fixed stratified 80/20 split, seed 0."""
    if split not in ("train", "test"):
        raise DataError(f"no split '{split}' in {ds.source}; use train, test or all")
    train_idx, test_idx = stratified_split(ds.labels, DERIVED_TEST_FRACTION, seed=DERIVED_SEED)
    idx = train_idx if split == "train" else test_idx
    sub = ds[idx]
    share = 1 - DERIVED_TEST_FRACTION if split == "train" else DERIVED_TEST_FRACTION
    return ImageSet(
        sub.images,
        sub.labels,
        sub.classes,
        f"{ds.source} [{split}: stratified {share:.0%} of all, seed {DERIVED_SEED}]",
    )
