"""Shared fixtures: the real datasets in ../shared/data, and private data/cache folders per run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# Before anything imports torch: OpenMP threads sleep instead of spinning while they wait, which
# keeps the suite from stalling on a loaded 2-core machine (see striate/__init__.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Under pytest-xdist (`make test` runs one worker per core) each worker gets its share of the
# cores, so that the workers' torch threads do not fight over them.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

# precision="auto" means fp32 on every CPU unless a test asks for bf16 (the `cpu_bf16` fixtures):
# the suite must not depend on whether the host CPU has native bf16 (AVX512-BF16/AMX).
os.environ["STRIATE_CPU_BF16"] = "0"

import pytest  # noqa: E402  (after the environment above, before torch)

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


@pytest.fixture(params=[True, False], ids=["cpu-bf16", "cpu-fp32"])
def cpu_bf16(request, monkeypatch) -> bool:
    """Run a test twice: with precision "auto" resolving to bf16 on the CPU (as on CPUs with native
    bf16), and to fp32 (as on CPUs without); STRIATE_CPU_BF16 overrides the capability check."""
    monkeypatch.setenv("STRIATE_CPU_BF16", "1" if request.param else "0")
    return request.param


@pytest.fixture(scope="module", params=[True, False], ids=["cpu-bf16", "cpu-fp32"])
def module_cpu_bf16(request) -> Iterator[bool]:
    """`cpu_bf16` for a module's shared fixtures (e.g. runs trained once per module)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STRIATE_CPU_BF16", "1" if request.param else "0")
        yield request.param
