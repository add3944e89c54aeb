"""`striate train`, `striate evaluate`, `striate predict` and `striate lr-find`.

Options left out fall back to `--config FILE.toml`, then to TrainConfig's defaults, so
`striate train` alone trains the small ConvNet on the bundled digits set.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal


def _opt(flag: str, help: str) -> typer.Option:  # noqa: A002
    return typer.Option(None, flag, help=help, show_default=False)


DATA = _opt("--data", "Dataset name (see `striate datasets`) or path [default: digits].")
ROOT = _opt("--root", "Folder holding the dataset's files.")
MODEL = _opt(
    "--model",
    "Model name (see `striate models` / striate.models.available()) [default: convnet_small].",
)
EPOCHS = _opt("--epochs", "Epochs to train [default: 30].")
STEPS = _opt("--steps", "Optimiser steps to train (instead of --epochs).")
BATCH = _opt("--batch-size", "Images per batch [default: 64].")
OPT = _opt("--opt", "sgd, nesterov, adagrad, rmsprop, adam, adamw or lbfgs [default: sgd].")
LR = _opt("--lr", "Learning rate (the peak for onecycle) [default: 0.1].")
WD = _opt("--wd", "Weight decay (not on biases and norm layers) [default: 5e-4].")
SCHEDULE = _opt(
    "--schedule",
    "constant, step, exponential, inverse-time, cosine, linear, rsqrt, "
    "sgdr or onecycle [default: onecycle].",
)
AUGMENT = _opt("--augment", "none, auto, or e.g. flip,crop:4,cutout:8,mixup:0.2 [default: auto].")
PRECISION = _opt("--precision", "auto, fp32, bf16 or fp16 [default: auto].")
SEED = _opt("--seed", "Seed for the split, initialisation, order and augmentation [default: 0].")
DEVICE = _opt("--device", "auto, cpu, cuda or cuda:N [default: auto].")
CONFIG = typer.Option(None, "--config", help="TOML file of options; command-line options win.")
OVERWRITE = typer.Option(
    False, "--overwrite", help="Replace the results in an --out folder that already holds some."
)


def train(
    config: Path | None = CONFIG,
    recipe: str | None = _opt(
        "--recipe", "Start from a named recipe's settings (cifar10-fast); options given win."
    ),
    data: str | None = DATA,
    root: str | None = ROOT,
    model: str | None = MODEL,
    epochs: int | None = EPOCHS,
    steps: int | None = STEPS,
    batch_size: int | None = BATCH,
    opt: str | None = OPT,
    lr: float | None = LR,
    wd: float | None = WD,
    momentum: float | None = _opt(
        "--momentum",
        "Momentum of SGD/RMSProp, or Adam's beta1 [default: 0.9 for SGD, 0 for RMSProp].",
    ),
    schedule: str | None = SCHEDULE,
    loss: str | None = _opt("--loss", "cross_entropy or hinge [default: cross_entropy]."),
    label_smoothing: float | None = _opt("--label-smoothing", "Label smoothing [default: 0]."),
    augment: str | None = AUGMENT,
    init: str | None = _opt("--init", "default, normal, xavier or kaiming [default: default]."),
    weights: str | None = _opt(
        "--weights",
        "Start from these weights: a .safetensors file, a torch state dict (read with "
        "weights_only=True) or a run folder; a head of another size starts afresh.",
    ),
    finetune: str | None = _opt(
        "--finetune",
        "head (train the classifier on frozen features), last:N (the last N layer groups) or "
        "all [default: all].",
    ),
    lr_factor: float | None = _opt(
        "--lr-factor",
        "Discriminative learning rates: each layer group before the head gets lr / F^k "
        "[default: 1].",
    ),
    precision: str | None = PRECISION,
    clip_grad: float | None = _opt("--clip-grad", "Clip the gradient norm to this value."),
    ema: float | None = _opt(
        "--ema",
        "Evaluate an exponential moving average of the weights with this decay (e.g. 0.999).",
    ),
    lookahead: float | None = _opt(
        "--lookahead",
        "Lookahead weight averaging with airbench's schedule and this per-step decay (e.g. 0.95).",
    ),
    early_stopping: int | None = _opt(
        "--early-stopping", "Stop after this many epochs without validation improvement."
    ),
    snapshots: bool | None = typer.Option(
        None,
        "--snapshots/--no-snapshots",
        show_default=False,
        help="Save the model at the end of each warm-restart cycle of --schedule sgdr, in "
        "RUN/snapshots/snapshot-K, for `striate ensemble --snapshots RUN` [default: off].",
    ),
    snapshot_every: int | None = _opt(
        "--snapshot-every", "Save a snapshot every N epochs instead (with any schedule)."
    ),
    model_option: list[str] | None = typer.Option(
        None,
        "--model-option",
        "-o",
        help="A model argument KEY=VALUE (VALUE read as JSON, else text), e.g. -o dropout=0.2; "
        "repeat for more.",
    ),
    schedule_option: list[str] | None = typer.Option(
        None,
        "--schedule-option",
        help="A schedule argument KEY=VALUE, e.g. --schedule-option T_0=8 for sgdr, "
        "--schedule-option warmup=1.",
    ),
    tta: str | None = _opt(
        "--tta",
        "Test-time augmentation: none, flip, translate[:N] or flip,translate[:N] [default: none].",
    ),
    val_size: float | None = _opt(
        "--val-size",
        "Validation fraction (or count) held out of the training split [default: 0.1].",
    ),
    train_size: int | None = _opt("--train-size", "Stratified subset of the training split."),
    test_size: int | None = _opt("--test-size", "Stratified subset of the test split."),
    seed: int | None = SEED,
    device: str | None = DEVICE,
    out: Path | None = _opt(
        "--out",
        "Run folder [default: runs/train/DATA-MODEL, or -2, -3, ... when taken]; one that "
        "already holds results needs --overwrite.",
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue the run in this folder from its last checkpoint, with its saved settings.",
    ),
    overwrite: bool = OVERWRITE,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Live progress bar."),
) -> None:
    """Train a network and write a run folder with metrics, checkpoints, plots and report.html."""
    from striate.cli.models import parse_options
    from striate.train.config import TrainConfig
    from striate.train.run import train_run

    options = dict(
        model_options=parse_options(model_option) if model_option else None,
        schedule_options=parse_options(schedule_option) if schedule_option else None,
        data=data,
        root=root,
        model=model,
        epochs=epochs,
        steps=steps,
        batch_size=batch_size,
        opt=opt,
        lr=lr,
        wd=wd,
        momentum=momentum,
        schedule=schedule,
        loss=loss,
        label_smoothing=label_smoothing,
        augment=augment,
        weights=weights,
        finetune=finetune,
        lr_factor=lr_factor,
        init=init,
        precision=precision,
        clip_grad=clip_grad,
        ema=ema,
        lookahead=lookahead,
        early_stopping=early_stopping,
        snapshots=snapshot_every if snapshot_every is not None else snapshots,
        tta=tta,
        val_size=val_size,
        train_size=train_size,
        test_size=test_size,
        seed=seed,
        device=device,
        out=str(out) if out else None,
    )
    if resume is not None:
        given = sorted(k for k, v in options.items() if v is not None)
        if recipe is not None:
            given.append("recipe")
        if overwrite:
            given.append("overwrite")
        if given or config is not None:
            from striate.errors import ConfigError

            raise ConfigError(
                f"--resume continues a run with its saved settings; leave out "
                f"{', '.join('--' + k.replace('_', '-') for k in given) or '--config'}"
            )
        cfg = TrainConfig()  # replaced by the run's saved settings
    elif recipe is not None:
        from striate.train.config import merge, read_toml
        from striate.train.recipes import recipe_config

        cfg = recipe_config(recipe, **merge(read_toml(config) if config else {}, options))
    else:
        cfg = TrainConfig.load(config, **options)
    if resume is not None:
        from striate.train.run import is_complete, resume_point

        point = resume_point(resume)
        if point is not None and not is_complete(resume):
            epoch, step = point
            console.print(f"resuming {escape(str(resume))} from epoch {epoch + 1}, step {step}")
    result = train_run(cfg, resume=resume, overwrite=overwrite, progress=progress)
    for warning in result.warnings:
        console.print(f"warning: {escape(warning)}")
    if result.already_complete:
        console.print(
            f"this run is already complete: nothing to resume ({_test_line(result.test)}); "
            f"its report is {escape(str(result.out / 'report.html'))}"
        )
        return
    if result.interrupted:
        last = result.out / "checkpoints" / "last.safetensors"
        boundary = bool(result.history) and result.history[-1]["step"] == result.step
        where = f"after epoch {result.epoch}" if boundary else f"in epoch {result.epoch + 1}"
        console.print(
            f"interrupted at step {result.step}, {where}; the state is saved in "
            f"{escape(str(last))}\ncontinue with: striate train --resume {escape(str(result.out))}"
        )
        raise typer.Exit(130)
    if result.stop_reason:
        console.print(escape(result.stop_reason))
    if not result.test:  # a process other than 0 under torchrun: process 0 reports
        return
    console.print(f"test {_test_line(result.test)}  ({result.seconds:.0f} s)")
    console.print(f"report: {escape(str(result.out / 'report.html'))}")


def _test_line(m: dict) -> str:
    """accuracy 98.61%, top-5 100.00%, loss 0.0512"""
    if "acc" not in m:
        return "no test metrics"
    top5 = f", top-5 {m['top5']:.2%}" if "top5" in m else ""
    return f"accuracy {m['acc']:.2%}{top5}, loss {m['loss']:.4f}"


def evaluate(
    model: Path = typer.Argument(
        ..., metavar="RUN", help="Run folder, its model/ folder, or a model.json."
    ),
    data: str | None = typer.Option(
        None,
        "--data",
        help="Dataset name or path [default: the run's own dataset, from its config.json].",
    ),
    root: str | None = ROOT,
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split to evaluate on [default: test; of the run's own data: train, val or test, "
        "as the run split it].",
    ),
    tta: str = typer.Option(
        "none", "--tta", help="Test-time augmentation: none, flip, translate[:N] or flip,translate."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Accuracy, top-5 accuracy, loss and per-class accuracy of a trained model on a dataset."""
    from striate.train.evaluation import evaluate_run

    m = evaluate_run(model, data, root, split, tta=tta, device=device)
    console.print(f"data: {escape(m['data'])}, {m['images']} images")
    for warning in m["warnings"]:
        console.print(f"warning: {escape(warning)}")
    console.print(_test_line(m))
    table = Table("class", "accuracy")
    for name, acc in m["per_class"].items():
        table.add_row(escape(str(name)), "n/a" if acc != acc else f"{acc:.2%}")
    console.print(table)


def predict(
    model: Path = typer.Argument(
        ..., metavar="RUN", help="Run folder, its model/ folder, or a model.json."
    ),
    images: list[Path] = typer.Argument(
        ..., metavar="IMAGE...", help="Image files (any size; resized to fit)."
    ),
    k: int = typer.Option(3, "--k", "--top", help="How many classes to show per image."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Top-k classes with probabilities for each image."""
    from striate.data.folder import decode_image
    from striate.device import resolve_device
    from striate.errors import DataError
    from striate.models.io import load_model

    if k < 1:
        from striate.errors import ConfigError

        raise ConfigError(f"--k must be at least 1, got {k}")
    net = load_model(model, device=resolve_device(device))
    arrays = []
    for path in images:
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror or e}") from e
        try:
            arrays.append(decode_image(raw, None))
        except DataError as e:
            raise DataError(f"{path} is not a readable image ({e})") from e
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a bad file
            raise DataError(f"{path} is not a readable image ({type(e).__name__}: {e})") from e
    for path, top in zip(images, net.predict(arrays, k=k), strict=True):
        ranked = "  ".join(f"{escape(str(c))} {p:.1%}" for c, p in top)
        console.print(f"{escape(str(path))}: {ranked}")


def lr_find(
    config: Path | None = CONFIG,
    data: str | None = DATA,
    root: str | None = ROOT,
    model: str | None = MODEL,
    batch_size: int | None = BATCH,
    opt: str | None = OPT,
    wd: float | None = WD,
    augment: str | None = AUGMENT,
    precision: str | None = PRECISION,
    seed: int | None = SEED,
    device: str | None = DEVICE,
    start: float = typer.Option(1e-8, "--start", help="First learning rate."),
    end: float = typer.Option(10.0, "--end", help="Last learning rate."),
    num_steps: int = typer.Option(100, "--num-steps", help="Steps of the sweep."),
    out: Path | None = _opt(
        "--out", "Folder for lr_find.png and lr_find.json [default: runs/lr-find/DATA-MODEL]."
    ),
    overwrite: bool = OVERWRITE,
) -> None:
    """The LR finder (Smith 2017): loss against a geometrically growing lr, and a suggestion."""
    from striate.train.config import TrainConfig
    from striate.train.run import lr_find_run

    cfg = TrainConfig.load(
        config,
        data=data,
        root=root,
        model=model,
        batch_size=batch_size,
        opt=opt,
        wd=wd,
        augment=augment,
        precision=precision,
        seed=seed,
        device=device,
        schedule="constant",
    )
    if out is None:
        from striate.outputs import default_folder

        out = default_folder(Path("runs/lr-find"), f"{Path(cfg.data).stem}-{cfg.model}")
    result = lr_find_run(
        cfg, start=start, end=end, num_steps=num_steps, out=out, overwrite=overwrite
    )
    if result.suggestion is None:
        console.print("too few points to suggest a learning rate; widen --start/--end")
    else:
        console.print(
            f"suggested lr {result.suggestion:.3g} (steepest descent at {result.steepest:.3g})"
        )
    console.print(f"plot: {escape(str(out / 'lr_find.png'))}")
