"""Exact 1-NN on CIFAR-10 (JPEG copy): striate's KNNClassifier against scikit-learn and faiss.

    python benchmarks/_classic_knn.py             # 50,000 train × 10,000 test × 3,072 features
    python benchmarks/_classic_knn.py --quick     # random 10,000 × 2,000 subset: a smoke test
    python benchmarks/_classic_knn.py --threads 2 # fix torch's thread count
    python benchmarks/_classic_knn.py --repeats 3 # alternate striate and faiss, keep each's best

All programs run on the same float32 pixels (0–1) in one run, each timed for fit + predict (the
label lookup included for faiss): striate ``KNNClassifier(device="cpu")``, scikit-learn
``KNeighborsClassifier(algorithm="brute", n_jobs=-1)`` and faiss ``IndexFlatL2`` (add, then search
with k=1). Absolute times vary between machines and with the load; compare the ratios.

faiss-cpu's wheel bundles its own OpenBLAS (0.3.15 in faiss-cpu 1.15), which does not recognise
recent Xeons and falls back to its generic SSE3 ("Prescott") kernels, about 4× slower there. So
that the comparison is against faiss at its best, this module sets ``OPENBLAS_CORETYPE=SkylakeX``
before faiss is imported when the CPU has AVX-512 and the variable is unset; the faiss rows say
which kernel ran, and a second faiss row (in a child process) measures the wheel as installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import print_machine, shared_data, timed


def _has_avx512() -> bool:
    try:
        return " avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


_CORETYPE_SET_HERE = False
_CHILD = os.environ.get("STRIATE_KNN_BENCH_CHILD") == "1"  # the as-installed faiss run
if not _CHILD and "OPENBLAS_CORETYPE" not in os.environ and "faiss" not in sys.modules:
    _CORETYPE_SET_HERE = _has_avx512()
if _CORETYPE_SET_HERE:
    os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"  # read by faiss's OpenBLAS when it loads
    _CORETYPE_SET_HERE = True

SECTION = "knn"


def _row(program: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": SECTION, "program": program, "value": value, "unit": unit, "note": note}


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


def _faiss_predict(X: np.ndarray, y: np.ndarray, Q: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    _, nearest = index.search(Q, 1)
    return y[nearest[:, 0]]


def _faiss_as_installed(quick: bool) -> tuple[float, np.ndarray]:
    """faiss in a child process whose OpenBLAS picks its kernels itself (no OPENBLAS_CORETYPE)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    env["STRIATE_KNN_BENCH_CHILD"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "faiss.json"
        cmd = [sys.executable, __file__, "--faiss-child", str(out)] + (["--quick"] if quick else [])
        subprocess.run(cmd, check=True, env=env)
        result = json.loads(out.read_text())
    return result["seconds"], np.asarray(result["pred"])


def bench(quick: bool, repeats: int = 1) -> list[dict]:
    """Fit + predict times, their ratios, the accuracies and the agreement of the predictions.

    striate and faiss run alternately `repeats` times and keep their fastest run (the machine may
    be shared); scikit-learn and the as-installed faiss run once.
    """
    import faiss
    from sklearn.neighbors import KNeighborsClassifier

    from striate.classic.knn import KNNClassifier

    X, y, Q, yq = _cifar(quick)
    load_before = os.getloadavg()

    def striate_run() -> np.ndarray:
        return KNNClassifier(n_neighbors=1, device="cpu").fit(X, y).predict(Q)

    def sklearn_run() -> np.ndarray:
        model = KNeighborsClassifier(n_neighbors=1, algorithm="brute", n_jobs=-1)
        return model.fit(X, y).predict(Q)

    t_striate = t_faiss = float("inf")
    for _ in range(max(1, repeats)):
        p_striate, t = timed(striate_run)
        t_striate = min(t_striate, t)
        p_faiss, t = timed(lambda: _faiss_predict(X, y, Q))
        t_faiss = min(t_faiss, t)
    p_sklearn, t_sklearn = timed(sklearn_run)
    t_faiss_plain, p_faiss_plain = _faiss_as_installed(quick)
    load_after = os.getloadavg()

    kernel = os.environ.get("OPENBLAS_CORETYPE", "OpenBLAS's own detection")
    how = "set by this benchmark" if _CORETYPE_SET_HERE else "from the environment"
    shape = f"{len(X):,} train × {len(Q):,} test × {X.shape[1]:,} features, float32"
    if repeats > 1:
        shape += f"; best of {repeats} alternating runs"
    env = (
        f"torch threads {torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}, "
        f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (1-min)"
    )
    rows = [
        _row("striate KNNClassifier fit+predict", t_striate, "s", shape),
        _row(
            "faiss IndexFlatL2 add+search+labels",
            t_faiss,
            "s",
            f"OPENBLAS_CORETYPE={kernel} ({how})" if "OPENBLAS_CORETYPE" in os.environ else kernel,
        ),
        _row(
            "faiss as installed (child process)",
            t_faiss_plain,
            "s",
            "no OPENBLAS_CORETYPE: the bundled OpenBLAS chooses",
        ),
        _row("sklearn KNeighborsClassifier brute fit+predict", t_sklearn, "s", env),
        _row("ratio striate / faiss", t_striate / t_faiss, "×", "target ≤ 1.2"),
        _row("ratio striate / faiss as installed", t_striate / t_faiss_plain, "×"),
        _row("ratio sklearn / striate", t_sklearn / t_striate, "×"),
    ]
    for name, pred in (("striate", p_striate), ("faiss", p_faiss), ("sklearn", p_sklearn)):
        rows.append(_row(f"accuracy {name}", float((pred == yq).mean()), "fraction"))
    for name, pred in (("faiss", p_faiss), ("faiss as installed", p_faiss_plain)):
        rows.append(_agreement(name, pred, p_striate))
    rows.append(_agreement("sklearn", p_sklearn, p_striate))
    return rows


def _agreement(name: str, pred: np.ndarray, reference: np.ndarray) -> dict:
    n_diff = int((pred != reference).sum())
    same = float((pred == reference).mean())
    return _row(f"predictions equal, striate vs {name}", same, "fraction", f"{n_diff} differ")


def _faiss_child(out: str, quick: bool) -> None:
    X, y, Q, _ = _cifar(quick)
    pred, seconds = timed(lambda: _faiss_predict(X, y, Q))
    Path(out).write_text(json.dumps({"seconds": seconds, "pred": pred.tolist()}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 × 2,000 subset: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="alternating striate/faiss runs; the best counts"
    )
    parser.add_argument("--faiss-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.faiss_child:
        _faiss_child(args.faiss_child, args.quick)
        return
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    for row in bench(args.quick, args.repeats):
        value = f"{row['value']:.4g}"
        print(f"{row['section']:5} {row['program']:48} {value:>10} {row['unit']:9} {row['note']}")


if __name__ == "__main__":
    print_machine()
    main()
