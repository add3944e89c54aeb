"""Splits: properties on random label vectors (hypothesis), fold sizes against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import KFold, StratifiedKFold

from striate.data.imageset import ImageSet
from striate.data.splits import kfold, stratified_split, train_val_split
from striate.errors import StriateError

label_lists = st.lists(st.integers(0, 6), min_size=2, max_size=300)
fractions = st.floats(0.02, 0.98)


def _test_count(test_size, n):
    return math.ceil(round(test_size * n, 6)) if isinstance(test_size, float) else test_size


def _check_partition(parts, n):
    everything = torch.cat(parts)
    assert everything.dtype == torch.int64
    assert torch.equal(everything.sort().values, torch.arange(n))  # disjoint and covering
    for p in parts:
        assert torch.equal(p, p.sort().values)


@settings(max_examples=150, deadline=None)
@given(
    labels=label_lists,
    test_size=st.one_of(fractions, st.integers(1, 299)),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_properties(labels, test_size, seed):
    n = len(labels)
    n_test = _test_count(test_size, n)
    if not 0 < n_test < n:
        with pytest.raises(StriateError, match="both sides"):
            stratified_split(labels, test_size, seed)
        return
    y = torch.tensor(labels)
    train, test = stratified_split(labels, test_size, seed)
    _check_partition([train, test], n)
    assert len(test) == n_test

    counts = torch.bincount(y, minlength=7)
    test_counts = torch.bincount(y[test], minlength=7)
    exact = counts.double() * n_test / n
    assert ((test_counts - exact).abs() <= 1).all()  # within one of the exact proportion

    # Every class with >= 2 samples appears on a side whenever the rounding leaves room: the
    # classes whose exact share of that side rounds down to 0 number at most the samples left
    # over after rounding every share of that side down.
    big = counts >= 2
    for side, size in ((test, n_test), (train, n - n_test)):
        floors = (counts * size) // n
        if int((big & (floors == 0)).sum()) <= size - int(floors.sum()):
            assert (torch.bincount(y[side], minlength=7)[big] > 0).all()

    again = stratified_split(np.array(labels), test_size, seed)
    assert torch.equal(again[0], train) and torch.equal(again[1], test)
    pairs = zip(counts.tolist(), test_counts.tolist(), strict=True)
    n_splits = math.prod(math.comb(c, t) for c, t in pairs)
    if n_splits >= 1000:  # enough freedom that five other seeds cannot all agree by chance
        others = [stratified_split(y, test_size, seed + s)[1] for s in range(1, 6)]
        assert any(not torch.equal(o, test) for o in others)


@st.composite
def stratifiable(draw):
    """Labels where every class has at least k samples, in a shuffled order, and k."""
    k = draw(st.integers(2, 6))
    counts = draw(st.lists(st.integers(k, 40), min_size=1, max_size=6))
    labels = np.repeat(np.arange(len(counts)), counts)
    order = draw(st.permutations(range(len(labels))))
    return labels[list(order)], k


@settings(max_examples=100, deadline=None)
@given(case=stratifiable(), seed=st.integers(0, 2**31))
def test_stratified_kfold_against_sklearn(case, seed):
    labels, k = case
    n, n_classes = len(labels), labels.max() + 1
    folds = kfold(torch.from_numpy(labels), k=k, seed=seed)
    assert len(folds) == k
    _check_partition([val for _, val in folds], n)
    for train, val in folds:
        _check_partition([train, val], n)

    ours = np.array([np.bincount(labels[val.numpy()], minlength=n_classes) for _, val in folds])
    ref = np.array(
        [
            np.bincount(labels[v], minlength=n_classes)
            for _, v in StratifiedKFold(k).split(labels, labels)
        ]
    )
    # the same fold sizes per class as scikit-learn (which folds get the extra sample may differ)
    assert np.array_equal(np.sort(ours, axis=0), np.sort(ref, axis=0))
    assert np.array_equal(np.sort(ours.sum(1)), np.sort(ref.sum(1)))
    assert (ours.max(0) - ours.min(0) <= 1).all() and np.ptp(ours.sum(1)) <= 1

    again = kfold(labels.tolist(), k=k, seed=seed)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))


@settings(max_examples=50, deadline=None)
@given(n=st.integers(2, 500), k=st.integers(2, 10), seed=st.integers(0, 2**31))
def test_plain_kfold_against_sklearn(n, k, seed):
    if k > n:
        with pytest.raises(StriateError, match=f"only {n} samples"):
            kfold(n, k=k)
        return
    folds = kfold(n, k=k, seed=seed)
    _check_partition([val for _, val in folds], n)
    ours = sorted(len(val) for _, val in folds)
    assert ours == sorted(len(v) for _, v in KFold(k).split(np.zeros(n)))


def test_kfold_seed_changes_membership_and_stratify_false_ignores_classes():
    labels = torch.arange(100) % 4
    a, b = kfold(labels, k=5, seed=0), kfold(labels, k=5, seed=1)
    assert not torch.equal(a[0][1], b[0][1])
    # one class has a single sample: fine without stratification, refused with it
    labels = torch.cat([torch.zeros(20, dtype=torch.int64), torch.ones(1, dtype=torch.int64)])
    folds = kfold(labels, k=5, stratify=False)
    assert sorted(len(v) for _, v in folds) == [4, 4, 4, 4, 5]
    with pytest.raises(StriateError, match="class 1 has only 1 samples"):
        kfold(labels, k=5)


def test_rare_class_lands_on_both_sides():
    # exact test shares are 5.39, 5.39 and 0.196: plain largest-remainder rounding would give the
    # spare sample to class 0 or 1 and leave class 2 out of the test side
    labels = torch.tensor([0] * 50 + [1] * 50 + [2] * 2)
    for seed in range(10):
        train, test = stratified_split(labels, 0.1, seed)
        assert torch.bincount(labels[test]).tolist() == [5, 5, 1]
        assert torch.bincount(labels[train]).tolist() == [45, 45, 1]


def test_any_label_values_and_counts():
    labels = np.array([-3, 7, 7, 100, -3, 7, 100, -3] * 5)
    train, test = stratified_split(labels, 12, seed=3)
    assert len(test) == 12 and len(train) == 28
    for value in (-3, 7, 100):
        assert abs((labels[test.numpy()] == value).sum() - (labels == value).sum() * 12 / 40) <= 1


def test_float_fraction_rounding_matches_exact_count():
    # 0.3 * 10 is 3.0000000000000004 in floating point: still 3 test samples
    train, test = stratified_split(torch.arange(10) % 2, 0.3)
    assert len(test) == 3 and len(train) == 7


def _imageset(n=200, n_classes=4, source="toy"):
    index = torch.arange(n)
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = index % 256  # the image records its own index, to check the pairing
    images[:, 0, 0, 1] = index // 256
    labels = torch.arange(n) * 7 % n_classes
    return ImageSet(images, labels, tuple(f"c{i}" for i in range(n_classes)), source)


def _index(ds):
    return ds.images[:, 0, 0, 0].long() + 256 * ds.images[:, 0, 0, 1].long()


@pytest.mark.parametrize("stratify", [True, False])
def test_train_val_split(stratify):
    ds = _imageset()
    train, val = train_val_split(ds, val_size=0.1, seed=4, stratify=stratify)
    assert (len(train), len(val)) == (180, 20)
    assert train.source == "toy [train 90%, seed 4]" and val.source == "toy [val 10%, seed 4]"
    assert train.classes == ds.classes
    for part in (train, val):
        assert torch.equal(part.labels, ds.labels[_index(part)])  # images still paired with labels
    seen = torch.cat(
        [t.images[:, 0, 0, 0].long() + 256 * t.images[:, 0, 0, 1].long() for t in (train, val)]
    )
    assert torch.equal(seen.sort().values, torch.arange(200))
    if stratify:
        assert val.class_counts().tolist() == [5, 5, 5, 5]
    again = train_val_split(ds, val_size=0.1, seed=4, stratify=stratify)[1]
    assert torch.equal(again.images, val.images)


def test_train_val_split_counts_and_source_without_name():
    train, val = train_val_split(_imageset(n=7, source=""), val_size=2)
    assert len(val) == 2 and train.source == "[train 71.4%, seed 0]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([0, 1, 0, 1], 0.0), "out of range"),
        (([0, 1, 0, 1], 1.0), "out of range"),
        (([0, 1, 0, 1], -0.5), "out of range"),
        (([0, 1, 0, 1], 0), "at least 1"),
        (([0, 1, 0, 1], 4), "both sides"),
        (([0, 1, 0, 1], 0.9), "both sides"),
        (([0], 0.5), "both sides"),
        (([], 0.5), "empty"),
        (([0.0, 1.0], 0.5), "integer"),
        (([[0, 1]], 0.5), "1-D"),
        (([0, 1, 0, 1], "half"), "fraction"),
        (([0, 1, 0, 1], True), "fraction"),
    ],
)
def test_stratified_split_errors(args, message):
    with pytest.raises(StriateError, match=message):
        stratified_split(*args)


def test_kfold_errors():
    with pytest.raises(StriateError, match="at least 2 folds"):
        kfold(10, k=1)
    with pytest.raises(StriateError, match="only 3 samples"):
        kfold([0, 1, 0], k=4)
    with pytest.raises(StriateError, match="at least one sample"):
        kfold(0)
    with pytest.raises(StriateError, match="empty"):
        kfold([])
    with pytest.raises(StriateError, match="whole number"):
        kfold(10, k=2.5)
    with pytest.raises(StriateError, match=r"class 1 \('c1'\) has only 2 samples"):
        ds = _imageset(n=10, n_classes=4)
        kfold(ds, k=3)
    with pytest.raises(StriateError, match="ImageSet"):
        train_val_split(torch.zeros(4))
