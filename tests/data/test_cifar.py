"""CIFAR-10/100 loaders on small files written in the official formats; the restricted unpickler."""

from __future__ import annotations

import builtins
import codecs
import contextlib
import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striate.data import download
from striate.data.cifar import load_cifar, safe_unpickle
from striate.errors import DataError

CIFAR10_NAMES = [
    b"airplane", b"automobile", b"bird", b"cat", b"deer",
    b"dog", b"frog", b"horse", b"ship", b"truck",
]  # fmt: skip
FINE_NAMES = [f"fine{i}".encode() for i in range(100)]
COARSE_NAMES = [f"coarse{i}".encode() for i in range(20)]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def make_split(n: int, seed: int, red_first: bool = False) -> dict[str, np.ndarray]:
    """Random pixels (n×3072, R plane, G plane, B plane) and labels for both CIFAR variants."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    if red_first:  # image 0 is pure red
        data[0] = 0
        data[0, :1024] = 255
    return {
        "data": data,
        "labels": rng.integers(0, 10, n),
        "fine": rng.integers(0, 100, n),
        "coarse": rng.integers(0, 20, n),
    }


def python_batch(split: dict, variant: str, override: dict | None = None) -> bytes:
    """A batch pickled like the official ones: protocol 2, bytes keys, labels as int lists."""
    n = len(split["data"])
    batch = {b"batch_label": b"batch", b"data": split["data"], b"filenames": [b"x.png"] * n}
    if variant == "cifar10":
        batch[b"labels"] = [int(v) for v in split["labels"]]
    else:
        batch[b"fine_labels"] = [int(v) for v in split["fine"]]
        batch[b"coarse_labels"] = [int(v) for v in split["coarse"]]
    batch.update(override or {})
    return pickle.dumps(batch, protocol=2)


def python_meta(variant: str) -> bytes:
    if variant == "cifar10":
        meta = {b"num_cases_per_batch": 10000, b"label_names": CIFAR10_NAMES, b"num_vis": 3072}
    else:
        meta = {b"fine_label_names": FINE_NAMES, b"coarse_label_names": COARSE_NAMES}
    return pickle.dumps(meta, protocol=2)


def binary_batch(split: dict, variant: str) -> bytes:
    if variant == "cifar10":
        labels = split["labels"][:, None]
    else:
        labels = np.stack([split["coarse"], split["fine"]], axis=1)
    return np.concatenate([labels.astype(np.uint8), split["data"]], axis=1).tobytes()


def official_files(variant: str, binary: bool, train: list[dict], test: dict) -> dict[str, bytes]:
    """The official file names and contents (without the folder)."""
    if variant == "cifar10":
        train_names = [f"data_batch_{i}" for i in range(1, 6)]
        test_name = "test_batch"
    else:
        train_names, test_name = ["train"], "test"
    if binary:
        files = {
            f"{n}.bin": binary_batch(s, variant) for n, s in zip(train_names, train, strict=False)
        }
        files[f"{test_name}.bin"] = binary_batch(test, variant)
        if variant == "cifar10":
            files["batches.meta.txt"] = b"\n".join(CIFAR10_NAMES) + b"\n\n"
        else:
            files["fine_label_names.txt"] = b"\n".join(FINE_NAMES) + b"\n"
            files["coarse_label_names.txt"] = b"\n".join(COARSE_NAMES) + b"\n"
        return files
    files = {n: python_batch(s, variant) for n, s in zip(train_names, train, strict=False)}
    files[test_name] = python_batch(test, variant)
    files["batches.meta" if variant == "cifar10" else "meta"] = python_meta(variant)
    return files


FOLDERS = {
    ("cifar10", False): ("cifar-10-batches-py", "cifar-10-python.tar.gz"),
    ("cifar10", True): ("cifar-10-batches-bin", "cifar-10-binary.tar.gz"),
    ("cifar100", False): ("cifar-100-python", "cifar-100-python.tar.gz"),
    ("cifar100", True): ("cifar-100-binary", "cifar-100-binary.tar.gz"),
}


def write_folder(base: Path, variant: str, binary: bool, files: dict[str, bytes]) -> Path:
    folder = base / FOLDERS[variant, binary][0]
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def tar_bytes(variant: str, binary: bool, files: dict[str, bytes], extra=()) -> bytes:
    folder = FOLDERS[variant, binary][0]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        directory = tarfile.TarInfo(folder)
        directory.type = tarfile.DIRTYPE
        tar.addfile(directory)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_tar(base: Path, variant: str, binary: bool, files: dict[str, bytes], extra=()) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    path = base / FOLDERS[variant, binary][1]
    path.write_bytes(tar_bytes(variant, binary, files, extra))
    return path


@pytest.fixture(scope="module")
def splits() -> dict[str, object]:
    train = [make_split(3, seed=i, red_first=(i == 0)) for i in range(5)]
    return {
        "cifar10": (train, make_split(4, seed=9)),
        "cifar100": ([make_split(7, 10)], make_split(4, 11)),
    }


def expected(splits, variant: str, split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    train, test = splits[variant]
    parts = train if split == "train" else [test]
    images = np.concatenate([p["data"] for p in parts]).reshape(-1, 3, 32, 32)
    return images, np.concatenate([p[key] for p in parts])


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_round_trip_folder_and_tar_agree(tmp_path, splits, binary, split):
    files = official_files("cifar10", binary, *splits["cifar10"])
    write_folder(tmp_path / "dir", "cifar10", binary, files)
    write_tar(tmp_path / "tar", "cifar10", binary, files)
    from_dir = load_cifar(tmp_path / "dir", split, "cifar10")
    from_tar = load_cifar(tmp_path / "tar", split, "cifar10")
    images, labels = expected(splits, "cifar10", split, "labels")
    for ds in (from_dir, from_tar):
        assert ds.images.shape == (len(labels), 3, 32, 32) and ds.images.dtype == torch.uint8
        np.testing.assert_array_equal(ds.images.numpy(), images)
        np.testing.assert_array_equal(ds.labels.numpy(), labels)
        assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert torch.equal(from_dir.images, from_tar.images)
    assert "cifar-10-" in from_tar.source and from_tar.source.startswith(f"cifar10 {split} (")


@pytest.mark.parametrize("binary", [False, True])
def test_red_stays_red(tmp_path, splits, binary):
    write_folder(tmp_path, "cifar10", binary, official_files("cifar10", binary, *splits["cifar10"]))
    image = load_cifar(tmp_path, "train", "cifar10").images[0]
    assert (image[0] == 255).all() and (image[1] == 0).all() and (image[2] == 0).all()


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("mode", ["fine", "coarse"])
def test_cifar100_fine_and_coarse(tmp_path, splits, binary, mode):
    files = official_files("cifar100", binary, *splits["cifar100"])
    write_tar(tmp_path / "cifar100", "cifar100", binary, files)  # root/<variant>/archive
    for split in ("train", "test"):
        ds = load_cifar(tmp_path, split, "cifar100", label_mode=mode)
        images, labels = expected(splits, "cifar100", split, mode)
        np.testing.assert_array_equal(ds.images.numpy(), images)
        np.testing.assert_array_equal(ds.labels.numpy(), labels)
        assert ds.num_classes == (100 if mode == "fine" else 20)
        assert ds.classes[3] == (f"{mode}3")


def test_folder_itself_and_legacy_numpy_module_name(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    # Official batches were pickled by old numpy, which names numpy.core.multiarray
    files = {
        k: v.replace(b"numpy._core.multiarray", b"numpy.core.multiarray") for k, v in files.items()
    }
    assert b"numpy.core.multiarray" in files["test_batch"]
    folder = write_folder(tmp_path, "cifar10", False, files)
    ds = load_cifar(folder, "test", "cifar10")  # the batches folder itself as root
    np.testing.assert_array_equal(
        ds.images.numpy(), expected(splits, "cifar10", "test", "labels")[0]
    )


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the official cPickle batches do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_dumps(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_python2_style_batches(tmp_path, splits):
    test = splits["cifar10"][1]
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": test["labels"].tolist()}
    batch[b"data"] = test["data"]
    files = {
        "test_batch": py2_dumps(batch),
        "batches.meta": py2_dumps({b"label_names": CIFAR10_NAMES}),
    }
    raw_pixels = pickle.BINSTRING + struct.pack("<i", test["data"].nbytes) + test["data"].tobytes()
    assert b"_codecs" not in files["test_batch"] and raw_pixels in files["test_batch"]
    write_folder(tmp_path, "cifar10", False, files)
    ds = load_cifar(tmp_path, "test")
    np.testing.assert_array_equal(ds.images.flatten(1).numpy(), test["data"])
    assert ds.labels.tolist() == test["labels"].tolist() and ds.classes[1] == "automobile"


def test_str_keys_and_list_data_are_accepted(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    test = splits["cifar10"][1]
    files["test_batch"] = pickle.dumps(
        {"data": test["data"].tolist(), "labels": test["labels"].tolist()}, protocol=2
    )
    write_folder(tmp_path, "cifar10", False, files)
    np.testing.assert_array_equal(
        load_cifar(tmp_path, "test").images.flatten(1).numpy(), test["data"]
    )


def test_tar_ignores_other_members_and_non_regular_files(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    link = tarfile.TarInfo("cifar-10-batches-py/test_batch")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    readme = tarfile.TarInfo("cifar-10-batches-py/readme.html")
    readme.size = 5
    write_tar(tmp_path, "cifar10", False, files, extra=[(link, None), (readme, b"hello")])
    assert len(load_cifar(tmp_path, "test")) == 4


def test_python_folder_wins_over_archive(tmp_path, splits):
    train, test = splits["cifar10"]
    write_folder(tmp_path, "cifar10", False, official_files("cifar10", False, train, test))
    write_tar(tmp_path, "cifar10", True, official_files("cifar10", True, train, make_split(2, 5)))
    assert len(load_cifar(tmp_path, "test")) == 4


def fake_download(monkeypatch, fetch):
    monkeypatch.setattr(download, "fetch_official", fetch)


def test_missing_everything_fetches_the_python_archive(tmp_path, splits, monkeypatch):
    calls = []

    def fetch(name, dest, *, searched=(), progress=True):
        calls.append((name, dest, list(searched)))
        files = official_files("cifar10", False, *splits["cifar10"])
        return [write_tar(Path(dest), "cifar10", False, files)]

    fake_download(monkeypatch, fetch)
    assert len(load_cifar(tmp_path, "train", "cifar10")) == 15
    assert calls == [("cifar10", tmp_path / "cifar10", [tmp_path / "cifar10", tmp_path])]


def test_offline_missing_everything_raises_a_striate_error(tmp_path):
    from striate.errors import StriateError

    with pytest.raises(StriateError):
        load_cifar(tmp_path, "test", "cifar100")


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="split"):
        load_cifar(tmp_path, "val")
    with pytest.raises(DataError, match="variant"):
        load_cifar(tmp_path, "train", "cifar20")
    with pytest.raises(DataError, match="coarse"):
        load_cifar(tmp_path, "train", "cifar10", label_mode="coarse")


# ---------------------------------------------------------------- malicious pickles


class RunsCode:
    """Pickles as a call `func(*args)`, run by any unpickler that finds `func`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("how", ["os.system", "builtins.eval", "nested in a valid batch"])
def test_code_running_pickle_is_refused_without_side_effect(tmp_path, splits, how):
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    if how == "os.system":
        payload = pickle.dumps(RunsCode(os.system, command), protocol=2)
    elif how == "builtins.eval":
        payload = pickle.dumps(RunsCode(builtins.eval, f"__import__('os').system({command!r})"), 2)
    else:
        test = splits["cifar10"][1]
        payload = python_batch(test, "cifar10", {b"filenames": [RunsCode(os.system, command)]})
    files = official_files("cifar10", False, *splits["cifar10"])
    files["test_batch"] = payload
    folder = write_folder(tmp_path, "cifar10", False, files)
    with pytest.raises(DataError, match="refusing to unpickle") as info:
        load_cifar(tmp_path, "test")
    assert str(folder / "test_batch") in str(info.value)
    assert "not an official batch" in str(info.value)
    assert not marker.exists()
    write_tar(tmp_path / "t", "cifar10", False, files)
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_cifar(tmp_path / "t", "test")
    assert not marker.exists()


def test_allocation_and_object_arrays_are_refused():
    reconstruct = np.ndarray((0,)).__reduce__()[0]
    payloads = [
        RunsCode(np.ndarray, (2**40,)),  # would allocate 1 TiB
        RunsCode(reconstruct, np.ndarray, (2**40,), b"b"),  # likewise
        np.array([1, "a"], dtype=object),  # object arrays unpickle arbitrary objects
        RunsCode(codecs.encode, "x", "rot13"),  # only latin-1 is needed
        RunsCode(np.dtype, "O"),
    ]
    for payload in map(lambda p: pickle.dumps(p, protocol=2), payloads):
        with pytest.raises(DataError, match="batch-file"):
            safe_unpickle(payload, "batch-file")


def test_pickles_cannot_make_large_allocations_from_small_files(tmp_path):
    # a memo index of 2**31 - 1: the C unpickler would allocate a 16 GiB memo table
    assert safe_unpickle(b"\x80\x02Nr" + struct.pack("<I", 2**31 - 1) + b".", "f") is None
    # BYTEARRAY8 claiming 1 TiB: the unpickler would allocate it before reading
    with pytest.raises(DataError, match="refusing"):
        safe_unpickle(b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b".", "f")
    # one 100 kB string encoded again and again through the memo: 100 MB from 110 kB
    text = b"X" + struct.pack("<I", 100_000) + b"a" * 100_000
    again = b"h\x00h\x01h\x02\x86Ra" * 1000
    payload = b"\x80\x02c_codecs\nencode\nq\x000" + text + b"q\x010X\x06\x00\x00\x00latin1q\x020]"
    with pytest.raises(DataError, match="more data than the file holds"):
        safe_unpickle(payload + again + b".", "f")
    # the same row 10,000 times as a list: 30 MB of pixels from a 26 kB file
    row = list(range(256)) * 12
    batch = pickle.dumps({b"data": [row] * 10_000, b"labels": [0] * 10_000}, protocol=2)
    assert len(batch) < 100_000
    write_folder(
        tmp_path, "cifar10", False, {"test_batch": batch, "batches.meta": python_meta("cifar10")}
    )
    with pytest.raises(DataError, match="more pixels than the file can hold"):
        load_cifar(tmp_path, "test")


def test_safe_unpickle_accepts_what_official_batches_hold():
    value = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"x": [1, 2.5, b"a", "b"]}
    out = safe_unpickle(pickle.dumps(value, protocol=2), "f")
    np.testing.assert_array_equal(out[b"data"], value[b"data"])
    assert out[b"x"] == value[b"x"]


# ---------------------------------------------------------------- malformed files


def test_malformed_batches_name_the_file(tmp_path, splits):
    train, test = splits["cifar10"]
    base = official_files("cifar10", False, train, test)
    n = len(test["data"])
    cases = {
        "truncated pickle": (base["test_batch"][:-40], "corrupt or truncated"),
        "wrong shape": (
            python_batch(test, "cifar10", {b"data": test["data"][:, :3000]}),
            "n×3072",
        ),
        "count mismatch": (
            python_batch(test, "cifar10", {b"labels": [1] * (n - 1)}),
            "each image",
        ),
        "out of range": (python_batch(test, "cifar10", {b"labels": [10] * n}), "0..9"),
        "float data": (python_batch(test, "cifar10", {b"data": test["data"] / 255}), "integers"),
        "not a dict": (pickle.dumps([1, 2], protocol=2), "expected a dict"),
        "missing key": (pickle.dumps({b"data": test["data"]}, protocol=2), "missing labels"),
        "empty": (b"", "corrupt or truncated"),
    }
    for i, (what, (payload, message)) in enumerate(cases.items()):
        folder = write_folder(tmp_path / str(i), "cifar10", False, {**base, "test_batch": payload})
        with pytest.raises(DataError, match=message) as info:
            load_cifar(tmp_path / str(i), "test")
        assert str(folder / "test_batch") in str(info.value), what


def test_bad_meta(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    files["batches.meta"] = pickle.dumps({b"label_names": CIFAR10_NAMES[:9]}, protocol=2)
    write_folder(tmp_path, "cifar10", False, files)
    with pytest.raises(DataError, match="batches.meta.*10 names"):
        load_cifar(tmp_path, "test")


def test_missing_batch_file_in_folder_and_tar(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    del files["data_batch_3"]
    folder = write_folder(tmp_path / "dir", "cifar10", False, files)
    with pytest.raises(DataError, match="data_batch_3 is missing") as info:
        load_cifar(tmp_path / "dir", "train")
    assert str(folder / "data_batch_3") in str(info.value)
    assert len(load_cifar(tmp_path / "dir", "test")) == 4  # the test split is complete
    tar = write_tar(tmp_path / "tar", "cifar10", False, files)
    with pytest.raises(DataError, match="cifar-10-batches-py/data_batch_3") as info:
        load_cifar(tmp_path / "tar", "train")
    assert str(tar) in str(info.value)


def test_truncated_and_garbled_tar(tmp_path, splits):
    data = tar_bytes("cifar10", False, official_files("cifar10", False, *splits["cifar10"]))
    for i, payload in enumerate([data[: len(data) // 2], data[:-30], b"", data[:5] + bytes(100)]):
        path = tmp_path / str(i) / "cifar-10-python.tar.gz"
        path.parent.mkdir()
        path.write_bytes(payload)
        with pytest.raises(DataError) as info:
            load_cifar(path.parent, "test")
        assert str(path) in str(info.value)


def test_oversized_tar_member_is_refused_before_reading(tmp_path, splits):
    files = official_files("cifar10", False, *splits["cifar10"])
    data = tar_bytes("cifar10", False, files)
    # rewrite the test_batch member's size field (octal, 12 bytes at offset 124) and checksum
    raw = bytearray(gzip.decompress(data))
    at = raw.index(b"cifar-10-batches-py/test_batch")
    raw[at + 124 : at + 136] = b"%011o\x00" % (2**32)  # 4 GiB
    checksum = sum(raw[at : at + 148]) + 8 * 32 + sum(raw[at + 156 : at + 512])
    raw[at + 148 : at + 156] = b"%06o\x00 " % checksum
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="too large"):
        load_cifar(tmp_path, "test")


def test_binary_size_and_label_errors(tmp_path, splits):
    train, test = splits["cifar100"]
    base = official_files("cifar100", True, train, test)
    bad_label = bytearray(base["test.bin"])
    bad_label[3074] = 20  # second record's coarse label
    cases = {
        "truncated": (base["test.bin"][:-1], "multiple of the 3074-byte record"),
        "empty": (b"", "multiple"),
        "coarse out of range": (bytes(bad_label), "below 20"),
    }
    for i, (payload, message) in enumerate(cases.values()):
        folder = write_folder(tmp_path / str(i), "cifar100", True, {**base, "test.bin": payload})
        with pytest.raises(DataError, match=message) as info:
            load_cifar(tmp_path / str(i), "test", "cifar100")
        assert str(folder / "test.bin") in str(info.value)
    folder = write_folder(
        tmp_path / "names", "cifar100", True, {**base, "fine_label_names.txt": b"a\nb"}
    )
    with pytest.raises(DataError, match="fine_label_names.txt: expected 100 class names"):
        load_cifar(tmp_path / "names", "test", "cifar100")


# ---------------------------------------------------------------- fuzzing


def load_quietly(root: Path, variant: str = "cifar10") -> None:
    with contextlib.suppress(DataError):
        load_cifar(root, "test", variant)


@FUZZ
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes(tmp_path, splits, data):
    with contextlib.suppress(DataError):
        safe_unpickle(data, "fuzz")
    files = official_files("cifar10", False, *splits["cifar10"])
    write_folder(tmp_path / "py", "cifar10", False, {**files, "test_batch": data})
    load_quietly(tmp_path / "py")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(data)
    load_quietly(tmp_path)
    write_folder(
        tmp_path / "bin", "cifar10", True, {"test_batch.bin": data, "batches.meta.txt": data}
    )
    load_quietly(tmp_path / "bin")


def mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, xor in flips:
        if out:
            out[pos % len(out)] ^= xor
    return bytes(out[: len(out) - cut % (len(out) + 1)] if cut % 2 else out)


MUTATION = {
    "cut": st.integers(0, 10_000),
    "flips": st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
}


@FUZZ
@given(**MUTATION, variant=st.sampled_from(["cifar10", "cifar100"]))
def test_fuzz_mutated_pickle(tmp_path, splits, cut, flips, variant):
    files = official_files(variant, False, [], splits[variant][1])
    name = "test_batch" if variant == "cifar10" else "test"
    files[name] = mutate(files[name], cut, flips)
    write_folder(tmp_path, variant, False, files)
    load_quietly(tmp_path, variant)


@FUZZ
@given(**MUTATION)
def test_fuzz_mutated_tar(tmp_path, splits, cut, flips):
    small = {"test_batch": python_batch(make_split(1, 0), "cifar10")}
    small["batches.meta"] = python_meta("cifar10")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(
        mutate(tar_bytes("cifar10", False, small), cut, flips)
    )
    load_quietly(tmp_path)


@FUZZ
@given(**MUTATION)
def test_fuzz_mutated_binary(tmp_path, splits, cut, flips):
    files = official_files("cifar100", True, [], splits["cifar100"][1])
    files["test.bin"] = mutate(files["test.bin"], cut, flips)
    write_folder(tmp_path, "cifar100", True, files)
    load_quietly(tmp_path, "cifar100")
