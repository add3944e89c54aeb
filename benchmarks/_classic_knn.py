"""Exact 1-NN on CIFAR-10 (JPEG copy): striate's KNNClassifier against faiss at its best.

    python benchmarks/_classic_knn.py             # 50,000 train × 10,000 test × 3,072 features
    python benchmarks/_classic_knn.py --quick     # random 10,000 × 2,000 subset: a smoke test
    python benchmarks/_classic_knn.py --threads 2 # fix torch's thread count
    python benchmarks/_classic_knn.py --repeats 3 # rounds of striate and every faiss configuration

All programs run on the same float32 pixels (0–1), each timed for fit + predict (the label lookup
included for faiss): striate ``KNNClassifier(device="cpu")``, faiss ``IndexFlatL2`` (add, then
search with k=1) and scikit-learn ``KNeighborsClassifier(algorithm="brute", n_jobs=-1)``.

faiss at its best: the faiss-cpu wheel bundles its own OpenBLAS, which picks its kernels when it
loads, from the CPU or from ``OPENBLAS_CORETYPE``. An old bundled OpenBLAS may not recognise a
recent CPU and fall back to generic SSE3 ("Prescott") kernels, and another kernel than the one it
detects may be faster. So faiss runs as installed and with every core type this CPU can execute
(decided from /proc/cpuinfo: Haswell and Zen with AVX2 + FMA, SkylakeX with AVX-512F, Cooperlake
with AVX512-BF16, SapphireRapids with AMX), each configuration in its own child process; a core
type this OpenBLAS does not know (it then falls back to its own detection) is listed and skipped.
In each of ``--repeats`` rounds striate runs once as it chooses its GEMM library (torch's MKL or
numpy's OpenBLAS, measured: ``striate.classic._gemm``) and once with each forced
(``STRIATE_CPU_GEMM``), then each faiss configuration once; the best
time of each is kept, all are printed, and striate is compared with the fastest configuration.
Its predictions must equal striate's (both give the nearest training image; striate's search is
exact in float64 with ties to the lower index, faiss's is float32, so a difference would be a
near-tie: the run says which and fails). One extra striate run under timers and torch's profiler
shows where its time goes. A full run is appended to ``results/classic_knn.jsonl`` and written
to BENCHMARKS.md's knn table. Absolute times vary between machines and with the load.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from _common import RESULTS, append_record, print_machine, shared_data, timed, write_table

SECTION = "knn"
RECORD = RESULTS / "classic_knn.jsonl"
# OpenBLAS core type for OPENBLAS_CORETYPE, and the /proc/cpuinfo flags a CPU needs to run it
CORE_TYPES = {
    "Haswell": ("avx2", "fma"),
    "Zen": ("avx2", "fma"),
    "SkylakeX": ("avx512f",),
    "Cooperlake": ("avx512_bf16",),
    "SapphireRapids": ("amx_tile", "amx_bf16"),
}
AS_INSTALLED = "as installed"
# the libraries striate's CPU GEMM can use (striate.classic._gemm), each also timed on its own
GEMMS = {"torch": "torch's MKL", "numpy": "numpy's OpenBLAS"}


def _row(program: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "program": program, "value": value, "unit": unit, "note": note}


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _candidates() -> list[str]:
    """The core types this CPU can execute (OPENBLAS_CORETYPE takes any, and SIGILLs)."""
    flags = _cpu_flags()
    return [core for core, need in CORE_TYPES.items() if all(f in flags for f in need)]


def _cifar(quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from striate import load_dataset
    from striate.classic._base import image_features

    data = shared_data()
    zip_path = data / "cifar10" / "cifar10-jpeg.zip"
    train = load_dataset(zip_path, "train", progress=False)
    test = load_dataset(zip_path, "test", progress=False)
    if quick:  # a random subset: the folder order groups the images by class
        gen = torch.Generator().manual_seed(0)
        train = train[torch.randperm(len(train), generator=gen)[:10_000].sort().values]
        test = test[torch.randperm(len(test), generator=gen)[:2_000].sort().values]
    return (
        image_features(train).numpy(),
        train.labels.numpy(),
        image_features(test).numpy(),
        test.labels.numpy(),
    )


# ---------------------------------------------------------------- faiss, in child processes


def _openblas_core() -> str:
    """The kernels faiss's OpenBLAS chose (call after importing faiss)."""
    with open("/proc/self/maps") as maps:
        path = next((line.split()[-1] for line in maps if "libopenblas" in line), None)
    if path is None:
        return "unknown (no OpenBLAS loaded)"
    fn = ctypes.CDLL(path).openblas_get_corename
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _child(config: str, job: list[str]) -> dict:
    """This file as a faiss child, OPENBLAS_CORETYPE set to `config` (unset: as installed)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if config != AS_INSTALLED:
        env["OPENBLAS_CORETYPE"] = config
    out = subprocess.run(
        [sys.executable, __file__, *job], check=True, env=env, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _faiss_child(folder: str | None) -> None:
    """Child: print the core OpenBLAS runs; with `folder`, also time faiss on its arrays."""
    import faiss

    result: dict = {"core": _openblas_core(), "threads": faiss.omp_get_max_threads()}
    if folder is not None:
        X, y, Q = (np.load(Path(folder) / f"{name}.npy") for name in ("X", "y", "Q"))

        def run() -> tuple[np.ndarray, np.ndarray]:
            index = faiss.IndexFlatL2(X.shape[1])
            index.add(X)
            _, nearest = index.search(Q, 1)
            return nearest[:, 0], y[nearest[:, 0]]

        (nearest, _), result["seconds"] = timed(run)
        result["nearest"] = nearest.tolist()
    print(json.dumps(result))


# ---------------------------------------------------------------- striate


def _striate(X: np.ndarray, y: np.ndarray, Q: np.ndarray, gemm: str = "") -> np.ndarray:
    """striate's fit + predict; `gemm` fixes the CPU GEMM's library (empty: striate's choice)."""
    from striate.classic.knn import KNNClassifier

    before = os.environ.pop("STRIATE_CPU_GEMM", None)
    if gemm:
        os.environ["STRIATE_CPU_GEMM"] = gemm
    try:
        return KNNClassifier(n_neighbors=1, device="cpu").fit(X, y).predict(Q)
    finally:
        os.environ.pop("STRIATE_CPU_GEMM", None)
        if before is not None:
            os.environ["STRIATE_CPU_GEMM"] = before


def _striate_phases(X: np.ndarray, y: np.ndarray, Q: np.ndarray) -> dict[str, float]:
    """One striate run with timers around its parts (seconds, each without the timed parts it
    calls): fit, building the principal subspace, the subspace pass, the full-dimension fast pass,
    the certificate with the exact float64 re-rank of the candidates, the brute-force fallback and
    the rest (labels, votes); and from torch's profiler and a timer on numpy's products, the
    distance matmuls and the top-k selections inside them."""
    from striate.classic import _knn_index, knn

    parts = {
        "_use_projection": "building the subspace",
        "_projected": "subspace pass",
        "_candidates": "full fast pass",
        "_settle": "certificate + exact re-rank",
        "_exact_all": "exact fallback",
    }
    spent = dict.fromkeys(["fit", *parts.values()], 0.0)
    blas = {"numpy matmul": 0.0}
    nested: list[float] = []  # time of the timed calls inside each running timed call

    def timer(name: str, fn):
        def wrapped(*args, **kwargs):
            nested.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                spent[name] += elapsed - nested.pop()
                if nested:
                    nested[-1] += elapsed

        return wrapped

    originals = {attr: getattr(_knn_index.Index, attr) for attr in parts}
    matmul = _knn_index.gemm

    def numpy_matmul(a, b, out, library):  # numpy's BLAS is outside torch's profiler
        t0 = time.perf_counter()
        try:
            return matmul(a, b, out, library)
        finally:
            if library == "numpy":
                blas["numpy matmul"] += time.perf_counter() - t0

    try:
        _knn_index.gemm = numpy_matmul
        for attr, name in parts.items():
            setattr(_knn_index.Index, attr, timer(name, originals[attr]))
        activities = [torch.profiler.ProfilerActivity.CPU]
        with torch.profiler.profile(activities=activities) as prof:
            t0 = time.perf_counter()
            model = timer("fit", knn.KNNClassifier(n_neighbors=1, device="cpu").fit)(X, y)
            model.predict(Q)
            total = time.perf_counter() - t0
    finally:
        _knn_index.gemm = matmul
        for attr, fn in originals.items():
            setattr(_knn_index.Index, attr, fn)
    ops = {e.key: e.cpu_time_total / 1e6 for e in prof.key_averages()}
    torch_matmul = sum(ops.get(f"aten::{op}", 0.0) for op in ("addmm", "mm", "bmm"))
    return {
        "total (profiled)": total,
        **spent,
        "matmuls (torch's and numpy's)": torch_matmul + blas["numpy matmul"],
        "top-k (aten::topk)": ops.get("aten::topk", 0.0),
        "rest": total - sum(spent.values()),
    }


# ---------------------------------------------------------------- the comparison


def _repeats(quick: bool, repeats: int | None) -> int:
    return max(1, repeats if repeats is not None else (1 if quick else 3))


def bench(quick: bool, repeats: int | None = None, record: bool | None = None) -> list[dict]:
    """Best fit + predict times over `repeats` rounds (striate, then each faiss configuration),
    the ratios to the fastest faiss, where striate's time goes, accuracies and agreement."""
    from sklearn.neighbors import KNeighborsClassifier

    repeats = _repeats(quick, repeats)
    record = not quick if record is None else record
    configs, skipped = [], {}
    for config in [AS_INSTALLED, *_candidates()]:
        core = _child(config, ["--faiss-child", "-"])["core"]
        if config == AS_INSTALLED or core.lower() == config.lower():
            configs.append(config)
        else:
            skipped[config] = core
    for config, core in skipped.items():
        print(f"faiss: OPENBLAS_CORETYPE={config} unknown to its OpenBLAS (runs {core}): skipped")

    X, y, Q, yq = _cifar(quick)
    load_before = os.getloadavg()
    t_striate, t_faiss = float("inf"), dict.fromkeys(configs, float("inf"))
    t_gemm = dict.fromkeys(GEMMS, float("inf"))
    cores, nearest, faiss_threads = {}, {}, 0
    with tempfile.TemporaryDirectory(prefix="striate-knn-") as tmp:
        for name, array in (("X", X), ("y", y), ("Q", Q)):
            np.save(Path(tmp) / f"{name}.npy", array)
        for r in range(repeats):
            p_striate, t = timed(lambda: _striate(X, y, Q))
            t_striate = min(t_striate, t)
            line = [f"striate {t:.2f} s"]
            for gemm in GEMMS:
                _, t = timed(lambda g=gemm: _striate(X, y, Q, g))
                t_gemm[gemm] = min(t_gemm[gemm], t)
                line.append(f"striate {gemm} BLAS {t:.2f} s")
            for config in configs:
                result = _child(config, ["--faiss-child", tmp])
                t_faiss[config] = min(t_faiss[config], result["seconds"])
                cores[config], faiss_threads = result["core"], result["threads"]
                nearest[config] = np.asarray(result["nearest"])
                line.append(f"faiss {config} {result['seconds']:.2f} s")
            print(f"round {r + 1}/{repeats}: " + ", ".join(line), flush=True)
    phases = _striate_phases(X, y, Q)
    model = KNeighborsClassifier(n_neighbors=1, algorithm="brute", n_jobs=-1)
    p_sklearn, t_sklearn = timed(lambda: model.fit(X, y).predict(Q))
    load_after = os.getloadavg()

    best = min(configs, key=t_faiss.__getitem__)
    shape = f"{len(X):,} train × {len(Q):,} test × {X.shape[1]:,} features, float32"
    env = (
        f"torch threads {torch.get_num_threads()}, faiss threads {faiss_threads}, "
        f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (1-min)"
    )
    from striate.classic import _gemm

    full = GEMMS[_gemm.gemm_library(1024, X.shape[1], 8192)]
    rows = [
        _row(
            "striate KNNClassifier fit+predict",
            t_striate,
            "s",
            f"best of {repeats}; {shape}; subspace pass in torch, full pass chose {full}",
        )
    ]
    for gemm, library in GEMMS.items():
        rows.append(_row(f"striate with STRIATE_CPU_GEMM={gemm}", t_gemm[gemm], "s", library))
    for config in configs:
        how = "no OPENBLAS_CORETYPE" if config == AS_INSTALLED else f"OPENBLAS_CORETYPE={config}"
        note = f"{how}: OpenBLAS runs {cores[config]}" + (" (fastest)" if config == best else "")
        rows.append(_row(f"faiss IndexFlatL2 {config}", t_faiss[config], "s", note))
    rows.append(_row("sklearn KNeighborsClassifier brute fit+predict", t_sklearn, "s", env))
    rows.append(
        _row(
            f"ratio striate / fastest faiss ({best})", t_striate / t_faiss[best], "×", "goal ≤ 1.0"
        )
    )
    rows.append(_row("ratio sklearn / striate", t_sklearn / t_striate, "×"))
    for part, seconds in phases.items():
        rows.append(_row(f"striate time: {part}", seconds, "s", "one extra run, profiled"))
    for name, pred in (("striate", p_striate), (f"faiss {best}", y[nearest[best]])):
        rows.append(_row(f"accuracy {name}", float((pred == yq).mean()), "fraction"))
    rows.append(_row("accuracy sklearn", float((p_sklearn == yq).mean()), "fraction"))
    differ = []
    for config in configs:
        rows.append(_agreement(f"faiss {config}", y[nearest[config]], p_striate))
        pred = y[nearest[config]]
        differ += _differences(f"faiss {config}", X, Q, pred, p_striate, nearest[config])
    rows.append(_agreement("sklearn", p_sklearn, p_striate))

    if record:
        date = datetime.date.today().isoformat()
        append_record(RECORD, [{**r, "date": date, "repeats": repeats} for r in rows])
        write_table("_classic_knn", _table(rows, date))
    assert not differ, "faiss and striate disagree:\n" + "\n".join(differ)
    return rows


def _agreement(name: str, pred: np.ndarray, reference: np.ndarray) -> dict:
    n_diff = int((pred != reference).sum())
    same = float((pred == reference).mean())
    return _row(f"predictions equal, striate vs {name}", same, "fraction", f"{n_diff} differ")


def _differences(name: str, X, Q, pred: np.ndarray, reference: np.ndarray, nearest) -> list[str]:
    """A line for each query where `name`'s label `pred` differs from striate's `reference`, with
    the float64 distances of both neighbours (equal or nearly: a tie float32 cannot resolve)."""
    from striate.classic.knn import KNNClassifier

    queries = np.flatnonzero(pred != reference)
    if not len(queries):
        return []
    model = KNNClassifier(n_neighbors=1, device="cpu").fit(X, np.zeros(len(X), np.int64))
    _, exact = model.kneighbors(Q[queries])
    lines = []
    for q, mine in zip(queries, exact[:, 0].tolist(), strict=True):
        theirs = int(nearest[q])
        d = [float(((Q[q].astype(np.float64) - X[j]) ** 2).sum()) for j in (mine, theirs)]
        lines.append(
            f"{name}, query {q}: striate's neighbour {mine} (d² {d[0]!r}), "
            f"faiss's {theirs} (d² {d[1]!r})"
        )
    return lines


def _print(rows: list[dict]) -> None:
    for r in rows:
        value = f"{r['value']:.4g}"
        print(f"{r['section']:5} {r['program']:48} {value:>10} {r['unit']:9} {r['note']}")


def _table(rows: list[dict], date: str) -> str:
    lines = [f"Run of {date} (`benchmarks/_classic_knn.py`):", "", "| | value | note |"]
    lines.append("| --- | ---: | --- |")
    for r in rows:
        unit = "" if r["unit"] == "fraction" else f" {r['unit']}"
        value = f"{r['value']:.4f}" if r["unit"] == "fraction" else f"{r['value']:.2f}{unit}"
        lines.append(f"| {r['program'].strip()} | {value} | {r['note']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 × 2,000 subset: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="rounds of striate and each faiss configuration"
    )
    parser.add_argument("--faiss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.faiss_child:
        _faiss_child(None if args.faiss_child == "-" else args.faiss_child)
        return
    print_machine()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    _print(bench(args.quick, args.repeats))


if __name__ == "__main__":
    main()
