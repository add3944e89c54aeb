"""Image folders and zips: layout, decoding against the written pixels, bad input, the cache."""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from striate.data import cache as decode_cache
from striate.data import folder as folder_mod
from striate.data.folder import StriateWarning, load_folder, scan
from striate.errors import DataError, StriateError
from tests.data.folder_fixtures import make_folder, random_images, write_png, zip_folder


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "pets"
    return root, make_folder(root)


def test_directory_matches_written_pixels(tree):
    root, expected = tree
    for split in ("train", "test"):
        ds = load_folder(root, split, cache=False, progress=False)
        images, labels = expected[split]
        assert ds.classes == ("cat", "dog", "owl")
        assert torch.equal(ds.images, torch.from_numpy(images))
        assert torch.equal(ds.labels, torch.from_numpy(labels))


def test_zip_reads_like_the_directory_without_extracting(tree, tmp_path):
    root, _ = tree
    z = zip_folder(root, tmp_path / "pets.zip", prefix="pets/")  # one wrapping folder
    for split in ("train", "test"):
        a = load_folder(root, split, cache=False, progress=False)
        b = load_folder(z, split, cache=False, progress=False)
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pets", "pets.zip"]


def test_flat_folder_has_all_and_a_fixed_stratified_train_test(tmp_path):
    expected = make_folder(tmp_path / "flat", per_class=(10, 10, 5), splits=("",))
    all_ = load_folder(tmp_path / "flat", "all", cache=False, progress=False)
    assert torch.equal(all_.images, torch.from_numpy(expected["all"][0]))
    train = load_folder(tmp_path / "flat", "train", cache=False, progress=False)
    test = load_folder(tmp_path / "flat", "test", cache=False, progress=False)
    assert len(train) + len(test) == len(all_) == 25
    assert test.class_counts().tolist() == [2, 2, 1]  # 20% of each class
    rows = {bytes(x.numpy()) for x in all_.images}
    assert {bytes(x.numpy()) for x in train.images} | {
        bytes(x.numpy()) for x in test.images
    } == rows
    with pytest.raises(DataError, match="no split 'val'"):
        load_folder(tmp_path / "flat", "val", cache=False, progress=False)


def test_greyscale_stays_one_channel_and_mixed_becomes_rgb(tmp_path):
    grey = random_images(2, 4, 4, 1, seed=1)
    for i in range(2):
        write_png(tmp_path / "g" / "a" / f"{i}.png", grey[i])
    ds = load_folder(tmp_path / "g", "all", cache=False, progress=False)
    assert ds.shape == (1, 4, 4) and torch.equal(ds.images[:, 0], torch.from_numpy(grey[..., 0]))
    rgb = random_images(1, 4, 4, 3, seed=2)
    write_png(tmp_path / "g" / "b" / "0.png", rgb[0])
    mixed = load_folder(tmp_path / "g", "all", cache=False, progress=False)
    assert mixed.shape == (3, 4, 4)
    for ch in range(3):  # the grey images are replicated into R, G and B
        assert torch.equal(mixed.images[0, ch], torch.from_numpy(grey[0, ..., 0]))
    assert torch.equal(mixed.images[2], torch.from_numpy(rgb[0]).permute(2, 0, 1))


def test_rgba_and_palette_images_become_rgb(tmp_path):
    rgba = random_images(1, 3, 3, 4, seed=3)[0]
    (tmp_path / "f" / "x").mkdir(parents=True)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "f" / "x" / "a.png")
    pal = Image.fromarray(random_images(1, 3, 3, 3, seed=4)[0]).quantize(8)
    pal.save(tmp_path / "f" / "x" / "b.png")
    ds = load_folder(tmp_path / "f", "all", cache=False, progress=False)
    assert ds.shape == (3, 3, 3)
    assert torch.equal(ds.images[0], torch.from_numpy(rgba[..., :3]).permute(2, 0, 1))
    ref = np.asarray(pal.convert("RGB")).transpose(2, 0, 1)
    assert torch.equal(ds.images[1], torch.from_numpy(ref.copy()))


def test_different_sizes_are_rejected_or_resized(tmp_path):
    a, b = random_images(1, 8, 8, 3, seed=5)[0], random_images(1, 6, 10, 3, seed=6)[0]
    write_png(tmp_path / "f" / "x" / "a.png", a)
    write_png(tmp_path / "f" / "x" / "b.png", b)
    with pytest.raises(DataError, match=r"differ in size.*8×8.*6×10.*size="):
        load_folder(tmp_path / "f", "all", cache=False, progress=False)
    ds = load_folder(tmp_path / "f", "all", size=(4, 5), cache=False, progress=False)
    assert ds.shape == (3, 4, 5)
    ref = np.asarray(Image.fromarray(b).resize((5, 4), Image.Resampling.BILINEAR))
    assert torch.equal(ds.images[1], torch.from_numpy(ref.transpose(2, 0, 1).copy()))


def test_corrupt_image_errors_by_default_and_is_counted_when_skipped(tree):
    root, expected = tree
    bad = root / "train" / "dog" / "0001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    with pytest.raises(DataError, match=r"dog/0001\.png.*--on-bad-image skip"):
        load_folder(root, "train", cache=False, progress=False)
    with pytest.warns(StriateWarning, match="skipped 1 unreadable"):
        ds = load_folder(root, "train", on_bad_image="skip", cache=False, progress=False)
    images, labels = expected["train"]
    keep = np.ones(len(labels), bool)
    keep[4 + 1] = False  # cat has 4 images, then dog/0001
    assert torch.equal(ds.images, torch.from_numpy(images[keep]))
    assert "1 unreadable skipped" in ds.source
    with pytest.raises(StriateError, match="on_bad_image"):
        load_folder(root, "train", on_bad_image="ignore", cache=False, progress=False)


def _two_bad_images(root):
    """A non-image first (cat/0000.png) and a truncated PNG (dog/0001.png) in the train split."""
    make_folder(root, splits=("train",))
    (root / "train" / "cat" / "0000.png").write_bytes(b"this is not an image")
    cut = root / "train" / "dog" / "0001.png"
    cut.write_bytes(cut.read_bytes()[:60])


@pytest.mark.parametrize("as_zip", [False, True])
def test_unreadable_images_are_named_with_the_reason_in_words(tmp_path, as_zip):
    _two_bad_images(tmp_path / "f")
    src, inside = tmp_path / "f", ""
    if as_zip:  # inside a zip the name is the member's path, wrapping folder included
        src, inside = zip_folder(tmp_path / "f", tmp_path / "f.zip", prefix="wrap/"), "wrap/"
    with pytest.raises(DataError) as info:
        load_folder(src, "train", cache=False, progress=False)
    message = str(info.value)
    assert f"cannot read image '{inside}train/cat/0000.png': not a recognised image format" in (
        message
    )
    assert "(and 1 more)" in message and "--on-bad-image skip" in message
    with pytest.warns(StriateWarning) as caught:
        load_folder(src, "train", on_bad_image="skip", cache=False, progress=False)
    (warning,) = caught
    text = str(warning.message)
    assert text.startswith(f"{src}: skipped 2 unreadable images in 'train': ")
    assert f"{inside}train/cat/0000.png (not a recognised image format" in text
    assert f"{inside}train/dog/0001.png (image file is truncated" in text
    for shown in (message, text):  # PIL names its in-memory buffer, never the file
        assert "BytesIO" not in shown and " at 0x" not in shown


def test_decode_image_says_why_in_words():
    with pytest.raises(folder_mod.UnreadableImage) as info:
        folder_mod.decode_image(b"GIF89a but nothing after", None)
    assert "BytesIO" not in str(info.value) and str(info.value)
    assert isinstance(info.value, DataError)


def test_the_skip_warning_names_the_first_three_and_counts_the_rest():
    skipped = [(f"c/{i}.png", "why") for i in range(5)]
    line = folder_mod.skipped_message("data.zip", "'train'", skipped)
    assert line == (
        "data.zip: skipped 5 unreadable images in 'train': c/0.png (why), c/1.png (why), "
        "c/2.png (why), and 2 more"
    )
    assert "1 unreadable image in" in folder_mod.skipped_message("d", "'x'", skipped[:1])


def test_empty_class_folder_is_named(tree, tmp_path):
    root, _ = tree
    (root / "train" / "emu").mkdir()
    with pytest.raises(DataError, match=r"train/emu.*holds no images"):
        load_folder(root, "train", cache=False, progress=False)
    z = zip_folder(root, tmp_path / "pets.zip")
    with pytest.raises(DataError, match=r"train/emu.*holds no images"):
        scan(z)


def test_train_test_class_mismatch(tree):
    root, _ = tree
    write_png(root / "test" / "emu" / "0.png", random_images(1, 6, 5, 3, seed=9)[0])
    with pytest.raises(DataError, match=r"split 'test' has different classes.*extra \['emu'\]"):
        scan(root)


def test_stray_files_are_ignored_but_stray_images_are_not(tree):
    root, _ = tree
    (root / "README.txt").write_text("about this set")
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0\1")
    assert len(load_folder(root, "train", cache=False, progress=False)) == 12
    write_png(root / "train" / "loose.png", random_images(1, 6, 5, 3, seed=7)[0])
    with pytest.raises(DataError, match=r"loose\.png.*not inside a class folder"):
        scan(root)


def test_no_images_missing_path_and_broken_zips(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        scan(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope.zip")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\3\4 definitely not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        load_folder(junk)


def test_truncated_zip_is_a_data_error(tree, tmp_path):
    root, _ = tree
    z = zip_folder(root, tmp_path / "pets.zip")
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable zip"):
        load_folder(z, "train", cache=False, progress=False)


@pytest.mark.filterwarnings("ignore::striate.errors.StriateWarning")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_random_bytes_as_zip_or_image_only_raise_data_error(tmp_path, blob):
    z = tmp_path / "fuzz.zip"
    z.write_bytes(blob)
    with pytest.raises(DataError):
        load_folder(z, "all", cache=False, progress=False)
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a/x.png", blob)
        zf.writestr("a/y.png", _png(random_images(1, 2, 2, 3, seed=0)[0]))
    try:
        ds = load_folder(z, "all", on_bad_image="skip", cache=False, progress=False)
    except DataError:
        return
    assert 1 <= len(ds) <= 2


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_worker_processes_decode_like_one_process(tmp_path):
    make_folder(
        tmp_path / "big", classes=("a", "b"), per_class=(700, 500), splits=("train",), h=3, w=3
    )
    index = scan(tmp_path / "big")
    one = folder_mod.decode_split(index, "train", None, workers=1, progress=False)
    two = folder_mod.decode_split(index, "train", None, workers=2, progress=False)
    assert np.array_equal(one.images, two.images) and np.array_equal(one.labels, two.labels)


def test_cache_serves_the_second_load_and_follows_content(tree, tmp_path, monkeypatch):
    root, _ = tree
    z = zip_folder(root, tmp_path / "pets.zip")
    first = load_folder(z, "train", progress=False)
    monkeypatch.setattr(folder_mod, "decode_split", _must_not_decode)
    again = load_folder(z, "train", progress=False)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert again.classes == first.classes and again.source == first.source
    # Same names, one image's pixels changed: the CRC changes, so the cache must not answer.
    changed = random_images(1, 6, 5, 3, seed=42)[0]
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(root.rglob("*.png")):
            arc = p.relative_to(root).as_posix()
            zf.writestr(arc, _png(changed) if arc == "train/cat/0000.png" else p.read_bytes())
    with pytest.raises(AssertionError, match="decoded"):
        load_folder(z, "train", progress=False)
    assert not list(decode_cache.cache_path("x").parent.glob("*.part"))


def _must_not_decode(*args, **kwargs):
    raise AssertionError("decoded although the cache should have answered")


def test_damaged_cache_entry_is_dropped_and_redecoded(tree):
    root, _ = tree
    first = load_folder(root, "test", progress=False)
    fp = folder_mod.fingerprint(root)
    path = decode_cache.cache_path(decode_cache.cache_key(fp, "test", None))
    assert path.is_file()
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="damaged decode cache"):
        again = load_folder(root, "test", progress=False)
    assert torch.equal(first.images, again.images)


def test_cached_skips_still_follow_the_policy(tree):
    root, _ = tree
    (root / "test" / "owl" / "0002.png").write_bytes(b"not a png")
    with pytest.warns(StriateWarning):
        load_folder(root, "test", on_bad_image="skip", progress=False)  # cached with the skip
    with pytest.raises(DataError, match="owl/0002.png"):
        load_folder(root, "test", progress=False)


def test_directory_fingerprint_changes_with_a_file(tree):
    root, _ = tree
    before = folder_mod.fingerprint(root)
    p = root / "train" / "cat" / "0000.png"
    write_png(p, random_images(1, 6, 5, 3, seed=77)[0])
    os.utime(p, ns=(1, 1))
    assert folder_mod.fingerprint(root) != before


def test_cifar10_jpeg_zip_from_shared_data(shared_data):
    z = shared_data / "cifar10" / "cifar10-jpeg.zip"
    classes = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    train = load_folder(z, "train", progress=False)
    test = load_folder(z, "test", progress=False)
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes == classes and test.classes == classes
    assert train.shape == test.shape == (3, 32, 32)
    assert train.class_counts().tolist() == [5000] * 10
    assert test.class_counts().tolist() == [1000] * 10
    mean, _ = train.pixel_stats()
    # CIFAR-10's published channel means (0.4914, 0.4822, 0.4465); JPEG re-encoding moves them a bit
    assert torch.allclose(mean, torch.tensor([0.4914, 0.4822, 0.4465]), atol=0.01)


def test_zip_fingerprint_reads_zip64_directories_and_agrees_with_content(tmp_path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:  # more than 65,535 members forces the Zip64 end records
        for i in range(65_600):
            zf.writestr(f"a/{i}.png", b"")
    directory = folder_mod._zip_central_directory(z)
    assert directory is not None and directory.count(b"PK\1\2") == 65_600
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("a/extra.png", b"1")
    assert folder_mod._zip_central_directory(z) != directory


def test_zip_with_a_stub_before_it_still_loads(tmp_path):
    make_folder(tmp_path / "f", splits=("train",))
    z = zip_folder(tmp_path / "f", tmp_path / "f.zip")
    stubbed = tmp_path / "stubbed.zip"  # as a self-extracting archive: offsets are off by the stub
    stubbed.write_bytes(b"#!/bin/sh\nexit 0\n" * 4 + z.read_bytes())
    assert folder_mod._zip_central_directory(stubbed) is None  # falls back to zipfile
    a = load_folder(z, "train", progress=False)
    b = load_folder(stubbed, "train", progress=False)
    assert torch.equal(a.images, b.images) and folder_mod.fingerprint(stubbed)
