"""Shared fixtures: the real datasets in ../shared/data, and private data/cache folders per run."""

from __future__ import annotations

import os
from pathlib import Path

# Before anything imports torch: OpenMP threads sleep instead of spinning while they wait, which
# keeps the suite from stalling on a loaded 2-core machine (see striate/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_striate_dirs(tmp_path_factory):
    """Keep tests away from the user's ~/.cache: downloads and decode caches go to a temp dir."""
    base = tmp_path_factory.mktemp("striate-home")
    old = {k: os.environ.get(k) for k in ("STRIATE_DATA", "STRIATE_CACHE", "STRIATE_OFFLINE")}
    os.environ["STRIATE_DATA"] = str(base / "datasets")
    os.environ["STRIATE_CACHE"] = str(base / "decoded")
    os.environ["STRIATE_OFFLINE"] = "1"  # tests never reach for the internet
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets (STRIATE_SHARED_DATA, default ../shared/data); missing under CI fails."""
    path = Path(os.environ.get("STRIATE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not (path / "mnist").is_dir() or not (path / "cifar10" / "cifar10-jpeg.zip").is_file():
        msg = f"real datasets not found at {path} (set STRIATE_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path
