"""fetch_official against a local HTTP server: good, corrupt, truncated, missing, refused files."""

from __future__ import annotations

import functools
import hashlib
import re
import socket
import threading
import urllib.parse
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from striate.data import download
from striate.data.download import OFFICIAL, RemoteFile, fetch_official
from striate.errors import DownloadError

NAMES = ("alpha.bin", "beta.bin")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Handler(SimpleHTTPRequestHandler):
    """Serves files from a folder; records each request; can truncate or redirect on demand."""

    requests: list[str]
    truncate: set[str]
    redirect: dict[str, str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        name = self.path.rsplit("/", 1)[-1]
        if name in self.redirect:
            self.send_response(302)
            self.send_header("Location", self.redirect[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif name in self.truncate:
            body = Path(self.translate_path(self.path)).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))  # promises more than it sends
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass


class Server:
    """A file server on 127.0.0.1 (port 0) in a background thread, serving `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.truncate: set[str] = set()
        self.redirect: dict[str, str] = {}
        handler = type(
            "Handler",
            (_Handler,),
            {"requests": self.requests, "truncate": self.truncate, "redirect": self.redirect},
        )
        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
        )
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/base"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def online(monkeypatch):
    """Network allowed (conftest sets STRIATE_OFFLINE=1), proxies bypassed for 127.0.0.1."""
    monkeypatch.delenv("STRIATE_OFFLINE", raising=False)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")


@pytest.fixture
def toy(tmp_path, monkeypatch, online):
    """Dataset 'toy' with two files served by a local server; OFFICIAL gets a matching entry."""
    served = tmp_path / "served" / "base" / "toy"
    served.mkdir(parents=True)
    contents = {n: bytes(range(256)) * (40 + 7 * i) + n.encode() for i, n in enumerate(NAMES)}
    for n, data in contents.items():
        (served / n).write_bytes(data)
    table = tuple(
        RemoteFile(n, f"https://example.invalid/toy/{n}", md5(contents[n])) for n in NAMES
    )
    monkeypatch.setitem(OFFICIAL, "toy", table)
    server = Server(tmp_path / "served")
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    try:
        yield server, served, contents, tmp_path / "dest"
    finally:
        server.close()


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_official_table_is_well_formed():
    assert set(OFFICIAL) >= {"mnist", "fashion-mnist", "cifar10", "cifar100"}
    mnist_names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert [r.name for r in OFFICIAL["mnist"]] == mnist_names
    assert [r.name for r in OFFICIAL["fashion-mnist"]] == mnist_names
    assert [r.name for r in OFFICIAL["cifar10"]] == ["cifar-10-python.tar.gz"]
    assert [r.name for r in OFFICIAL["cifar100"]] == ["cifar-100-python.tar.gz"]
    for name, files in OFFICIAL.items():
        for r in files:
            url = urllib.parse.urlsplit(r.url)
            # The Fashion-MNIST host is an S3 website endpoint, which serves http only.
            assert url.scheme == ("http" if name == "fashion-mnist" else "https"), r.url
            assert url.hostname and "." in url.hostname, r.url
            assert url.path.endswith("/" + r.name) and not url.query, r.url
            assert re.fullmatch(r"[0-9a-f]{32}", r.md5), r.md5
    all_md5 = [r.md5 for files in OFFICIAL.values() for r in files]
    assert len(set(all_md5)) == len(all_md5)


def test_mirror_url_appends_dataset_and_file(monkeypatch):
    r = OFFICIAL["mnist"][0]
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    assert download.mirror_url("mnist", r) == r.url
    monkeypatch.setenv(download.MIRROR_ENV, "https://mirror.example/data/")
    expected = "https://mirror.example/data/mnist/train-images-idx3-ubyte.gz"
    assert download.mirror_url("mnist", r) == expected


def test_good_download_lands_with_the_right_bytes(toy):
    server, _, contents, dest = toy
    paths = fetch_official("toy", dest, progress=True)
    assert paths == [dest / n for n in NAMES]
    for n in NAMES:
        assert (dest / n).read_bytes() == contents[n]
    assert listing(dest) == sorted(NAMES)  # no temporary files left
    assert server.requests == [f"/base/toy/{n}" for n in NAMES]


def test_corrupted_file_is_discarded(toy):
    _, served, contents, dest = toy
    bad = bytearray(contents["alpha.bin"])
    bad[100] ^= 0xFF
    (served / "alpha.bin").write_bytes(bytes(bad))
    with pytest.raises(DownloadError) as info:
        fetch_official("toy", dest, progress=False)
    msg = str(info.value)
    assert "alpha.bin" in msg and "/base/toy/alpha.bin" in msg
    assert md5(contents["alpha.bin"]) in msg and md5(bytes(bad)) in msg
    assert listing(dest) == []  # nothing under the final name, no temporary file


def test_truncated_response_is_discarded(toy):
    server, _, _, dest = toy
    server.truncate.add("alpha.bin")
    with pytest.raises(DownloadError, match=r"alpha\.bin.*truncated") as info:
        fetch_official("toy", dest, progress=False)
    assert "/base/toy/alpha.bin" in str(info.value)
    assert listing(dest) == []


def test_404_gives_the_manual_download_message(toy):
    _, served, _, dest = toy
    (served / "beta.bin").unlink()
    with pytest.raises(DownloadError) as info:
        fetch_official("toy", dest, progress=False)
    msg = str(info.value)
    assert "404" in msg
    # alpha.bin arrived before the failure and is kept; the message lists only what is missing.
    assert listing(dest) == ["alpha.bin"]
    assert "beta.bin from https://example.invalid/toy/beta.bin" in msg
    assert "alpha.bin" not in msg
    assert str(dest) in msg


def test_refused_connection_gives_the_offline_message(tmp_path, monkeypatch, online):
    table = (
        RemoteFile("a.gz", "https://example.invalid/x/a.gz", "0" * 32),
        RemoteFile("b.gz", "https://example.invalid/x/b.gz", "1" * 32),
    )
    monkeypatch.setitem(OFFICIAL, "toy", table)
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{sock.getsockname()[1]}")
        dest, looked = tmp_path / "dest", tmp_path / "elsewhere"
        with pytest.raises(DownloadError) as info:
            fetch_official("toy", dest, searched=[looked, dest], progress=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "toy" in msg and "refused" in msg.lower()
    assert f"not found in {looked}, {dest}" in msg
    assert f"into {dest}:" in msg
    assert "a.gz from https://example.invalid/x/a.gz" in msg
    assert "b.gz from https://example.invalid/x/b.gz" in msg
    assert "root=" in msg and "--root" in msg
    assert listing(dest) == []


def test_offline_env_never_touches_the_network(toy, monkeypatch):
    server, _, _, dest = toy
    monkeypatch.setenv("STRIATE_OFFLINE", "1")
    with pytest.raises(DownloadError) as info:
        fetch_official("toy", dest, searched=[dest], progress=False)
    msg = str(info.value)
    assert "STRIATE_OFFLINE" in msg
    assert f"into {dest}:" in msg
    for n in NAMES:
        assert f"{n} from https://example.invalid/toy/{n}" in msg
    assert "--root" in msg
    assert server.requests == []
    assert not dest.exists()


def test_present_files_are_not_downloaded_again(toy):
    server, _, contents, dest = toy
    dest.mkdir()
    (dest / "alpha.bin").write_bytes(b"user's own copy")  # kept as is, never overwritten
    paths = fetch_official("toy", dest, progress=False)
    assert server.requests == ["/base/toy/beta.bin"]
    assert (dest / "alpha.bin").read_bytes() == b"user's own copy"
    assert (dest / "beta.bin").read_bytes() == contents["beta.bin"]
    server.requests.clear()
    assert fetch_official("toy", dest, progress=False) == paths
    assert server.requests == []


@pytest.mark.parametrize("mirror", ["file:///tmp", "ftp://127.0.0.1/pub"])
def test_non_http_mirror_is_refused(toy, monkeypatch, mirror):
    server, _, _, dest = toy
    monkeypatch.setenv(download.MIRROR_ENV, mirror)
    with pytest.raises(DownloadError, match=r"STRIATE_DATASET_MIRROR.*only http:// and https://"):
        fetch_official("toy", dest, progress=False)
    assert server.requests == []
    assert listing(dest) == []


def test_non_http_official_url_is_refused(tmp_path, monkeypatch, online):
    table = (RemoteFile("a.gz", "file:///etc/passwd", "0" * 32),)
    monkeypatch.setitem(OFFICIAL, "toy", table)
    with pytest.raises(DownloadError, match="only http:// and https://"):
        fetch_official("toy", tmp_path, progress=False)


def test_redirect_to_non_http_is_refused(toy):
    server, _, _, dest = toy
    server.redirect["alpha.bin"] = "ftp://127.0.0.1/alpha.bin"  # urllib alone would follow it
    with pytest.raises(DownloadError, match="non-http") as info:
        fetch_official("toy", dest, progress=False)
    assert "alpha.bin from https://example.invalid/toy/alpha.bin" in str(info.value)
    assert listing(dest) == []


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(DownloadError, match="cifar10.*mnist"):
        fetch_official("imagenet", tmp_path)


def test_interrupted_temp_file_is_removed(toy, monkeypatch):
    """A connection lost while streaming leaves neither the final file nor a temp file."""
    _, _, _, dest = toy

    def boom(self, *args):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr("http.client.HTTPResponse.read", boom)
    with pytest.raises(DownloadError, match="interrupted"):
        fetch_official("toy", dest, progress=False)
    assert listing(dest) == []


def _idx_gz(arr) -> bytes:
    import gzip
    import struct

    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return gzip.compress(header + arr.tobytes())


def test_load_dataset_downloads_missing_files_then_reads_them(tmp_path, monkeypatch, online):
    import numpy as np

    from striate import load_dataset

    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(6, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([9, 0, 3, 3], dtype=np.uint8),
    }
    served = tmp_path / "served" / "base" / "fashion-mnist"
    served.mkdir(parents=True)
    table = []
    for name, arr in arrays.items():
        (served / name).write_bytes(_idx_gz(arr))
        table.append(RemoteFile(name, f"https://example.invalid/{name}", md5(_idx_gz(arr))))
    monkeypatch.setitem(OFFICIAL, "fashion-mnist", tuple(table))
    server = Server(tmp_path / "served")
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    try:
        ds = load_dataset("fashion-mnist", "test", root=tmp_path / "data")
    finally:
        server.close()
    assert listing(tmp_path / "data" / "fashion-mnist") == sorted(arrays)
    assert ds.labels.tolist() == [9, 0, 3, 3] and ds.classes[9] == "Ankle boot"
    assert np.array_equal(ds.images[:, 0].numpy(), arrays["t10k-images-idx3-ubyte.gz"])
