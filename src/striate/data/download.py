"""Download the official dataset files safely: stream, check size and MD5, then rename into place.

Nothing half-written ever sits under a final file name: each file is streamed to a temporary file
in the destination folder and renamed over the final name only after its length and MD5 check out.
When the network cannot be used (``STRIATE_OFFLINE=1``, no route, HTTP error) the error says which
files to fetch by hand, from where, and into which folder.

``STRIATE_DATASET_MIRROR`` replaces the official hosts with one base URL: every file is then
fetched from ``$STRIATE_DATASET_MIRROR/<dataset>/<file name>``, for example
``https://mirror.example/data/mnist/train-images-idx3-ubyte.gz``. The dataset folder keeps MNIST
and Fashion-MNIST apart, whose file names are the same.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from striate import __version__
from striate._atomic import atomic_write
from striate.errors import DownloadError

__all__ = ["OFFICIAL", "RemoteFile", "fetch_official", "mirror_url"]

MIRROR_ENV = "STRIATE_DATASET_MIRROR"
OFFLINE_ENV = "STRIATE_OFFLINE"
_CHUNK = 1 << 20
_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class RemoteFile:
    """One official dataset file: its name on disk, where it is published, and its MD5."""

    name: str
    url: str
    md5: str


# MNIST: yann.lecun.com no longer serves the files; this is the mirror and the MD5s of
# torchvision.datasets.MNIST (`mirrors`, `resources` in torchvision/datasets/mnist.py).
_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Fashion-MNIST: the Zalando host and MD5s in the README of zalandoresearch/fashion-mnist, also
# torchvision.datasets.FashionMNIST. It is an S3 *website* endpoint, which serves plain http only;
# the MD5 check guards the content.
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# CIFAR-10/100: Alex Krizhevsky's page at the University of Toronto, MD5s as in
# torchvision.datasets.CIFAR10 / CIFAR100 (`url`, `tgz_md5` in torchvision/datasets/cifar.py).
_KRIZ = "https://www.cs.toronto.edu/~kriz/"


def _files(base: str, md5s: dict[str, str]) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(name, base + name, md5) for name, md5 in md5s.items())


OFFICIAL: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": _files(
        _MNIST,
        {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    ),
    "fashion-mnist": _files(
        _FASHION,
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "cifar10": _files(_KRIZ, {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"}),
    "cifar100": _files(_KRIZ, {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"}),
}


def mirror_url(name: str, remote: RemoteFile) -> str:
    """Where to fetch `remote` of dataset `name`: ``$STRIATE_DATASET_MIRROR/<name>/<file>`` when
    that variable is set, else the official URL."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return remote.url
    return f"{base.rstrip('/')}/{name}/{remote.name}"


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        where = f" (from {MIRROR_ENV})" if os.environ.get(MIRROR_ENV, "").strip() else ""
        raise DownloadError(
            f"refusing to download {url}{where}: only http:// and https:// URLs are allowed, "
            f"not {scheme + '://' if scheme else 'a URL without a scheme'}; to use files you "
            f"already have, put them into the dataset folder or pass root=/--root instead"
        )


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects only to http(s) URLs (urllib alone would also follow one to ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in _SCHEMES:
            raise urllib.error.HTTPError(
                newurl, code, f"redirect to a non-http URL {newurl} refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Unreachable(Exception):
    """The server could not be reached or refused the file; `reason` is one short phrase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _open(url: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": f"striate/{__version__}"})
    try:
        opener = urllib.request.build_opener(_HttpOnlyRedirects)  # reads proxy settings now
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise _Unreachable(f"HTTP {e.code} {e.reason} from {url}") from e
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, TimeoutError):
            raise _Unreachable(f"no answer from {url} within {timeout:g} s") from e
        text = getattr(reason, "strerror", None) or str(reason)
        raise _Unreachable(f"cannot reach {url}: {text}") from e
    except TimeoutError as e:
        raise _Unreachable(f"no answer from {url} within {timeout:g} s") from e
    except (OSError, http.client.HTTPException) as e:
        raise _Unreachable(f"cannot reach {url}: {type(e).__name__}: {e}") from e


def _download(
    remote: RemoteFile, url: str, target: Path, progress: Progress, timeout: float
) -> None:
    """Stream `url` to a temporary file beside `target`; rename it to `target` if it checks out."""
    response = _open(url, timeout)
    with response:
        length = response.headers.get("Content-Length")
        expected_size = int(length) if length and length.strip().isdigit() else None
        task = progress.add_task(remote.name, total=expected_size)
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        with atomic_write(target) as out:  # removes the temporary file on any exception
            cut_short = False
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    progress.update(task, advance=len(chunk))
            except http.client.IncompleteRead as e:  # chunked bodies (and newer Pythons)
                received += len(e.partial)
                cut_short = True
            except (OSError, http.client.HTTPException) as e:
                raise DownloadError(
                    f"download of {remote.name} from {url} was interrupted after {received:,} "
                    f"bytes ({type(e).__name__}: {e}); nothing was kept, run it again to retry"
                ) from e
            if cut_short or (expected_size is not None and received != expected_size):
                want = "more" if expected_size is None else f"{expected_size:,} (Content-Length)"
                raise DownloadError(
                    f"download of {remote.name} from {url} is truncated: expected {want} bytes, "
                    f"got {received:,}; nothing was kept, run it again to retry"
                )
            got = digest.hexdigest()
            if got != remote.md5:
                raise DownloadError(
                    f"checksum mismatch for {remote.name} downloaded from {url}: expected MD5 "
                    f"{remote.md5}, got {got} ({received:,} bytes); the file was discarded. The "
                    f"server may hold a different or damaged copy: try again, check "
                    f"{MIRROR_ENV} if you set it, or put the official file into {target.parent}"
                )


def _unavailable(
    name: str, dest: Path, searched: Sequence[Path], missing: Sequence[RemoteFile], reason: str
) -> DownloadError:
    folders = list(dict.fromkeys(str(p) for p in searched)) or [str(dest)]
    files = "; ".join(f"{r.name} from {r.url}" for r in missing)
    return DownloadError(
        f"The {name} dataset files were not found in {', '.join(folders)}, and downloading them "
        f"failed ({reason}). Download them yourself and put them, unchanged, into {dest}: "
        f"{files}. Or point root= (CLI: --root) at a folder that already holds them."
    )


def fetch_official(
    name: str,
    dest: Path,
    *,
    searched: Sequence[Path] = (),
    progress: bool = True,
    timeout: float = 30,
) -> list[Path]:
    """Download the official files of dataset `name` that are missing from `dest`.

    Returns the paths of all its files in `dest`, in table order. Files already present are kept
    as they are (not re-checked, never overwritten). `searched` lists the folders the caller
    already looked in, for the error message. Raises `DownloadError` when a file cannot be fetched,
    is truncated or fails its MD5; nothing is then left under its final name.
    """
    if name not in OFFICIAL:
        raise DownloadError(
            f"no official download for dataset {name!r}; known: {', '.join(sorted(OFFICIAL))}"
        )
    dest = Path(dest)
    files = OFFICIAL[name]
    paths = [dest / r.name for r in files]
    missing = [r for r in files if not (dest / r.name).is_file()]
    if not missing:
        return paths

    urls = {r.name: mirror_url(name, r) for r in missing}
    for url in urls.values():
        _check_scheme(url)
    searched = [Path(p) for p in searched]
    if _offline():
        setting = f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]}"
        reason = f"{setting} is set, so striate does not use the network"
        raise _unavailable(name, dest, searched, missing, reason)

    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"cannot create the dataset folder {dest} ({e.strerror}); pass root=/--root a folder "
            f"you can write to"
        ) from e

    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        for remote in missing:
            target = dest / remote.name
            if target.is_file():  # another process fetched it meanwhile
                continue
            try:
                _download(remote, urls[remote.name], target, bar, timeout)
            except _Unreachable as e:
                still = [r for r in missing if not (dest / r.name).is_file()]
                raise _unavailable(name, dest, searched, still, e.reason) from e
    return paths
