"""NCA: striate against scikit-learn's NeighborhoodComponentsAnalysis, and the MNIST 5-NN table.

    python benchmarks/_classic_nca.py             # 5,000-image subset; full MNIST table
    python benchmarks/_classic_nca.py --quick     # 1,000 / 10,000-image subsets: a smoke test
    python benchmarks/_classic_nca.py --threads 1 # fix torch's thread count

Section "nca": both NCAs learn a 32-d map from the same random 5,000 MNIST training images
(float32 pixels, 0–1), each with its defaults (scikit-learn: L-BFGS, max_iter=50, PCA init;
striate: 200 Adam steps on batches of 500, PCA init, standardised inputs); then 5-NN (scikit-learn,
brute force) on the 10,000 test images after each map. Fit times are taken after a small warm-up
fit of each (imports, first calls); striate's is the median of 3 fits.

Section "nca-mnist": the table of Zakka's post "kNN classification using Neighbourhood Components
Analysis" (2020) on full MNIST: 5-NN on raw 784-d pixels against 5-NN after NCA to 32-d (NCA fit on
the 60,000 training images in mini-batches): test error, query time (predicting the 10,000 test
images), storage of the training set as float32, and the NCA fit time. The post used 50,000
training images and 10,000 held-out ones: 2.8 % / 3.3 % error, 155.25 s / 2.37 s, 156.8 / 6.40 MB.

Both run on the CPU (device="cpu"). Absolute times vary between machines and with the load
(printed); compare the ratios. On a 2-core machine shared with other processes, torch's two
OpenMP threads wait on each other at every operation: `--threads 1` is then the fairer setting.
"""

from __future__ import annotations

import os
import statistics

import numpy as np
import torch

from _common import print_machine, run_sections, shared_data, timed

N_COMPONENTS = 32


def _row(section: str, program: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": section, "program": program, "value": value, "unit": unit, "note": note}


def _mnist(n_train: int | None, n_test: int | None):
    """Float32 pixels (0–1) and labels; random subsets (fixed seed) when sizes are given."""
    from striate import load_dataset
    from striate.classic._base import image_features

    data = shared_data()
    train = load_dataset("mnist", "train", root=data)
    test = load_dataset("mnist", "test", root=data)
    gen = torch.Generator().manual_seed(0)
    if n_train is not None:
        train = train[torch.randperm(len(train), generator=gen)[:n_train].sort().values]
    if n_test is not None:
        test = test[torch.randperm(len(test), generator=gen)[:n_test].sort().values]
    return (
        image_features(train).numpy(),
        train.labels.numpy(),
        image_features(test).numpy(),
        test.labels.numpy(),
    )


def _knn(X: np.ndarray, y: np.ndarray):
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(n_neighbors=5, algorithm="brute", n_jobs=-1).fit(X, y)


def _load() -> float:
    return os.getloadavg()[0]


def bench_vs_sklearn(quick: bool) -> list[dict]:
    """Fit times and 5-NN accuracies of striate's and scikit-learn's NCA on an MNIST subset."""
    from sklearn.neighbors import NeighborhoodComponentsAnalysis

    from striate.classic.nca import NCA

    section = "nca"
    n_train, n_test = (1_000, 2_000) if quick else (5_000, None)
    X, y, Q, yq = _mnist(n_train, n_test)
    load_before = _load()

    def ours():
        return NCA(N_COMPONENTS, device="cpu", random_state=0).fit(X, y)

    def theirs():
        return NeighborhoodComponentsAnalysis(N_COMPONENTS, random_state=0).fit(X, y)

    NCA(N_COMPONENTS, device="cpu", max_iter=5).fit(X[:300], y[:300])  # warm-ups
    NeighborhoodComponentsAnalysis(N_COMPONENTS, max_iter=2).fit(X[:300], y[:300])
    runs = [timed(ours) for _ in range(3)]
    t_ours = statistics.median(t for _, t in runs)
    model = runs[0][0]
    sk, t_sk = timed(theirs)

    acc_ours = _knn(model.transform(X), y).score(model.transform(Q), yq)
    acc_sk = _knn(sk.transform(X), y).score(sk.transform(Q), yq)
    acc_raw = _knn(X, y).score(Q, yq)
    shape = f"{len(X):,} train × {X.shape[1]} → {N_COMPONENTS}; 5-NN on {len(Q):,} test"
    return [
        _row(
            section,
            "striate NCA fit",
            t_ours,
            "s",
            f"median of 3; {model.n_iter_} steps × {model.batch_size}; {shape}",
        ),
        _row(
            section,
            "sklearn NeighborhoodComponentsAnalysis fit",
            t_sk,
            "s",
            f"{sk.n_iter_} L-BFGS iterations; torch threads {torch.get_num_threads()}; "
            f"1-min load average {load_before:.2f} → {_load():.2f}",
        ),
        _row(section, "ratio sklearn / striate fit time", t_sk / t_ours, "×", "target ≥ 10"),
        _row(section, "5-NN accuracy after striate NCA", 100 * acc_ours, "%"),
        _row(section, "5-NN accuracy after sklearn NCA", 100 * acc_sk, "%"),
        _row(section, "5-NN accuracy on raw pixels", 100 * acc_raw, "%", "for scale"),
    ]


def bench_mnist_table(quick: bool) -> list[dict]:
    """The post's table: raw 5-NN against 5-NN after NCA-32, on full MNIST."""
    from striate.classic.nca import NCA

    section = "nca-mnist"
    X, y, Q, yq = _mnist(*((10_000, 2_000) if quick else (None, None)))
    load_before = _load()

    raw = _knn(X, y)
    pred_raw, t_raw = timed(lambda: raw.predict(Q))

    variants = [("NCA-32", {})]
    if not quick:  # more steps than the default, to see what longer training buys
        variants.append(("NCA-32, 1,000 steps", {"max_iter": 1000}))
    runs = []
    for name, kw in variants:
        model, t_fit = timed(
            lambda kw=kw: NCA(N_COMPONENTS, device="cpu", random_state=0, **kw).fit(X, y)
        )
        Z, ZQ = model.transform(X), model.transform(Q)
        knn = _knn(Z, y)
        pred, t_query = timed(lambda knn=knn, ZQ=ZQ: knn.predict(ZQ))
        runs.append({"name": name, "model": model, "fit": t_fit, "query": t_query, "pred": pred})
    load_after = _load()

    err = lambda pred: 100 * float((pred != yq).mean())  # noqa: E731
    rows = [_row(section, "error 5-NN raw 784-d", err(pred_raw), "%", f"{len(X):,} train")]
    rows += [_row(section, f"error 5-NN after {r['name']}", err(r["pred"]), "%") for r in runs]
    rows.append(_row(section, "query time 5-NN raw 784-d", t_raw, "s", f"{len(Q):,} queries"))
    for r in runs:
        rows.append(_row(section, f"query time 5-NN after {r['name']}", r["query"], "s"))
        rows.append(_row(section, f"query speed-up raw / {r['name']}", t_raw / r["query"], "×"))
    stored = len(X) * N_COMPONENTS * 4
    rows.append(_row(section, "storage raw 784-d", X.nbytes / 1e6, "MB", "float32 training set"))
    rows.append(_row(section, "storage after NCA-32", stored / 1e6, "MB", "float32"))
    rows.append(_row(section, "storage ratio raw / NCA-32", X.nbytes / stored, "×"))
    for r in runs:
        note = f"{r['model'].n_iter_} steps × {r['model'].batch_size}"
        rows.append(_row(section, f"fit time {r['name']}", r["fit"], "s", note))
    rows[-1]["note"] += (
        f"; torch threads {torch.get_num_threads()}; "
        f"1-min load average {load_before:.2f} → {load_after:.2f}"
    )
    return rows


def bench(quick: bool) -> list[dict]:
    """Both sections: against scikit-learn's NCA, then the post's MNIST table."""
    return bench_vs_sklearn(quick) + bench_mnist_table(quick)


def main(argv: list[str] | None = None) -> None:
    run_sections(__doc__, {"nca": bench_vs_sklearn, "nca-mnist": bench_mnist_table}, argv)


if __name__ == "__main__":
    print_machine()
    main()
