"""`striate sgds correlation|persistence`: the two experiments of Kevin Zakka's post "Learning What
to Learn and When to Learn It" that motivate loss-based sampling (`striate train --sampling
sgds`): a sample's loss predicts its gradient norm, and loss deciles persist across epochs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from striate.cli.options import DEVICE, OVERWRITE

app = typer.Typer(
    help="Loss-based importance sampling (SGD-S): the post's experiments.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _opt(flag: str, help: str, show_default: bool = True) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


DATA = _opt("--data", "Dataset name (see `striate datasets`) or path.")
ROOT = _opt(
    "--root",
    "Folder holding the dataset's files [default: $STRIATE_DATA, else ~/.cache/striate/datasets].",
    False,
)
MODEL = _opt("--model", "Model (no batch norm for correlation: it mixes a batch's samples).")
BATCH = _opt("--batch-size", "Images per step.")
LR = _opt("--lr", "Learning rate of SGD (momentum 0.5, constant, no weight decay: the post's).")
SEED = _opt("--seed", "Seed of the initialisation, the order and the --train-size subset.")
TRAIN_SIZE = _opt(
    "--train-size", "Train on a stratified subset of this many images (a quick run).", False
)
PROGRESS = typer.Option("--progress/--no-progress", help="Show a progress bar while training.")


def _out_help(name: str) -> typer.models.OptionInfo:
    return _opt(
        "--out",
        f"Results folder [default: runs/sgds/{name}-DATA-MODEL, or -2, -3, ...]; one that "
        "already holds results needs --overwrite.",
        False,
    )


def _claim(out: Path | None, name: str, data: str, model: str, overwrite: bool) -> Path:
    from striate.outputs import check_folder, default_folder

    out = out or default_folder(Path("runs/sgds"), f"{name}-{Path(data).name}-{model}")
    check_folder(out, overwrite)
    return out


def _ready(out: Path, overwrite: bool) -> None:
    from striate.outputs import clear_folder

    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)


@app.command()
def correlation(
    data: Annotated[str, DATA] = "mnist",
    root: Annotated[Path | None, ROOT] = None,
    model: Annotated[str, MODEL] = "mnist_cnn",
    epochs: Annotated[int, _opt("--epochs", "Epochs to train (the post: 1).")] = 1,
    batch_size: Annotated[int, BATCH] = 64,
    lr: Annotated[float, LR] = 0.01,
    seed: Annotated[int, SEED] = 0,
    train_size: Annotated[int | None, TRAIN_SIZE] = None,
    device: Annotated[str, DEVICE] = "auto",
    samples: Annotated[
        bool,
        typer.Option(
            "--samples/--no-samples",
            help="Also write samples.csv: index, label, loss and gradient norm of every "
            "training image (about 2 MB for MNIST).",
        ),
    ] = True,
    out: Annotated[Path | None, _out_help("correlation")] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    progress: Annotated[bool, PROGRESS] = True,
) -> None:
    """Train recording each image's loss and the norm of the gradient of its own loss (before
    the step that sees it); print their Pearson r (the post: 0.83) and write correlation.json,
    correlation.png (the post's losses sorted by gradient norm, and a scatter) and samples.csv."""
    from striate.train.loss_patterns import (
        POST_CORRELATION,
        correlation_experiment,
        recipe,
        write_correlation,
    )

    config = recipe(data=data, root=root, model=model, epochs=epochs, batch_size=batch_size,
                    lr=lr, seed=seed, train_size=train_size, device=device)  # fmt: skip
    out = _claim(out, "correlation", config.data, config.model, overwrite)
    result = correlation_experiment(config, progress=progress)
    _ready(out, overwrite)
    written = write_correlation(result, out, samples=samples)
    typer.echo(
        f"{len(result.losses):,} images, {config.epochs} epoch{'s' if config.epochs != 1 else ''}"
        f" of {config.model} ({result.seconds:.0f} s)"
    )
    typer.echo(
        f"Pearson r(loss, gradient norm) = {result.r:.3f}   (post: {POST_CORRELATION}, MNIST, "
        f"1 epoch)"
    )
    for path in written:
        typer.echo(f"wrote {path}")


@app.command()
def persistence(
    data: Annotated[str, DATA] = "mnist",
    root: Annotated[Path | None, ROOT] = None,
    model: Annotated[str, MODEL] = "mnist_cnn",
    epochs: Annotated[int, _opt("--epochs", "Epochs of each run (at least 2; the post: 5).")] = 5,
    batch_size: Annotated[int, BATCH] = 64,
    lr: Annotated[float, LR] = 0.01,
    seed: Annotated[int, SEED] = 0,
    train_size: Annotated[int | None, TRAIN_SIZE] = None,
    device: Annotated[str, DEVICE] = "auto",
    out: Annotated[Path | None, _out_help("persistence")] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    progress: Annotated[bool, PROGRESS] = True,
) -> None:
    """Train twice from the same initialisation, shuffled and in dataset order, recording every
    image's loss in every epoch; print which share of the top and bottom loss deciles stays in
    them across all epochs, all but the first, and the last two (the post: about 30/60/85 % and
    30/50/70 %), and write persistence.json and persistence.png (every decile)."""
    from striate.train.loss_patterns import (
        epoch_ranges,
        persistence_experiment,
        recipe,
        write_persistence,
    )

    config = recipe(data=data, root=root, model=model, epochs=epochs, batch_size=batch_size,
                    lr=lr, seed=seed, train_size=train_size, device=device)  # fmt: skip
    epoch_ranges(config.epochs)  # at least 2 epochs: before any work
    out = _claim(out, "persistence", config.data, config.model, overwrite)
    result = persistence_experiment(
        config, progress=progress, log=lambda line: typer.echo(line, err=True)
    )
    _ready(out, overwrite)
    written = write_persistence(result, out)
    for line in persistence_table(result):
        typer.echo(line)
    for path in written:
        typer.echo(f"wrote {path}")


def persistence_table(result) -> list[str]:  # noqa: ANN001 - a PersistenceResult (torch side)
    """The top and bottom decile rows of each mode, with the post's numbers beside them."""
    from striate.train.loss_patterns import POST_PERSISTENCE

    names = list(result.ranges)
    n = next(iter(result.histories.values())).shape[1]
    lines = [
        f"share of a loss decile staying in it ({n:,} images, {result.config.epochs} epochs, "
        f"{result.seconds:.0f} s)",
        f"{'':22}" + "".join(f"{name:>13}" for name in names) + "   post (epochs 1-5, 2-5, 4-5)",
    ]
    rows = (("top decile (9)", 9, "top"), ("bottom decile (0)", 0, "bottom"))
    for mode, by_range in result.table.items():
        lines.append(mode)
        for label, decile, key in rows:
            cells = "".join(f"{100 * by_range[name][decile]:>11.1f} %" for name in names)
            post = " / ".join(f"{100 * v:.0f}" for v in POST_PERSISTENCE[key])
            lines.append(f"  {label:20}{cells}   ≈ {post} %")
    lines += [f"note: {note}" for note in result.notes]
    return lines
