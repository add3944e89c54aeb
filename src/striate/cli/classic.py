"""`striate classic knn|nca|linear`: train a classical baseline, print test accuracy and time,
write metrics.json and plots to the run folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from striate.progress import output_console

app = typer.Typer(
    help="Classical baselines: k-nearest neighbours, NCA, linear SVM/softmax.", no_args_is_help=True
)
console = output_console()

DATA = typer.Option("digits", "--data", help="Dataset name (see `striate datasets`) or path.")
ROOT = typer.Option(None, "--root", help="Folder holding the dataset's files.")
TRAIN = typer.Option(None, "--train-size", help="Stratified subset of the training split.")
TEST = typer.Option(None, "--test-size", help="Stratified subset of the test split.")
SEED = typer.Option(0, "--seed", help="Seed for subsets, folds and training.")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
OUT = typer.Option(
    None,
    "--out",
    help="Run folder [default: runs/classic/METHOD-DATA, or -2, -3, ... when that one holds "
    "results]. A folder that holds results is refused unless --overwrite.",
)
OVERWRITE = typer.Option(
    False, "--overwrite", help="Replace the results in the --out folder (after the fit)."
)
FEATURES = typer.Option("raw", "--features", help="raw, hog, hist or hog+hist.")


@app.command()
def knn(
    data: str = DATA,
    root: Path | None = ROOT,
    k: int = typer.Option(1, "--k", help="Number of neighbours (ignored with --select-k)."),
    metric: str = typer.Option("l2", help="l2, l1 or cosine."),
    features: str = FEATURES,
    select_k: bool = typer.Option(False, "--select-k", help="Choose k by cross-validation."),
    ks: str = typer.Option("1,3,5,8,10,12,15,20,50,100", help="Candidate ks for --select-k."),
    folds: int = typer.Option(5, help="Folds for --select-k."),
    train_size: int | None = TRAIN,
    test_size: int | None = TEST,
    seed: int = SEED,
    device: str = DEVICE,
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """k-nearest neighbours; --select-k runs k-fold cross-validation over --ks first."""
    from striate.classic.experiments import load_pair, run_knn

    folder = _out_folder("knn", data, out, overwrite)
    train, test = load_pair(data, root, train_size, test_size, seed)
    candidates = tuple(int(x) for x in ks.split(",") if x.strip())
    _finish(
        run_knn(train, test, k, metric, features, select_k, candidates, folds, seed, device),
        "knn",
        folder,
        overwrite,
    )


@app.command()
def nca(
    data: str = DATA,
    root: Path | None = ROOT,
    dim: int = typer.Option(32, help="Dimensions of the learned embedding."),
    k: int = typer.Option(5, "--k", help="Neighbours of the kNN run on both representations."),
    init: str = typer.Option("pca", help="pca, identity or random."),
    max_iter: int = typer.Option(200, help="NCA optimiser steps (one minibatch each)."),
    batch_size: int = typer.Option(500, help="Points per NCA minibatch."),
    lr: float = typer.Option(0.03, help="NCA learning rate (relative to the initial map)."),
    train_size: int | None = TRAIN,
    test_size: int | None = TEST,
    seed: int = SEED,
    device: str = DEVICE,
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """kNN on raw pixels against kNN after NCA: error, query time, storage."""
    from striate.classic.experiments import load_pair, run_nca

    folder = _out_folder("nca", data, out, overwrite)
    train, test = load_pair(data, root, train_size, test_size, seed)
    _finish(
        run_nca(train, test, dim, k, init, max_iter, batch_size, lr, seed, device),
        "nca",
        folder,
        overwrite,
    )


@app.command()
def linear(
    data: str = DATA,
    root: Path | None = ROOT,
    loss: str = typer.Option("svm", help="svm (multiclass hinge) or softmax."),
    features: str = FEATURES,
    reg: float = typer.Option(1e-4, help="L2 regularisation strength."),
    lr: str = typer.Option("auto", help="Learning rate, or auto."),
    max_iter: int = typer.Option(1500, help="SGD iterations."),
    batch_size: int = typer.Option(200, help="SGD minibatch size."),
    search: int = typer.Option(0, help="Random-search trials of lr and reg (0: no search)."),
    val_size: int = typer.Option(1000, help="Validation images held out of train for --search."),
    train_size: int | None = TRAIN,
    test_size: int | None = TEST,
    seed: int = SEED,
    device: str = DEVICE,
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Linear SVM or softmax classifier trained by minibatch SGD; --search tunes lr and reg."""
    from striate.classic.experiments import load_pair, run_linear
    from striate.errors import StriateError

    try:
        rate: float | str = lr if lr == "auto" else float(lr)
    except ValueError:
        raise StriateError(f"--lr must be a number or auto, got {lr!r}") from None
    folder = _out_folder("linear", data, out, overwrite)
    train, test = load_pair(data, root, train_size, test_size, seed)
    _finish(
        run_linear(
            train,
            test,
            loss,
            features,
            reg,
            rate,
            max_iter,
            batch_size,
            search,
            val_size=val_size,
            seed=seed,
            device=device,
        ),
        "linear",
        folder,
        overwrite,
    )


def _out_folder(method: str, data: str, out: Path | None, overwrite: bool) -> Path:
    """The run folder, settled before the (long) fit: --out, refused when it holds results
    unless --overwrite; else the first of runs/classic/METHOD-DATA, -2, -3, ... that is free."""
    from striate.outputs import check_folder, default_folder

    if out is None:
        return default_folder(Path("runs") / "classic", f"{method}-{Path(data).stem}")
    check_folder(out, overwrite)
    return out


def _finish(experiment, method: str, out: Path, overwrite: bool) -> None:
    from striate.outputs import clear_folder

    if overwrite:
        clear_folder(out)  # only now: the fit went through, its results replace the old ones
    paths = experiment.save(out)
    table = Table(title=f"classic {method}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", overflow="fold")
    for key, value in experiment.metrics.items():
        if key not in ("search", "search_table"):  # the search is printed as its own table
            table.add_row(key, escape(_show(value)))
    console.print(table)
    if "search_table" in experiment.metrics:
        console.print(experiment.metrics["search_table"], markup=False, highlight=False)
    console.print(f"wrote {', '.join(map(str, paths))}", markup=False, highlight=False)


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)
