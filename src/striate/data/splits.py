"""Seeded train/test splits and k-fold indices, stratified by class, vectorised in torch.

Every function returns sorted int64 index tensors (on the CPU) and is deterministic for a seed.
Stratified splits give each class its exact share of the test side rounded down or up (so within
one sample of the exact proportion) and, whenever that rounding allows it, put every class with at
least two samples on both sides (scikit-learn's StratifiedShuffleSplit may leave a rare class out
of the test side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from striate.data.imageset import ImageSet
from striate.errors import StriateError

LabelsLike = torch.Tensor | np.ndarray | Sequence[int]

__all__ = ["kfold", "stratified_split", "train_val_split"]


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
    n_test = _test_count(test_size, len(codes), "test_size")
    return _stratified(codes, counts, n_test, seed)


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
    n_val = _test_count(val_size, n, "val_size")
    if stratify:
        codes, counts, _ = _encode(ds.labels)
        train_idx, val_idx = _stratified(codes, counts, n_val, seed)
    else:
        perm = torch.randperm(n, generator=_generator(seed))
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
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise StriateError(f"k must be a whole number of folds (2 or more), got {k!r}")
    k = int(k)
    if k < 2:
        raise StriateError(f"k={k} folds: cross-validation needs at least 2 folds")
    gen = _generator(seed)
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
        idx, _, _ = _group_by_class(codes, counts, gen)
    else:
        idx = torch.randperm(n, generator=gen)
    fold = torch.arange(n) % k  # deal the (grouped, shuffled) samples out in turn
    folds = []
    for f in range(k):
        in_fold = fold == f
        folds.append((idx[~in_fold].sort().values, idx[in_fold].sort().values))
    return folds


def _stratified(
    codes: torch.Tensor, counts: torch.Tensor, n_test: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    gen = _generator(seed)
    alloc = _allocate(counts, n_test, gen)
    idx, sorted_codes, rank = _group_by_class(codes, counts, gen)
    to_test = rank < alloc[sorted_codes]  # the first alloc[c] of each shuffled class
    return idx[~to_test].sort().values, idx[to_test].sort().values


def _generator(seed: int) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise StriateError(f"seed must be an integer, got {seed!r}")
    return torch.Generator().manual_seed(int(seed))


def _encode(labels: LabelsLike | ImageSet) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Class codes 0..K-1 per sample, the count of each class, and each class's name."""
    if isinstance(labels, ImageSet):
        t, classes = labels.labels, labels.classes
    else:
        classes = None
        try:
            t = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as e:
            raise StriateError(
                f"labels must be a 1-D sequence of integer class labels, "
                f"got {type(labels).__name__}"
            ) from e
    if t.ndim != 1:
        raise StriateError(f"labels must be 1-D (one per sample), got shape {tuple(t.shape)}")
    if len(t) == 0:
        raise StriateError("cannot split an empty set of labels: there are no samples")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise StriateError(f"labels must be integer class labels, got dtype {t.dtype}")
    values, codes, counts = torch.unique(
        t.to("cpu", torch.int64), return_inverse=True, return_counts=True
    )
    if classes is not None:
        names = [f"{int(v)} ({classes[int(v)]!r})" for v in values]
    else:
        names = [str(int(v)) for v in values]
    return codes, counts, names


def _test_count(size: float | int, n: int, name: str) -> int:
    """Samples on the test side for `size` (a fraction or a count) of `n`; both sides non-empty."""
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise StriateError(f"{name} must be a fraction in (0, 1) or a count, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0 < size < 1:
            raise StriateError(
                f"{name}={size} is out of range: give a fraction in (0, 1) or a whole count"
            )
        # round() first so that e.g. 0.3 * 10 = 3.0000000000000004 gives 3, not 4
        n_test = math.ceil(round(float(size) * n, 6))
    else:
        n_test = int(size)
        if n_test < 1:
            raise StriateError(f"{name}={n_test} is out of range: a count must be at least 1")
    if not 0 < n_test < n:
        raise StriateError(
            f"{name}={size} of {n} samples gives {n_test} held-out and {n - n_test} training "
            f"samples: both sides need at least one, so use a {name} between 1 and {n - 1} "
            f"samples"
        )
    return n_test


def _allocate(counts: torch.Tensor, n_test: int, gen: torch.Generator) -> torch.Tensor:
    """Test samples per class: each class's exact share rounded down or up, summing to n_test.

    Exact integer arithmetic: share_c = counts_c * n_test / n = floor + rem / n. The `r` classes
    rounded up are chosen first among those whose test side would be empty (at least two samples),
    last among those whose train side would become empty, and otherwise by largest `rem`.
    """
    n = int(counts.sum())
    prod = counts * n_test
    alloc, rem = prod // n, prod % n
    r = n_test - int(alloc.sum())  # 0 <= r < number of classes with rem > 0
    if r > 0:
        needs_test = (alloc == 0) & (counts >= 2)
        empties_train = (alloc + 1 == counts) & (counts >= 2)
        group = needs_test.long() - empties_train.long()
        order = torch.randperm(len(counts), generator=gen)  # random tie-break
        order = order[torch.sort(rem[order], descending=True, stable=True).indices]
        order = order[torch.sort(group[order], descending=True, stable=True).indices]
        order = order[rem[order] > 0]  # never round up an exact share
        alloc[order[:r]] += 1
    return alloc


def _group_by_class(
    codes: torch.Tensor, counts: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample indices grouped by class (random order within a class), their codes, and ranks.

    `rank[j]` is the position of `idx[j]` among the samples of its class.
    """
    n = len(codes)
    perm = torch.randperm(n, generator=gen)
    sorted_codes, order = torch.sort(codes[perm], stable=True)
    idx = perm[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[sorted_codes]
    return idx, sorted_codes, rank
