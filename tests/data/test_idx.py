"""IDX reader and MNIST loader: round trips, strict errors, fuzzing, and the real MNIST files."""

from __future__ import annotations

import contextlib
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striate.data import download
from striate.data.idx import FASHION_MNIST_CLASSES, load_mnist, read_idx
from striate.errors import DataError, DownloadError, StriateError

CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
         np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}  # fmt: skip


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written by hand from the format description (independent of the reader)."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = CODES[big.dtype]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write(path: Path, data: bytes, compress: bool) -> Path:
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_mnist(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz=True):
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write(folder / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(images), gz)
    write(folder / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(labels), gz)


def tiny(n=6, h=28, w=28, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, h, w), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    return images, labels


# ---------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(CODES))
def test_round_trip_every_type(tmp_path, compress, dtype):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    if dtype.kind == "u":
        array = rng.integers(0, 256, (3, 4, 5)).astype(dtype)
    out = read_idx(write(tmp_path / "a.idx", idx_bytes(array), compress))
    assert out.shape == (3, 4, 5)
    assert out.dtype.isnative and out.dtype == dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_gzip_detected_by_magic_not_extension(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    plain_named_gz = write(tmp_path / "x.gz", idx_bytes(array), compress=False)
    gz_named_plain = write(tmp_path / "x.idx", idx_bytes(array), compress=True)
    np.testing.assert_array_equal(read_idx(plain_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_plain), array)


def test_one_to_four_dimensions(tmp_path):
    for shape in [(7,), (2, 3), (2, 3, 4), (2, 1, 3, 2)]:
        array = np.arange(int(np.prod(shape)), dtype=np.uint8).reshape(shape)
        np.testing.assert_array_equal(
            read_idx(write(tmp_path / "a", idx_bytes(array), True)), array
        )


GOOD = idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty or truncated"),
        (b"\x00\x00\x08", "empty or truncated"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"x", "not an IDX file"),
        (b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"x", "type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00\x08\x05" + struct.pack(">5I", 1, 1, 1, 1, 1) + b"x", "5 dimensions"),
        (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 3), "ends inside the IDX header"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing"),
        # a lying header: 4 × (2^32 - 1) bytes promised, 3 present; must fail without allocating
        (b"\x00\x00\x0e\x04" + struct.pack(">4I", *[2**32 - 1] * 4) + b"abc", "truncated"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_malformed_files_raise_data_error_naming_the_file(tmp_path, data, message, compress):
    path = write(tmp_path / "bad-idx3-ubyte", data, compress)
    with pytest.raises(DataError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_corrupt_gzip(tmp_path):
    packed = gzip.compress(GOOD * 50)
    cases = {
        "truncated.gz": packed[: len(packed) // 2],
        "crc.gz": packed[:-8] + bytes(8),
        "header.gz": packed[:3],
        "garbled.gz": packed[:10] + bytes(b ^ 0xFF for b in packed[10:30]) + packed[30:],
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError, match=name):
            read_idx(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="folder"):
        read_idx(tmp_path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200), compress=st.booleans())
def test_fuzz_random_bytes(tmp_path, data, compress):
    path = write(tmp_path / "fuzz", data, compress)
    with contextlib.suppress(DataError):
        read_idx(path)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
    dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 4), min_size=0, max_size=5),
    payload=st.binary(max_size=64),
    compress=st.booleans(),
)
def test_fuzz_plausible_headers(tmp_path, code, dims, payload, compress):
    """Headers that look right, with random (often lying) dimensions and payloads."""
    data = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload
    path = write(tmp_path / "fuzz", data, compress)
    try:
        out = read_idx(path)
    except DataError:
        return
    assert out.size * out.dtype.itemsize == len(payload)


VALID = idx_bytes(tiny(n=3, h=5, w=4)[0])


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    compress=st.booleans(),
    cut=st.integers(0, 400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), max_size=4),
)
def test_fuzz_mutated_valid_file(tmp_path, compress, cut, flips):
    data = bytearray(gzip.compress(VALID, mtime=0) if compress else VALID)
    for pos, xor in flips:
        if data:
            data[pos % len(data)] ^= xor
    data = data[: max(len(data) - cut, 0)] if cut % 3 == 0 else data
    path = tmp_path / "mutated"
    path.write_bytes(bytes(data))
    try:
        out = read_idx(path)
    except DataError:
        return
    assert isinstance(out, np.ndarray)


# ---------------------------------------------------------------- load_mnist on generated files


def test_load_mnist_round_trip_and_shapes(tmp_path):
    images, labels = tiny(n=7)
    write_mnist(tmp_path, "train", images, labels)
    ds = load_mnist(tmp_path, "train", "mnist")
    assert ds.images.shape == (7, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == labels.tolist()
    assert ds.classes == tuple("0123456789")
    assert ds.source == f"mnist train ({tmp_path / 'train-images-idx3-ubyte.gz'})"


def test_fashion_mnist_classes_and_other_sizes(tmp_path):
    images, labels = tiny(n=4, h=5, w=9)
    write_mnist(tmp_path / "fashion-mnist", "test", images, labels, gz=False)
    ds = load_mnist(tmp_path, "test", "fashion-mnist")
    assert ds.shape == (1, 5, 9)
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert ds.source.startswith("fashion-mnist test (")


def test_variant_folder_is_searched_before_root(tmp_path):
    a_images, a_labels = tiny(n=3, seed=1)
    b_images, b_labels = tiny(n=5, seed=2)
    write_mnist(tmp_path, "train", a_images, a_labels)
    write_mnist(tmp_path / "mnist", "train", b_images, b_labels)
    assert len(load_mnist(tmp_path, "train", "mnist")) == 5
    assert len(load_mnist(tmp_path / "mnist", "train", "mnist")) == 5


def test_root_none_uses_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("STRIATE_DATA", str(tmp_path))
    images, labels = tiny(n=2)
    write_mnist(tmp_path / "mnist", "test", images, labels)
    assert len(load_mnist(None, "test")) == 2


def test_count_mismatch_names_both_files(tmp_path):
    images, labels = tiny(n=6)
    write_mnist(tmp_path, "train", images, labels[:5])
    with pytest.raises(DataError, match="6 images.*5 labels") as info:
        load_mnist(tmp_path, "train")
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "train-labels-idx1-ubyte.gz" in str(info.value)


def test_label_out_of_range_and_wrong_shapes(tmp_path):
    images, labels = tiny(n=3)
    write_mnist(tmp_path / "a", "train", images, np.array([1, 10, 2], np.uint8))
    with pytest.raises(DataError, match="0..9"):
        load_mnist(tmp_path / "a", "train")
    write_mnist(tmp_path / "b", "train", images.reshape(3, -1), labels)
    with pytest.raises(DataError, match="n×h×w"):
        load_mnist(tmp_path / "b", "train")
    write_mnist(tmp_path / "c", "train", images, labels.astype(np.int8).reshape(3, 1))
    with pytest.raises(DataError, match="1-D uint8 labels"):
        load_mnist(tmp_path / "c", "train")


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="split"):
        load_mnist(tmp_path, "val")
    with pytest.raises(DataError, match="variant"):
        load_mnist(tmp_path, "train", "kmnist")


def fake_download(monkeypatch, fetch):
    monkeypatch.setattr(download, "fetch_official", fetch)


def test_missing_files_are_fetched_into_root_variant(tmp_path, monkeypatch):
    calls = []
    images, labels = tiny(n=4)

    def fetch(name, dest, *, searched=(), progress=True):
        calls.append((name, Path(dest), [Path(p) for p in searched]))
        write_mnist(Path(dest), "test", images, labels)
        return sorted(Path(dest).iterdir())

    fake_download(monkeypatch, fetch)
    ds = load_mnist(tmp_path, "test", "fashion-mnist")
    assert len(ds) == 4
    assert calls == [
        ("fashion-mnist", tmp_path / "fashion-mnist", [tmp_path / "fashion-mnist", tmp_path])
    ]


def test_download_error_propagates(tmp_path, monkeypatch):
    def fetch(name, dest, *, searched=(), progress=True):
        raise DownloadError("put train-images-idx3-ubyte.gz in there")

    fake_download(monkeypatch, fetch)
    with pytest.raises(DownloadError, match="put"):
        load_mnist(tmp_path, "train")


def test_offline_missing_files_raise_a_striate_error(tmp_path):
    with pytest.raises(StriateError):  # the real download module honours STRIATE_OFFLINE=1
        load_mnist(tmp_path, "train")


# ---------------------------------------------------------------- the real MNIST files


@pytest.fixture(scope="module")
def mnist_train(shared_data):
    return load_mnist(shared_data / "mnist", "train", "mnist")


def test_real_mnist_train(mnist_train):
    ds = mnist_train
    assert len(ds) == 60_000 and ds.shape == (1, 28, 28)
    assert ds.labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    mean, std = ds.pixel_stats()
    assert abs(float(mean[0]) - 0.1307) < 1e-3
    assert abs(float(std[0]) - 0.3081) < 1e-3
    expected = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert ds.class_counts().tolist() == expected


def test_real_mnist_test_and_parent_root(shared_data):
    ds = load_mnist(shared_data, "test", "mnist")  # the parent folder: finds shared_data/mnist
    assert len(ds) == 10_000
    assert ds.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert str(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz") in ds.source
