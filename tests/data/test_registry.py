"""load_dataset: names, paths, the bundled digits, resizing, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from striate import load_dataset
from striate.data.registry import SOURCES, available_splits
from striate.errors import DataError, StriateError
from tests.data.folder_fixtures import make_folder


def test_digits_works_with_no_files_and_matches_scikit_learn():
    ref = load_digits()
    all_ = load_dataset("digits", "all")
    assert len(all_) == 1797 and all_.shape == (1, 8, 8)
    np.testing.assert_array_equal(all_.images[:, 0].numpy(), np.rint(ref.images * 255 / 16))
    np.testing.assert_array_equal(all_.labels.numpy(), ref.target)
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    counts = all_.class_counts().double()
    assert torch.allclose(test.class_counts().double(), counts * 0.2, atol=1)


def test_unknown_names_and_paths(tmp_path):
    with pytest.raises(DataError, match=r"unknown dataset 'mnsit'.*mnist"):
        load_dataset("mnsit")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DataError, match="don't know how to read '.csv'"):
        load_dataset(tmp_path / "x.csv")
    with pytest.raises(DataError, match="no split 'validation'"):
        load_dataset("mnist", "validation")
    with pytest.raises(StriateError, match="unexpected options"):
        load_dataset(make_root(tmp_path), label_mode="coarse")


def make_root(tmp_path):
    make_folder(tmp_path / "pets")
    return tmp_path / "pets"


def test_paths_dispatch_to_folders_relative_to_root(tmp_path):
    make_root(tmp_path)
    ds = load_dataset("pets", "test", root=tmp_path, progress=False)
    assert ds.classes == ("cat", "dog", "owl") and len(ds) == 12
    assert available_splits("pets", tmp_path) == ["train", "test"]
    assert available_splits("mnist") == ["train", "test"]
    assert available_splits("digits") == ["train", "test"]


def test_resize_matches_torch_interpolate():
    ds = load_dataset("digits", "test", size=(16, 12))
    assert ds.shape == (1, 16, 12)
    ref = torch.nn.functional.interpolate(
        load_dataset("digits", "test").images.float(),
        size=(16, 12),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    assert torch.equal(ds.images, ref.round().clamp(0, 255).to(torch.uint8))
    with pytest.raises(StriateError, match="size must be"):
        load_dataset("digits", size=(0, 3))


def test_mnist_by_name_from_shared_data(shared_data):
    train = load_dataset("mnist", "train", root=shared_data)
    assert len(train) == 60_000 and train.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert train.class_counts().tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    test = load_dataset("mnist", "test", root=shared_data / "mnist")
    assert len(test) == 10_000 and test.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_every_source_is_described():
    for s in SOURCES.values():
        assert s.description and s.files and "train" in s.splits


def test_striate_max_images_keeps_a_stratified_sample_of_every_split(monkeypatch):
    full = load_dataset("digits", "train")
    monkeypatch.setenv("STRIATE_MAX_IMAGES", "100")
    small = load_dataset("digits", "train")
    assert len(small) == 100 and "STRIATE_MAX_IMAGES: 100 of 1437" in small.source
    share = torch.bincount(full.labels, minlength=10) * 100 / len(full)
    counts = torch.bincount(small.labels, minlength=10)
    assert ((counts - share).abs() < 1).all()  # each class its share, rounded down or up
    assert torch.equal(small.images, load_dataset("digits", "train").images)  # seed 0: the same
    assert len(load_dataset("digits", "test")) == 100
    monkeypatch.setenv("STRIATE_MAX_IMAGES", "5000")
    assert len(load_dataset("digits", "train")) == len(full)
    for bad in ("0", "-3", "ten"):
        monkeypatch.setenv("STRIATE_MAX_IMAGES", bad)
        with pytest.raises(DataError, match="STRIATE_MAX_IMAGES must be a positive"):
            load_dataset("digits", "train")
