"""The experiments behind `striate classic`: load, featurise, fit, score, plot, record.

Each `run_*` takes train and test ImageSets and returns an `Experiment` (metrics and figures) that
`save()` writes to a run folder as metrics.json and PNGs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from striate._atomic import atomic_path, write_json
from striate.checks import one_of
from striate.classic._base import image_features
from striate.classic.features import HOG, ColorHistogram
from striate.classic.knn import KNNClassifier, select_k
from striate.classic.linear import LinearClassifier, plot_templates, random_search
from striate.classic.nca import NCA, plot_embedding
from striate.data import ImageSet, load_dataset
from striate.data.splits import stratified_split
from striate.errors import StriateError
from striate.evaluate import confusion_matrix, plot_confusion
from striate.progress import phase, progress_bar

FEATURES = ("raw", "hog", "hist", "hog+hist")
_QUERIES = 4096  # test queries per kNN search (the progress advances per block)


@dataclass
class Experiment:
    """What a run measured (`metrics`, JSON-ready) and drew (`figures`, saved as NAME.png)."""

    method: str
    metrics: dict[str, object]
    figures: dict[str, Figure] = field(default_factory=dict)

    def save(self, out: str | os.PathLike) -> list[Path]:
        """Write metrics.json and one PNG per figure into `out`, atomically; return the paths."""
        out = Path(out)
        paths = []
        for name, fig in self.figures.items():
            with atomic_path(out / f"{name}.png") as tmp:
                fig.savefig(tmp, dpi=120, format="png")
            paths.append(out / f"{name}.png")
        write_json(out / "metrics.json", {"method": self.method, **self.metrics})
        return [out / "metrics.json", *paths]


def load_pair(
    data: str,
    root: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet]:
    """The train and test splits of `data`, each cut to a stratified subset of the given size."""
    return (
        _subset(load_dataset(data, "train", root), n_train, seed),
        _subset(load_dataset(data, "test", root), n_test, seed),
    )


def _subset(ds: ImageSet, n: int | None, seed: int) -> ImageSet:
    if n is None or n >= len(ds):
        return ds
    if n < ds.num_classes:
        raise StriateError(
            f"a subset of {n} cannot hold all {ds.num_classes} classes; ask for more"
        )
    sub = ds.sample(n, seed=seed)
    return ImageSet(
        sub.images, sub.labels, sub.classes, f"{ds.source} [{n:,} stratified, seed {seed}]"
    )


def featurize(
    kind: str, train: ImageSet, test: ImageSet, device: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of both sets: raw pixels (0–1), HOG, hue histogram, or both concatenated."""
    one_of("", "features", kind, FEATURES)
    if kind == "raw":
        return image_features(train), image_features(test)
    extractors = []
    if "hog" in kind:
        extractors.append(HOG(device=device))
    if "hist" in kind:
        if train.shape[0] != 3:
            raise StriateError("colour histograms need RGB images; use --features hog or raw")
        extractors.append(ColorHistogram(device=device))
    parts = [(e.fit_transform(train), e.transform(test)) for e in extractors]
    return tuple(torch.from_numpy(np.hstack([p[i] for p in parts])) for i in (0, 1))  # type: ignore[return-value]


def standardize(
    train: torch.Tensor, test: torch.Tensor, scale: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre on the training mean (the lectures' mean subtraction); divide by its std if asked."""
    mean = train.mean(0, dtype=torch.float64).float()
    std = train.std(0).clamp_min(1e-6) if scale else torch.ones_like(mean)
    return (train - mean) / std, (test - mean) / std


def _scores(method: str, train: ImageSet, test: ImageSet, pred: np.ndarray) -> tuple[dict, Figure]:
    y = test.labels.numpy()
    cm = confusion_matrix(y, pred, test.num_classes)
    metrics = {
        "data": test.source,
        "n_train": len(train),
        "n_test": len(test),
        "test_accuracy": float((pred == y).mean()),
    }
    return metrics, plot_confusion(cm, test.classes, title=method)


def run_knn(
    train: ImageSet,
    test: ImageSet,
    k: int = 1,
    metric: str = "l2",
    features: str = "raw",
    choose_k: bool = False,
    ks: tuple[int, ...] = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100),
    folds: int = 5,
    seed: int = 0,
    device: str = "auto",
    verbose: bool = True,
) -> Experiment:
    """kNN on the test set; with `choose_k`, k is picked by k-fold cross-validation on train.
    `verbose` shows the progress of the feature extraction and of the searches."""
    with phase(f"{features} features", enabled=verbose and features != "raw"):
        Xtr, Xte = featurize(features, train, test, device)
    figures: dict[str, Figure] = {}
    extra: dict[str, object] = {}
    if choose_k:
        ks = tuple(x for x in ks if x <= len(train) * (folds - 1) // folds)
        t0 = time.perf_counter()
        sel = select_k(
            Xtr,
            train.labels,
            ks=ks,
            folds=folds,
            metric=metric,
            random_state=seed,
            device=device,
            verbose=verbose,
        )
        k = int(sel.best_k)
        figures["select_k"] = sel.plot()
        extra = {
            "select_k_seconds": time.perf_counter() - t0,
            "cv_ks": [int(x) for x in sel.ks],
            "cv_mean_accuracy": [float(x) for x in sel.mean],
        }
    model = KNNClassifier(n_neighbors=k, metric=metric, device=device).fit(Xtr, train.labels)
    t0 = time.perf_counter()
    preds = []
    with progress_bar(f"{k}-NN on the test set", len(Xte), "queries", enabled=verbose) as advance:
        for start in range(0, len(Xte), _QUERIES):  # blocks only pace the progress
            preds.append(model.predict(Xte[start : start + _QUERIES]))
            advance(len(preds[-1]))
    pred = np.concatenate(preds)
    query = time.perf_counter() - t0
    metrics, figures["confusion"] = _scores(f"{k}-NN ({metric}, {features})", train, test, pred)
    metrics |= {
        "k": k,
        "metric": metric,
        "features": features,
        "query_seconds": query,
        "storage_mb": Xtr.numel() * 4 / 1e6,
        **extra,
    }
    return Experiment("knn", metrics, figures)


def run_nca(
    train: ImageSet,
    test: ImageSet,
    dim: int = 32,
    k: int = 5,
    init: str = "pca",
    max_iter: int = 200,
    batch_size: int = 500,
    learning_rate: float = 0.03,
    seed: int = 0,
    device: str = "auto",
    verbose: bool = True,
) -> Experiment:
    """kNN on raw pixels against kNN after NCA to `dim` dimensions: error, query time, storage
    (the columns of the reference post's MNIST table), plus a 2-D NCA embedding of the test set.
    `verbose` shows the progress of each phase."""
    Xtr, Xte = image_features(train), image_features(test)
    settings = {
        "init": init,
        "max_iter": max_iter,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "random_state": seed,
        "device": device,
    }
    nca = NCA(dim, verbose=verbose, **settings)
    t0 = time.perf_counter()
    nca.fit(Xtr, train.labels)
    fit_seconds = time.perf_counter() - t0
    Ztr, Zte = nca.transform(Xtr), nca.transform(Xte)
    rows = {}
    for name, (a, b) in {"raw": (Xtr, Xte), "nca": (Ztr, Zte)}.items():
        model = KNNClassifier(n_neighbors=k, device=device).fit(a, train.labels)
        with phase(f"{k}-NN on the test set ({name})", enabled=verbose):
            t0 = time.perf_counter()
            pred = model.predict(b)
            seconds = time.perf_counter() - t0
        rows[name] = {
            "error_percent": 100 * float((pred != test.labels.numpy()).mean()),
            "query_seconds": seconds,
            "storage_mb": a.numel() * 4 / 1e6,
            "dims": int(a.shape[1]),
        }
    metrics, confusion = _scores(f"{k}-NN after NCA-{dim}", train, test, pred)
    metrics |= {
        "k": k,
        "dim": dim,
        "nca_fit_seconds": fit_seconds,
        "raw": rows["raw"],
        "nca": rows["nca"],
    }
    # The 2-D map for the figure is fitted on a stratified subset: it is only for looking at.
    sample = _subset(train, 5000, seed)
    with phase("NCA to 2-D for the figure", enabled=verbose):
        embed = NCA(2, **settings).fit(image_features(sample), sample.labels)
    figures = {
        "confusion": confusion,
        "embedding": plot_embedding(
            embed.transform(Xte).cpu().numpy(),
            test.labels.numpy(),
            test.classes,
            title="NCA to 2-D (test set)",
        ),
    }
    return Experiment("nca", metrics, figures)


def run_linear(
    train: ImageSet,
    test: ImageSet,
    loss: str = "svm",
    features: str = "raw",
    reg: float = 1e-4,
    learning_rate: float | str = "auto",
    max_iter: int = 1500,
    batch_size: int = 200,
    search: int = 0,
    lr_range: tuple[float, float] = (1e-4, 1e-1),
    reg_range: tuple[float, float] = (1e-6, 1e-2),
    val_size: int = 1000,
    seed: int = 0,
    device: str = "auto",
    verbose: bool = True,
) -> Experiment:
    """A linear SVM or softmax classifier; with `search` > 0, that many random-search trials of
    learning rate and regularisation on a validation split of train pick the model. `verbose`
    shows the progress of the features, the fit or the search."""
    with phase(f"{features} features", enabled=verbose and features != "raw"):
        Xtr, Xte = featurize(features, train, test, device)
    Xtr, Xte = standardize(Xtr, Xte, scale=features != "raw")
    ytr = train.labels
    params = {
        "loss": loss,
        "max_iter": max_iter,
        "batch_size": batch_size,
        "device": device,
        "random_state": seed,
    }
    extra: dict[str, object] = {}
    t0 = time.perf_counter()
    if search > 0:
        fit_idx, val_idx = stratified_split(ytr, val_size, seed=seed)
        table, model = random_search(
            Xtr[fit_idx],
            ytr[fit_idx],
            Xtr[val_idx],
            ytr[val_idx],
            lr_range,
            reg_range,
            search,
            loss=loss,
            random_state=seed,
            verbose=verbose,
            **{k: v for k, v in params.items() if k not in ("loss", "random_state")},
        )
        extra = {"search": table.rows, "search_table": table.to_markdown(), "n_val": len(val_idx)}
    else:
        model = LinearClassifier(
            reg=reg, learning_rate=learning_rate, verbose=verbose, **params
        ).fit(Xtr, ytr)
    fit_seconds = time.perf_counter() - t0
    pred = model.predict(Xte)
    metrics, confusion = _scores(f"linear {loss} ({features})", train, test, pred)
    metrics |= {
        "loss": loss,
        "features": features,
        "fit_seconds": fit_seconds,
        "reg": float(model.reg),
        "learning_rate": float(model.learning_rate_),
        **extra,
    }
    figures = {"confusion": confusion, "loss": plot_loss(model.loss_history_, loss)}
    if features == "raw":
        figures["templates"] = plot_templates(model, train.shape, train.classes)
    return Experiment("linear", metrics, figures)


def plot_loss(history, loss: str) -> Figure:
    """Training loss against iteration."""
    fig = Figure(figsize=(5, 3.2))
    ax = fig.subplots()
    ax.plot(np.asarray(history, dtype=float), lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{loss} loss")
    ax.set_title("training loss", fontsize=9)
    fig.tight_layout()
    return fig
