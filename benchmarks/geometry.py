"""Chamfer distance: striate's grid search and brute force (torch) against scipy's cKDTree.

    python benchmarks/geometry.py            # 10^4 and 10^5 points a cloud (~15 min, 2 busy cores)
    python benchmarks/geometry.py --quick    # 10^3 and 10^4 points, one repeat: records nothing
    python benchmarks/geometry.py --device cuda --threads 16 --sizes 10000,100000,1000000

Two pairs of clouds, N points each, float32, seeded: a torus against another sampling of the same
torus (a reconstruction close to its target: nearest neighbours a fraction of the sampling's
spacing away) and a torus against a cylinder (different shapes: most neighbours far away).
striate: `striate.geometry.chamfer_distance(x, y, squared=False)`, the exact nearest neighbours of
both directions: through a grid with a certificate where it pays (`geometry._grid_nn`), the rest
by chunked matrix products (64 MiB of distances at a time). scipy: build a
cKDTree on each cloud and query the other one against it (`workers` = the thread count), the
mean of both directions' distances; the build is timed with the queries, as one Chamfer
evaluation needs both. The two values are asserted equal (relative 1e-4). Times are medians of
--repeats calls after a warm-up (the checked call), with the same thread count for both
(torch.set_num_threads(T), cKDTree.query(workers=T)). Each full run is appended to
results/geometry.jsonl; the table is printed for BENCHMARKS.md. With --device cuda, striate's
clouds live on the GPU (float() of the result waits for it) while scipy runs on the CPU's
--threads workers.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from statistics import median

import numpy as np
import scipy
import torch
from scipy.spatial import cKDTree

from _common import RESULTS, append_record, cpu_name, print_machine, ratio, timed
from striate.geometry import chamfer_distance, sample_surface

RECORD = RESULTS / "geometry.jsonl"


def scipy_chamfer(x: np.ndarray, y: np.ndarray, workers: int) -> float:
    d_xy, _ = cKDTree(y).query(x, workers=workers)
    d_yx, _ = cKDTree(x).query(y, workers=workers)
    return float(d_xy.mean() + d_yx.mean())


PAIRS = ("torus", "cylinder")  # the second cloud's shape; the first is always a torus


def bench(n: int, other: str, threads: int, repeats: int, device: str) -> dict:
    x, _ = sample_surface("torus", n, seed=0)
    y, _ = sample_surface(other, n, seed=1)
    xn, yn = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    x, y = x.to(device), y.to(device)

    def ours_call() -> float:
        out = float(chamfer_distance(x, y, squared=False))  # float(): waits for the GPU
        return out

    ours = ours_call()
    theirs = scipy_chamfer(xn, yn, threads)
    assert abs(ours - theirs) <= 1e-4 * theirs, (ours, theirs)
    with torch.inference_mode():  # the calls above were the warm-up
        t_striate = median(
            [timed(lambda: chamfer_distance(x, y, squared=False))[1] for _ in range(repeats)]
        )
    t_scipy = median([timed(lambda: scipy_chamfer(xn, yn, threads))[1] for _ in range(repeats)])
    return {
        "points": n,
        "pair": f"torus–{other}",
        "chamfer": ours,
        "striate_s": t_striate,
        "scipy_ckdtree_s": t_scipy,
        "striate_over_scipy": ratio(t_striate, t_scipy),
    }


def table(rows: list[dict], where: str) -> str:
    lines = [
        "| clouds | points a cloud | striate (s) | scipy cKDTree build + query (s) | "
        "striate / scipy | Chamfer (both agree) |",
        "| --- |---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.get('pair', 'torus–cylinder')} | {r['points']:,} | {r['striate_s']:.3f} | "
            f"{r['scipy_ckdtree_s']:.3f} | "
            f"{r['striate_over_scipy']:.1f}× | {r['chamfer']:.5f} |"
        )
    lines.append(f"\n{where}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="torch threads and cKDTree workers")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per measurement")
    ap.add_argument("--quick", action="store_true", help="small clouds, one repeat: no record")
    ap.add_argument("--device", default="cpu", help="where striate runs: cpu or cuda")
    ap.add_argument("--sizes", default=None, help="points a cloud, comma-separated")
    ap.add_argument("--record", default=str(RECORD), help="the JSON-lines record to append to")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    if args.sizes:
        sizes = tuple(int(v) for v in args.sizes.split(","))
    repeats = 1 if args.quick else args.repeats
    rows = []
    for other in PAIRS:
        for n in sizes:
            rows.append(bench(n, other, args.threads, repeats, args.device))
            print(rows[-1], flush=True)
    where = cpu_name(args.threads)
    if args.device != "cpu":
        where = f"striate on {torch.cuda.get_device_name()}, scipy on {where}"
    print(table(rows, where))
    if args.quick:
        return
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    meta = {"date": now, "device": where, "torch": torch.__version__,
            "scipy": scipy.__version__, "repeats": repeats}  # fmt: skip
    append_record(Path(args.record), [meta | r for r in rows])


if __name__ == "__main__":
    print_machine()
    main()
