"""The float32 matrix product of the kNN fast pass on a CPU, by whichever BLAS is faster here.

torch's CPU build multiplies with MKL, numpy's wheel with OpenBLAS. Which is faster depends on
the CPU: on an AVX2-only AMD EPYC OpenBLAS ran the kNN's 1024 × 3072 × 8192 blocks 10-25 % faster
(MKL's AMD code paths are not its best), on Intel CPUs MKL usually wins. The fast pass only needs a
product whose error obeys the standard dot-product bound (every BLAS does), since the exact
re-ranking decides the answer; so the library can be chosen by measurement without changing any
result. The choice is measured once per process, shape and thread count, on the block shape in
use, and `STRIATE_CPU_GEMM=torch|numpy` fixes it (benchmarks time both that way).
"""

from __future__ import annotations

import functools
import os
import time

import numpy as np
import torch
from threadpoolctl import ThreadpoolController

from striate.errors import ConfigError

BACKENDS = ("torch", "numpy")
_ROUNDS = 3  # alternating timed products per library when choosing


def gemm_library(rows: int, inner: int, cols: int) -> str:
    """The library for float32 CPU products of this shape: $STRIATE_CPU_GEMM, else the faster."""
    fixed = os.environ.get("STRIATE_CPU_GEMM", "").strip()
    if fixed:
        if fixed not in BACKENDS:
            raise ConfigError(
                f"STRIATE_CPU_GEMM must be one of {', '.join(BACKENDS)}, got {fixed!r}: "
                "unset it to let striate measure which is faster"
            )
        return fixed
    return _measured(rows, inner, cols, torch.get_num_threads())


def gemm(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor, library: str) -> torch.Tensor:
    """`out = a @ b` for float32 CPU tensors (`out` C-contiguous; `a`, `b` may be transposed
    views), by `library`, with torch's thread count."""
    if library == "torch":
        return torch.mm(a, b, out=out)
    with _blas_threads(torch.get_num_threads()):
        np.matmul(a.numpy(), b.numpy(), out=out.numpy())
    return out


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def _blas_threads(n: int):
    """numpy's BLAS limited to `n` threads while the product runs (torch's own pool untouched)."""
    return _controller().limit(limits=n, user_api="blas")


@functools.cache
def _measured(rows: int, inner: int, cols: int, threads: int) -> str:
    """Time both libraries on a product of (a part of) this shape, alternating, best of each."""
    rows, cols = min(rows, 512), min(cols, 2048)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(rows, inner, generator=g)
    b = torch.randn(cols, inner, generator=g).T
    out = torch.empty(rows, cols)
    best = {name: float("inf") for name in BACKENDS}
    for name in BACKENDS:  # warm-up: thread pools started, pages touched
        gemm(a, b, out, name)
    for _ in range(_ROUNDS):
        for name in BACKENDS:
            start = time.perf_counter()
            gemm(a, b, out, name)
            best[name] = min(best[name], time.perf_counter() - start)
    return min(BACKENDS, key=best.__getitem__)
