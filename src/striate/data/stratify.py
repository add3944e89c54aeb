"""The stratified sampling under `striate.data.splits` and `ImageSet.sample`, on label arrays.

Class codes and counts (`encode`), how many samples of each class go to the test side
(`allocate`: the exact share rounded down or up), and which ones (`stratified`), all seeded and
vectorised in torch. Nothing here knows about ImageSet, so `imageset` and `splits` both build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from striate.checks import integer
from striate.errors import StriateError

LabelsLike = torch.Tensor | np.ndarray | Sequence[int]

__all__ = ["allocate", "encode", "generator", "group_by_class", "stratified", "held_out_count"]


def stratified(
    codes: torch.Tensor, counts: torch.Tensor, n_test: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted `(train, test)` indices with `n_test` test samples, each class its share of them
    (`allocate`), the samples of a class picked in a seeded random order."""
    gen = generator(seed)
    alloc = allocate(counts, n_test, gen)
    idx, sorted_codes, rank = group_by_class(codes, counts, gen)
    to_test = rank < alloc[sorted_codes]  # the first alloc[c] of each shuffled class
    return idx[~to_test].sort().values, idx[to_test].sort().values


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed` (an integer)."""
    return torch.Generator().manual_seed(integer("", "seed", seed))  # type: ignore[arg-type]


def encode(
    labels: LabelsLike, classes: Sequence[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Class codes 0..K-1 per sample, the count of each class, and each class's name (with
    `classes`, the names of the label values)."""
    if isinstance(labels, torch.Tensor):
        t = labels
    else:
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


def held_out_count(size: float | int, n: int, name: str) -> int:
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


def allocate(counts: torch.Tensor, n_test: int, gen: torch.Generator) -> torch.Tensor:
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


def group_by_class(
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
