"""`striate scratch train`: the NumPy reference engine trains the reference post's MNIST network
(784-100-10, ReLU, SGD lr 0.01, batch 64, 10 epochs, torch's default initialisation, inputs
scaled to 0-1 and normalised with MNIST's mean/std: the recipe of striate's torch twin in
BENCHMARKS.md) and reports test accuracy after every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="The NumPy reference engine (no torch): train a small network on MNIST.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")
SCHEDULES = ("none", "step", "cosine")
INITS = ("torch", "he")


@app.callback()
def _group() -> None:
    """Keeps `train` a subcommand while it is the group's only one."""


def _opt(flag: str, help: str, show_default: bool = True) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


@app.command()
def train(
    data: Annotated[str, _opt("--data", "mnist or fashion-mnist.")] = "mnist",
    root: Annotated[
        Path | None,
        _opt(
            "--root",
            "Folder with the official IDX files (or its mnist/ subfolder) "
            "[default: $STRIATE_DATA, else ~/.cache/striate/datasets].",
            False,
        ),
    ] = None,
    epochs: Annotated[int, _opt("--epochs", "Passes over the training set.")] = 10,
    lr: Annotated[float, _opt("--lr", "Learning rate.")] = 0.01,
    batch_size: Annotated[int, _opt("--batch-size", "Images per step.")] = 64,
    hidden: Annotated[int, _opt("--hidden", "Units of the hidden ReLU layer.")] = 100,
    optimizer: Annotated[str, _opt("--optimizer", ", ".join(OPTIMIZERS) + ".")] = "sgd",
    momentum: Annotated[float, _opt("--momentum", "Momentum of momentum and nesterov.")] = 0.9,
    schedule: Annotated[
        str, _opt("--schedule", "none, step (x0.1 every third of the run) or cosine.")
    ] = "none",
    init: Annotated[
        str,
        _opt(
            "--init",
            "Weights: torch (W, b ~ U(±1/sqrt(fan_in)), nn.Linear's default, as the post) or he "
            "(W ~ N(0, 2/fan_in), b = 0).",
        ),
    ] = "torch",
    normalize: Annotated[
        bool,
        typer.Option(
            "--normalize/--no-normalize",
            help="Inputs scaled to 0-1, then normalised with the training set's mean and std "
            "(MNIST 0.1307, 0.3081; Fashion-MNIST 0.2860, 0.3530), as the post; "
            "--no-normalize: scaled to 0-1 only.",
        ),
    ] = True,
    seed: Annotated[int, _opt("--seed", "Seed of the weights and of the batch order.")] = 0,
    limit: Annotated[
        int | None,
        _opt("--limit", "Train on the first N training images only (a quick run).", False),
    ] = None,
) -> None:
    """Train a one-hidden-layer network with the NumPy engine; one line per epoch."""
    import time

    import numpy as np

    from striate.checks import one_of, positive_int
    from striate.scratch import layers, optim
    from striate.scratch.data import VARIANTS, load_mnist_arrays
    from striate.scratch.model import Model
    from striate.scratch.solver import Solver

    one_of("", "--data", data, VARIANTS)
    one_of("", "--optimizer", optimizer, OPTIMIZERS)
    one_of("", "--schedule", schedule, SCHEDULES)
    one_of("", "--init", init, INITS)
    hidden = positive_int("", "--hidden", hidden)
    x, y = load_mnist_arrays(root, "train", variant=data, limit=limit, normalize=normalize)
    x_test, y_test = load_mnist_arrays(root, "test", variant=data, normalize=normalize)
    rng = np.random.default_rng(seed)
    model = Model(
        [
            layers.Linear(x.shape[1], hidden, rng, init=init),
            layers.ReLU(),
            layers.Linear(hidden, 10, rng, init=init),
        ]
    )
    opt = {
        "sgd": lambda: optim.SGD(lr),
        "momentum": lambda: optim.Momentum(lr, momentum),
        "nesterov": lambda: optim.Nesterov(lr, momentum),
        "adagrad": lambda: optim.AdaGrad(lr),
        "rmsprop": lambda: optim.RMSProp(lr),
        "adam": lambda: optim.Adam(lr),
    }[optimizer]()
    solver = Solver(
        model, opt, batch_size=batch_size, epochs=epochs, seed=seed, val_name="test",
        schedule=None if schedule == "none" else schedule, log=typer.echo,
    )  # fmt: skip
    typer.echo(
        f"{data}: {len(x):,} training images, {len(x_test):,} test images; "
        f"{x.shape[1]}-{hidden}-10 ReLU ({init} init), {optimizer} lr {lr:g}, "
        f"batch {batch_size}; inputs {'normalised' if normalize else 'scaled to 0-1 only'}"
    )
    start = time.perf_counter()
    history = solver.fit(x, y, x_test, y_test)
    typer.echo(
        f"test accuracy {100 * history[-1]['val_accuracy']:.2f} % after {epochs} epochs "
        f"({time.perf_counter() - start:.1f} s)"
    )
