"""glibc's malloc told to keep the memory a CPU training step (or batch) frees, for the next.

With glibc's defaults every allocation above ``M_MMAP_THRESHOLD`` (128 KiB, rising to at most
32 MiB) is a fresh ``mmap`` that ``free`` hands back to the system. A training step on a CPU
allocates and frees its activations and gradients, hundreds of MB at batch 1024, so every step
faults each of their pages in again. Measured on the ``cifar10-fast`` recipe at batch 1024 (2-core
AMD EPYC, fp32, one thread): 746,000 minor page faults and 2.3 s of kernel time per step of 22.7 s;
with mmap off and the top of the heap kept (``mallopt(M_MMAP_MAX, 0)``, ``M_TRIM_THRESHOLD``
2 GiB), 2 faults and 0.06 s per step, and 15.0 s per step.

Only in loops that repeat the same shapes: a loop whose large temporaries change size from one
round to the next can fragment a heap without mmap and grow without bound (seen: a chunked
nearest-neighbour search killed at 23 GB). Training repeats its shapes step after step, and so do
the attribution methods' batches of scaled, noisy or occluded copies of an image: `Trainer.fit`
on a CPU, `integrated_gradients`, `smooth_grad`, `occlusion` and the deletion and insertion curves
hold `reusing_freed_memory()` and leave glibc's settings restored, and the freed heap top returned
to the system (``malloc_trim``), when they end.
Integrated gradients of EfficientNet-Lite0 (50 steps in one batch, 224×224, 2 threads, same
machine): 2.4–2.5 M page faults, 7.2–8.7 s of kernel time and 6.3–7.8 s without; 1.1 M, 2.7–4.4 s
and 3.8–4.6 s with (the backward pass reuses the forward's freed buffers).

It is left alone when the user set glibc's own tunables (``MALLOC_*_`` variables or
``GLIBC_TUNABLES``) or ``STRIATE_MALLOC=system``, and on systems without glibc (musl, macOS,
Windows).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import threading
from collections.abc import Iterator

# mallopt's parameters (glibc's malloc.h) and glibc's defaults for the two this module sets
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
DEFAULT_TRIM_THRESHOLD = 128 * 1024
DEFAULT_MMAP_MAX = 65536
TRIM_THRESHOLD = (1 << 31) - 1  # the largest an int holds: freed heap top kept up to 2 GiB

_lock = threading.Lock()
_depth = 0


def user_chose() -> str | None:
    """Why striate leaves malloc alone: the variable the user set, or None."""
    if os.environ.get("STRIATE_MALLOC", "").strip().lower() == "system":
        return "STRIATE_MALLOC=system"
    for name in os.environ:
        if (name.startswith("MALLOC_") and name.endswith("_")) or name == "GLIBC_TUNABLES":
            return name
    return None


def applies() -> bool:
    """Whether `reusing_freed_memory` changes anything here (glibc, and the user chose nothing)."""
    return user_chose() is None and _libc() is not None


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


@contextlib.contextmanager
def reusing_freed_memory(on: bool = True) -> Iterator[bool]:
    """Within: glibc's mmap of large blocks off and the freed heap top kept; yields whether the
    settings apply. Nested uses share the outermost one. `on=False` changes nothing (for work
    that runs on a GPU)."""
    global _depth
    if not on or not applies():
        yield False
        return
    libc = _libc()
    with _lock:
        _depth += 1
        applied = _set(libc, 0, TRIM_THRESHOLD) if _depth == 1 else True
    try:
        yield applied
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _set(libc, DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


def _set(libc: ctypes.CDLL, mmap_max: int, trim: int) -> bool:
    return bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
