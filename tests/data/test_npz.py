"""load_npz: image layouts and pixel types, labels and class names, and strict errors."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striate.data.npz import load_npz
from striate.errors import DataError

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
RNG = np.random.default_rng(0)


def save(path: Path, compressed: bool = False, **arrays) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def pixels(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def labels(n: int, k: int = 3) -> np.ndarray:
    return np.arange(n) % k


# ---------------------------------------------------------------- layouts and pixel types


@pytest.mark.parametrize(
    ("stored", "to_nchw"),
    [
        ((5, 7, 6), lambda x: x[:, None]),  # N×H×W grey
        ((5, 7, 6, 1), lambda x: x.transpose(0, 3, 1, 2)),  # channels last, grey
        ((5, 7, 6, 3), lambda x: x.transpose(0, 3, 1, 2)),  # channels last, RGB (Keras)
        ((5, 7, 6, 4), lambda x: x[..., :3].transpose(0, 3, 1, 2)),  # RGBA: alpha dropped
        ((5, 1, 7, 6), lambda x: x),  # channels first, grey
        ((5, 3, 7, 6), lambda x: x),  # channels first, RGB (PyTorch)
        ((5, 3, 32, 32), lambda x: x),
        ((5, 32, 32, 3), lambda x: x.transpose(0, 3, 1, 2)),
        ((5, 3, 4, 4), lambda x: x),  # both readings possible: the shorter axis (3) is C
        ((5, 4, 4, 3), lambda x: x.transpose(0, 3, 1, 2)),
        ((5, 3, 2, 4), lambda x: x),
        ((5, 3, 8, 3), lambda x: x.transpose(0, 3, 1, 2)),  # a tie: channels last
    ],
)
def test_layouts(tmp_path, stored, to_nchw):
    x = pixels(*stored)
    ds = load_npz(save(tmp_path / "a.npz", x_train=x, y_train=labels(5)), "train")
    assert ds.images.dtype == torch.uint8 and ds.images.is_contiguous()
    np.testing.assert_array_equal(ds.images.numpy(), to_nchw(x))
    assert ds.labels.tolist() == labels(5).tolist()
    assert ds.source == f"npz train ({tmp_path / 'a.npz'})"


def test_red_stays_red_in_both_layouts(tmp_path):
    last = np.zeros((1, 4, 4, 3), np.uint8)
    last[..., 0] = 255
    first = np.ascontiguousarray(last.transpose(0, 3, 1, 2))
    for name, x in [("last", last), ("first", first)]:
        image = load_npz(save(tmp_path / f"{name}.npz", x_test=x, y_test=[0]), "test").images[0]
        assert (image[0] == 255).all() and (image[1:] == 0).all()


def test_pixel_types(tmp_path):
    ints = RNG.integers(0, 256, (4, 5, 5))
    floats = RNG.random((4, 5, 5, 3)).astype(np.float32)
    floats[0, 0, 0] = [0.0, 1.0, 0.5]
    ds_int = load_npz(save(tmp_path / "i.npz", x_train=ints.astype(np.int64), y_train=labels(4)))
    np.testing.assert_array_equal(ds_int.images[:, 0].numpy(), ints)
    ds_float = load_npz(save(tmp_path / "f.npz", x_train=floats, y_train=labels(4)))
    reference = np.round(floats.astype(np.float64) * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(ds_float.images.numpy(), reference)
    assert ds_float.images[0, :, 0, 0].tolist() == [0, 255, 128]


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.full((2, 4, 4), np.nan), "NaN"),
        (np.full((2, 4, 4), 2.0), r"\[0, 1\].*2"),
        (np.full((2, 4, 4), -0.5), r"\[0, 1\]"),
        (np.full((2, 4, 4), 256), "0..255.*256"),
        (np.full((2, 4, 4), -1, np.int16), "0..255"),
        (np.ones((2, 4, 4), bool), "bool"),
        (np.ones((2, 4, 4), np.complex64), "complex64"),
        (np.zeros((2, 1, 4, 4, 3), np.uint8), "5-D"),
        (np.zeros((2, 16), np.uint8), "2-D"),
        (np.zeros((2, 5, 4, 7), np.uint8), r"shape \(2, 5, 4, 7\)"),
        (np.array(["a", "b"]), "1-D"),
    ],
)
def test_bad_images(tmp_path, x, message):
    path = save(tmp_path / "bad.npz", x_train=x, y_train=labels(len(x)))
    with pytest.raises(DataError, match=message) as info:
        load_npz(path)
    assert f"{path} (x_train)" in str(info.value)


# ---------------------------------------------------------------- labels and classes


def test_labels_n_by_1_and_default_classes_span_both_splits(tmp_path):
    path = save(
        tmp_path / "a.npz",
        x_train=pixels(3, 4, 4),
        y_train=np.array([[0], [2], [1]], np.uint8),
        x_test=pixels(2, 4, 4),
        y_test=np.array([4, 0]),
    )
    train, test = load_npz(path, "train"), load_npz(path, "test")
    assert train.labels.tolist() == [0, 2, 1] and train.labels.dtype == torch.int64
    assert train.classes == test.classes == ("0", "1", "2", "3", "4")


@pytest.mark.parametrize(
    "names", [np.array(["cat", "dog", "emu"]), np.array([b"cat", b"dog", b"emu"])]
)
def test_classes_array(tmp_path, names):
    ds = load_npz(
        save(tmp_path / "a.npz", x_train=pixels(3, 4, 4), y_train=labels(3), classes=names)
    )
    assert ds.classes == ("cat", "dog", "emu")


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0.0, 1.0, 1.0]), "integers"),
        (np.array([0, -1, 1]), "non-negative"),
        (np.array([0, 1]), "2 labels for 3 images"),
        (np.zeros((3, 2), int), r"shape \(3, 2\)"),
    ],
)
def test_bad_labels(tmp_path, y, message):
    path = save(tmp_path / "a.npz", x_train=pixels(3, 4, 4), y_train=y)
    with pytest.raises(DataError, match=message) as info:
        load_npz(path)
    assert f"{path} (y_train)" in str(info.value)


def test_too_few_class_names(tmp_path):
    path = save(tmp_path / "a.npz", x_train=pixels(3, 4, 4), y_train=[0, 1, 5], classes=["a", "b"])
    with pytest.raises(DataError, match="label 5 but only 2 class names"):
        load_npz(path)


def test_missing_split_lists_keys_present(tmp_path):
    path = save(tmp_path / "a.npz", x_train=pixels(3, 4, 4), y_train=labels(3), extra=[1])
    with pytest.raises(DataError, match="x_test and y_test.*present: extra, x_train, y_train"):
        load_npz(path, "test")
    with pytest.raises(DataError, match="split"):
        load_npz(path, "val")


def test_compressed_npz(tmp_path):
    x = pixels(4, 6, 6, 3)
    ds = load_npz(save(tmp_path / "c.npz", True, x_test=x, y_test=labels(4)), "test")
    np.testing.assert_array_equal(ds.images.numpy(), x.transpose(0, 3, 1, 2))


# ---------------------------------------------------------------- unsafe and malformed files


class RunsCode:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    evil = np.array([RunsCode(os.system, f"touch {marker}"), 1], dtype=object)
    path = save(tmp_path / "evil.npz", x_train=pixels(2, 4, 4), y_train=evil)
    with pytest.raises(DataError, match="Python objects") as info:
        load_npz(path)
    assert f"{path} (y_train)" in str(info.value)
    assert not marker.exists()
    path = save(tmp_path / "evil2.npz", x_train=pixels(2, 4, 4), y_train=[0, 1], classes=evil)
    with pytest.raises(DataError, match="Python objects"):
        load_npz(path)
    assert not marker.exists()


def npy_with_header(shape, descr: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + payload


def test_lying_npy_header_is_refused_before_allocating(tmp_path):
    path = tmp_path / "lie.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", npy_with_header((10**6, 10**6, 10**3), "|u1", b"abcd"))
        archive.writestr("y_train.npy", npy_with_header((4,), "<i8", bytes(32)))
    with pytest.raises(DataError, match="promises shape"):
        load_npz(path)


def test_malformed_files(tmp_path):
    good = save(tmp_path / "good.npz", x_train=pixels(3, 4, 4), y_train=labels(3)).read_bytes()
    npy = io.BytesIO()
    np.save(npy, pixels(3, 4, 4))
    cases = {
        "empty.npz": b"",
        "random.npz": RNG.integers(0, 256, 300, dtype=np.uint8).tobytes(),
        "truncated.npz": good[: len(good) // 2],
        "tail.npz": good[:-10],
        "plain.npy": npy.getvalue(),
        "pickle.npz": b"\x80\x02]q\x00.",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(DataError) as info:
            load_npz(path)
        assert str(path) in str(info.value), name
    with pytest.raises(DataError, match="no such file"):
        load_npz(tmp_path / "nope.npz")


def test_corrupt_member_crc(tmp_path):
    x = pixels(3, 4, 4)
    data = bytearray(save(tmp_path / "a.npz", x_train=x, y_train=labels(3)).read_bytes())
    at = data.index(x.tobytes()) + 7  # savez stores members uncompressed: a pixel of image 0
    data[at] ^= 0xFF
    (tmp_path / "b.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match="b.npz"):
        load_npz(tmp_path / "b.npz")


# ---------------------------------------------------------------- fuzzing


@FUZZ
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    with contextlib.suppress(DataError):
        load_npz(path)


VALID = {}
for _compressed in (False, True):
    _buffer = io.BytesIO()
    (np.savez_compressed if _compressed else np.savez)(
        _buffer, x_train=pixels(2, 3, 3, 3), y_train=labels(2), classes=np.array(["a", "b", "c"])
    )
    VALID[_compressed] = _buffer.getvalue()


@FUZZ
@given(
    compressed=st.booleans(),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 10**5), st.integers(1, 255)), max_size=4),
)
def test_fuzz_mutated_valid_file(tmp_path, compressed, cut, flips):
    data = bytearray(VALID[compressed])
    for pos, xor in flips:
        data[pos % len(data)] ^= xor
    if cut % 2:
        data = data[: len(data) - cut % len(data)]
    path = tmp_path / "mutated.npz"
    path.write_bytes(bytes(data))
    try:
        ds = load_npz(path)
    except DataError:
        return
    assert ds.images.dtype == torch.uint8


@FUZZ
@given(
    shape=st.lists(st.integers(0, 2**40), max_size=5).map(tuple),
    descr=st.sampled_from(["|u1", "<i8", "<f4", "|b1", ">u2", "<c8", "|O", "|V3", "<U2"]),
    payload=st.binary(max_size=64),
)
def test_fuzz_npy_headers(tmp_path, shape, descr, payload):
    """Members whose headers promise random (often huge) shapes over a few real bytes."""
    path = tmp_path / "headers.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", npy_with_header(shape, descr, payload))
        archive.writestr("y_train.npy", npy_with_header((len(payload),), "|u1", payload))
    with contextlib.suppress(DataError):
        load_npz(path)
