"""`striate classic knn|nca|linear`: train a classical baseline, print test accuracy and time,
write metrics.json and plots to the run folder.

A command is a function of the loaded train and test sets (and the seed and device) that returns
the experiment; `@method` adds the options every method takes and the steps around it: settle the
run folder, load the data, then save and print the results."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from striate.progress import output_console

if TYPE_CHECKING:
    from striate.classic.experiments import Experiment
    from striate.data import ImageSet

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


def _data_options(data: str = DATA, root: Path | None = ROOT) -> None:
    """The options every method takes before its own (a signature only)."""


def _run_options(
    train_size: int | None = TRAIN,
    test_size: int | None = TEST,
    seed: int = SEED,
    device: str = DEVICE,
    out: Path | None = OUT,
    overwrite: bool = OVERWRITE,
) -> None:
    """The options every method takes after its own (a signature only)."""


def method(run: Callable[..., Any]) -> Callable[..., None]:
    """The command `striate classic NAME` of `run(train, test, seed, device, **own)`: the shared
    options around its own, the run folder settled before the (long) fit, the results after."""
    name = run.__name__
    shared = [inspect.signature(f).parameters.values() for f in (_data_options, _run_options)]
    own = list(inspect.signature(run).parameters.values())[4:]  # after train, test, seed, device

    @functools.wraps(run)
    def command(*, data, root, train_size, test_size, seed, device, out, overwrite, **options):
        from striate.classic.experiments import load_pair

        folder = _out_folder(name, data, out, overwrite)
        train, test = load_pair(data, root, train_size, test_size, seed)
        _finish(run(train, test, seed, device, **options), name, folder, overwrite)

    params = [*shared[0], *own, *shared[1]]
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return app.command(name)(command)


@method
def knn(
    train: ImageSet,
    test: ImageSet,
    seed: int,
    device: str,
    k: int = typer.Option(1, "--k", help="Number of neighbours (ignored with --select-k)."),
    metric: str = typer.Option("l2", help="l2, l1 or cosine."),
    features: str = FEATURES,
    select_k: bool = typer.Option(False, "--select-k", help="Choose k by cross-validation."),
    ks: str = typer.Option("1,3,5,8,10,12,15,20,50,100", help="Candidate ks for --select-k."),
    folds: int = typer.Option(5, help="Folds for --select-k."),
) -> Experiment:
    """k-nearest neighbours; --select-k runs k-fold cross-validation over --ks first."""
    from striate.classic.experiments import run_knn

    candidates = tuple(int(x) for x in ks.split(",") if x.strip())
    return run_knn(train, test, k, metric, features, select_k, candidates, folds, seed, device)


@method
def nca(
    train: ImageSet,
    test: ImageSet,
    seed: int,
    device: str,
    dim: int = typer.Option(32, help="Dimensions of the learned embedding."),
    k: int = typer.Option(5, "--k", help="Neighbours of the kNN run on both representations."),
    init: str = typer.Option("pca", help="pca, identity or random."),
    max_iter: int = typer.Option(200, help="NCA optimiser steps (one minibatch each)."),
    batch_size: int = typer.Option(500, help="Points per NCA minibatch."),
    lr: float = typer.Option(0.03, help="NCA learning rate (relative to the initial map)."),
) -> Experiment:
    """kNN on raw pixels against kNN after NCA: error, query time, storage."""
    from striate.classic.experiments import run_nca

    return run_nca(train, test, dim, k, init, max_iter, batch_size, lr, seed, device)


def _rate(lr: str) -> float | str:
    """--lr: a number or auto, checked as the command line is read (before any work)."""
    from striate.errors import StriateError

    try:
        return lr if lr == "auto" else float(lr)
    except ValueError:
        raise StriateError(f"--lr must be a number or auto, got {lr!r}") from None


@method
def linear(
    train: ImageSet,
    test: ImageSet,
    seed: int,
    device: str,
    loss: str = typer.Option("svm", help="svm (multiclass hinge) or softmax."),
    features: str = FEATURES,
    reg: float = typer.Option(1e-4, help="L2 regularisation strength."),
    lr: str = typer.Option("auto", help="Learning rate, or auto.", callback=_rate),
    max_iter: int = typer.Option(1500, help="SGD iterations."),
    batch_size: int = typer.Option(200, help="SGD minibatch size."),
    search: int = typer.Option(0, help="Random-search trials of lr and reg (0: no search)."),
    val_size: int = typer.Option(1000, help="Validation images held out of train for --search."),
) -> Experiment:
    """Linear SVM or softmax classifier trained by minibatch SGD; --search tunes lr and reg."""
    from striate.classic.experiments import run_linear

    return run_linear(
        train,
        test,
        loss,
        features,
        reg,
        lr,
        max_iter,
        batch_size,
        search,
        val_size=val_size,
        seed=seed,
        device=device,
    )


def _out_folder(name: str, data: str, out: Path | None, overwrite: bool) -> Path:
    """The run folder, settled before the (long) fit: --out, refused when it holds results
    unless --overwrite; else the first of runs/classic/METHOD-DATA, -2, -3, ... that is free."""
    from striate.outputs import check_folder, default_folder

    if out is None:
        return default_folder(Path("runs") / "classic", f"{name}-{Path(data).stem}")
    check_folder(out, overwrite)
    return out


def _finish(experiment, name: str, out: Path, overwrite: bool) -> None:
    from striate.outputs import clear_folder

    if overwrite:
        clear_folder(out)  # only now: the fit went through, its results replace the old ones
    paths = experiment.save(out)
    table = Table(title=f"classic {name}", title_justify="left")
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
