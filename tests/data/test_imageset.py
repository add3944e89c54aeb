"""ImageSet: validation, indexing, counts, statistics against NumPy, the sample grid, and
stratified samples of a real image zip and folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from striate import ImageSet
from striate.data.plots import grid_gap
from striate.errors import DataError


def _set(n=12, c=3) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, c, 5, 4), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % 3, ("a", "b", "c"), "test")


def test_indexing_and_subsets():
    ds = _set()
    image, label = ds[4]
    assert torch.equal(image, ds.images[4]) and label == 1
    sub = ds[2:5]
    assert isinstance(sub, ImageSet) and len(sub) == 3 and sub.classes == ds.classes
    assert torch.equal(ds[[0, 3]].labels, torch.tensor([0, 0]))
    assert torch.equal(ds[np.array([1, 2])].images, ds.images[1:3])
    assert len(ds[ds.labels == 2]) == 4
    assert ds.shape == (3, 5, 4) and ds.num_classes == 3
    assert "12 images, 3×5×4, 3 classes" in repr(ds)


def test_class_counts_and_pixel_stats_match_numpy():
    ds = _set(n=30)
    assert ds.class_counts().tolist() == [10, 10, 10]
    mean, std = ds.pixel_stats()
    ref = ds.images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean.numpy(), ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std.numpy(), ref.std(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize(
    ("images", "labels", "classes", "match"),
    [
        (torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), ("a",), "uint8"),
        (
            torch.zeros(2, 3, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ("a",),
            "N×C×H×W",
        ),
        (
            torch.zeros(2, 2, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            ("a",),
            "channels",
        ),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(3, dtype=torch.int64),
            ("a",),
            "2 images but 3",
        ),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int32),
            ("a",),
            "int64",
        ),
        (torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ("a", "b"), "0..2"),
        (
            torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
            torch.zeros(2, dtype=torch.int64),
            (),
            "class names",
        ),
    ],
)
def test_invalid_contents_are_refused(images, labels, classes, match):
    with pytest.raises(DataError, match=match):
        ImageSet(images, labels, classes, "bad")


def _tile(mosaic: np.ndarray, r: int, j: int, h: int, w: int, gap: int, row_gap: int):
    top, left = row_gap + r * (h + row_gap), gap + j * (w + gap)
    return mosaic[top : top + h, left : left + w]


def test_show_pastes_each_class_s_samples_into_one_mosaic():
    ds = _set(n=30, c=1)  # 10 images of each of 3 classes, 5×4
    fig = ds.show(per_class=4)
    assert isinstance(fig, Figure)
    (ax,) = [a for a in fig.axes if a.images]  # one image, not an axes per sample
    mosaic = np.asarray(ax.images[0].get_array())
    gap = grid_gap(5, 4)
    assert mosaic.shape == (gap + 3 * (5 + gap), gap + 4 * (4 + gap))
    originals = ds.images[:, 0].numpy()
    for r in range(3):
        found = []
        for j in range(4):
            tile = _tile(mosaic, r, j, 5, 4, gap, gap)
            found += [i for i in range(30) if np.array_equal(originals[i], tile)]
        assert len(set(found)) == 4 and all(int(ds.labels[i]) == r for i in found)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    # the gaps are white: mask the tiles out and nothing else is left
    mask = np.ones_like(mosaic, dtype=bool)
    for r in range(3):
        for j in range(4):
            _tile(mask, r, j, 5, 4, gap, gap)[:] = False
    assert (mosaic[mask] == 255).all()


def test_show_n_samples_titles_each_with_its_class_and_blanks_the_rest():
    ds = _set(n=30)  # RGB
    fig = ds.show(n=7)  # a 3×3 grid with two blank tiles
    (ax,) = [a for a in fig.axes if a.images]
    mosaic = np.asarray(ax.images[0].get_array())  # H×W×3
    gap, row_gap = grid_gap(5, 4), max(grid_gap(5, 4), 5 // 4)
    originals = ds.images.permute(0, 2, 3, 1).numpy()
    titles = [t.get_text() for t in ax.texts]
    shown = []
    for cell in range(9):
        tile = _tile(mosaic, cell // 3, cell % 3, 5, 4, gap, row_gap)
        match = [i for i in range(30) if np.array_equal(originals[i], tile)]
        if cell < 7:
            assert len(match) == 1
            shown.append(match[0])
        else:
            assert (tile == 255).all()
    assert len(set(shown)) == 7
    assert titles == [ds.classes[int(ds.labels[i])] for i in shown]


# --- sample: a stratified subset, on a real zip and folder -----------------------------------

CLASS_SIZES = [3 + 2 * c for c in range(10)]  # 3, 5, ..., 21: 120 images, uneven on purpose


@pytest.fixture(scope="module")
def cifar_small(shared_data, tmp_path_factory):
    """A zip and a folder of 120 real CIFAR-10 test images, class c holding 3 + 2c of them."""
    import zipfile

    base = tmp_path_factory.mktemp("cifar-small")
    src = zipfile.ZipFile(shared_data / "cifar10" / "cifar10-jpeg.zip")
    names = sorted(n for n in src.namelist() if n.startswith("test/") and n.endswith(".jpg"))
    by_class: dict[str, list[str]] = {}
    for n in names:
        by_class.setdefault(n.split("/")[1], []).append(n)
    zpath, folder = base / "small.zip", base / "small"
    with zipfile.ZipFile(zpath, "w") as out:
        for c, cls in enumerate(sorted(by_class)):
            for n in by_class[cls][: CLASS_SIZES[c]]:
                data = src.read(n)
                rel = n.removeprefix("test/")
                out.writestr(rel, data)
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
    from striate.data.folder import load_folder

    kw = dict(split="all", cache=False, progress=False)
    return load_folder(zpath, **kw), load_folder(folder, **kw)


def _positions(sub: ImageSet, ds: ImageSet) -> list[int]:
    """Where each image of `sub` sits in `ds` (the test images are all distinct)."""
    flat = ds.images.reshape(len(ds), -1)
    return [int(torch.nonzero((flat == x.reshape(1, -1)).all(1))[0]) for x in sub.images]


def test_slicing_a_folder_set_takes_the_first_classes_only(cifar_small):
    ds, _ = cifar_small
    assert ds.class_counts().tolist() == CLASS_SIZES
    assert ds[:15].class_counts().tolist() == [3, 5, 7] + [0] * 7  # why sample() exists
    assert (ds.sample(15).class_counts() > 0).all()


@pytest.mark.parametrize(("n", "count"), [(50, 50), (0.25, 30), (13, 13), (119, 119)])
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_sample_keeps_every_class_s_share(cifar_small, n, count, seed):
    ds, folder_ds = cifar_small
    sub = ds.sample(n, seed=seed)
    assert len(sub) == count and sub.classes == ds.classes
    # class c gets n_c * count / N images, rounded down or up, and the counts sum to count
    exact = torch.tensor(CLASS_SIZES, dtype=torch.float64) * count / len(ds)
    got = sub.class_counts().double()
    assert ((got == exact.floor()) | (got == exact.ceil())).all(), (got, exact)
    # the original order, the same subset for the same seed, from the zip and the folder alike
    pos = _positions(sub, ds)
    assert pos == sorted(set(pos)) and torch.equal(sub.labels, ds.labels[pos])
    assert torch.equal(sub.images, ds.sample(n, seed=seed).images)
    assert torch.equal(sub.images, folder_ds.sample(n, seed=seed).images)
    assert f"sample of {count}" in sub.source and f"seed {seed}" in sub.source


def test_sample_seeds_differ_and_the_whole_set_is_itself(cifar_small):
    ds, _ = cifar_small
    assert _positions(ds.sample(50, seed=0), ds) != _positions(ds.sample(50, seed=1), ds)
    for whole in (len(ds), 1.0):
        assert torch.equal(ds.sample(whole).images, ds.images)


@pytest.mark.parametrize(
    ("n", "match"),
    [
        (0, "n=0 images: ask for at least 1"),
        (-5, "n=-5 images: ask for at least 1"),
        (121, "n=121 but the set holds 120 images: ask for at most 120"),
        (0.0, r"n=0.0 is not a fraction in \(0, 1\]"),
        (1.5, r"n=1.5 is not a fraction in \(0, 1\]"),
        (float("nan"), "not a fraction"),
        ("10", "n must be a count of images or a fraction"),
        (True, "n must be a count of images or a fraction"),
        (None, "n must be a count of images or a fraction"),
    ],
)
def test_sample_refuses_bad_sizes(n, match):
    with pytest.raises(DataError, match=match):
        _set(n=120).sample(n)


def test_sample_refuses_a_bad_seed_and_an_empty_set():
    with pytest.raises(DataError, match="seed must be an integer"):
        _set().sample(3, seed="zero")
    empty = _set()[torch.zeros(12, dtype=torch.bool)]
    with pytest.raises(DataError, match="the set is empty"):
        empty.sample(1)
