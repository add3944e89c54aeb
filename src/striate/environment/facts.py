"""The facts of this machine that decide speed and correctness: versions (striate, Python, torch,
CUDA, cuDNN), GPUs, the CPU and whether it computes bf16 natively, torch's threads, free memory
and free disk where runs are written. Plain values, ready for JSON."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from striate import __version__
from striate.engine.precision import cpu_has_bf16, resolve_precision


def machine_facts(runs: str | os.PathLike = "runs") -> dict[str, Any]:
    """Everything `striate env` reports before measuring; `runs` is where runs are written (its
    nearest existing folder is asked for free disk space)."""
    return {
        "striate": __version__,
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": cuda_facts(),
        "cpu": cpu_facts(),
        "threads": {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads()},
        "memory": memory_bytes(),
        "disk": disk_facts(runs),
    }


def cuda_facts() -> dict[str, Any]:
    """The CUDA build torch was compiled against (None: a CPU-only build), cuDNN, and the GPUs."""
    built = torch.version.cuda
    available = torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if available else None
    return {
        "built_with": built,
        "available": available,
        "cudnn": cudnn_text(cudnn),
        "devices": [_gpu(i) for i in range(torch.cuda.device_count())] if available else [],
    }


def cudnn_text(version: int | None) -> str | None:
    """cuDNN's integer version as text: 90100 → "9.1.0" (8xxx: 8.9.7 = 8907)."""
    if not version:
        return None
    if version >= 10000:
        major, rest = divmod(version, 10000)
        minor, patch = divmod(rest, 100)
    else:
        major, rest = divmod(version, 1000)
        minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def _gpu(index: int) -> dict[str, Any]:
    p = torch.cuda.get_device_properties(index)
    free, _ = torch.cuda.mem_get_info(index)
    device = torch.device("cuda", index)
    return {
        "index": index,
        "name": p.name,
        "memory_total": int(p.total_memory),
        "memory_free": int(free),
        "capability": f"{p.major}.{p.minor}",
        "multiprocessors": p.multi_processor_count,
        "precision_auto": resolve_precision("auto", device).name,
    }


def cpu_facts() -> dict[str, Any]:
    """The CPU's model, its cores (all and those this process may use), and whether it has native
    bf16 (AVX512-BF16 or AMX, the check `precision="auto"` makes; STRIATE_CPU_BF16 overrides it)."""
    forced = os.environ.get("STRIATE_CPU_BF16", "").strip() or None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    return {
        "model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "native_bf16": cpu_has_bf16(),
        "bf16_forced_by": f"STRIATE_CPU_BF16={forced}" if forced else None,
        "precision_auto": resolve_precision("auto", torch.device("cpu")).name,
    }


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (Linux), else what Python's platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def memory_bytes() -> dict[str, int | None]:
    """Total and available RAM in bytes: /proc/meminfo's MemTotal and MemAvailable on Linux (what
    a new process can take without swapping), else sysconf's physical and free pages."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[key] = int(parts[0]) * 1024  # kB
        if "MemTotal" in fields:
            return {"total": fields["MemTotal"], "available": fields.get("MemAvailable")}
    except OSError:
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return {
            "total": os.sysconf("SC_PHYS_PAGES") * page,
            "available": os.sysconf("SC_AVPHYS_PAGES") * page,
        }
    except (ValueError, OSError, AttributeError):
        return {"total": None, "available": None}


def disk_facts(runs: str | os.PathLike) -> dict[str, Any]:
    """Free and total space of the file system holding `runs` (or, when it does not exist yet, its
    nearest existing parent folder)."""
    path = Path(runs).expanduser().absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return {"path": str(path), "free": usage.free, "total": usage.total}
