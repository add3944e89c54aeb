"""write_idx: the bytes the IDX format defines (header read back with struct, not with
read_idx), round trips through read_idx and load_mnist for every type, gzip or plain, atomic
writes that never replace a file unasked."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from striate.data.idx import load_mnist, read_idx, write_idx
from striate.errors import ConfigError


def test_the_bytes_are_the_idx_format(tmp_path):
    a = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    raw = write_idx(tmp_path / "a-idx3-int", a).read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 3])
    assert struct.unpack(">3I", raw[4:16]) == (2, 3, 4)
    assert struct.unpack(">24i", raw[16:]) == tuple(range(24))
    gz = write_idx(tmp_path / "a-idx3-int.gz", a.astype("<i4"))
    assert gzip.decompress(gz.read_bytes()) == raw
    assert write_idx(tmp_path / "b.gz", a).read_bytes() == gz.read_bytes()  # reproducible


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", "<i2", "i4", "f4", ">f8"])
@pytest.mark.parametrize("name", ["x-idx", "x-idx.gz"])
def test_round_trip_every_type(tmp_path, dtype, name):
    rng = np.random.default_rng(0)
    a = (rng.random((3, 5, 2)) * 100 - (0 if dtype == "u1" else 50)).astype(dtype)
    back = read_idx(write_idx(tmp_path / name, a))
    assert back.dtype == a.dtype.newbyteorder("=") and back.shape == a.shape
    np.testing.assert_array_equal(back, a)


def test_load_mnist_reads_written_non_28_images(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (7, 42, 42), dtype=np.uint8)
    labels = np.arange(7, dtype=np.uint8)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", labels)
        ds = load_mnist(tmp_path, split)
        assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
        assert ds.labels.tolist() == list(range(7))


def test_refuses_to_replace_and_bad_arrays(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(b"user data")
    with pytest.raises(ConfigError, match="already exists: pass overwrite=True"):
        write_idx(path, np.zeros(3, np.uint8))
    assert path.read_bytes() == b"user data"
    write_idx(path, np.zeros(3, np.uint8), overwrite=True)
    assert read_idx(path).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="got int64"):
        write_idx(tmp_path / "y", np.zeros(3, np.int64))
    with pytest.raises(ConfigError, match="1 to 4 dimensions"):
        write_idx(tmp_path / "y", np.zeros((1,) * 5, np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gz"]  # no temporary files left
