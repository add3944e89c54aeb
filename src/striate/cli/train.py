"""`striate train`, `striate evaluate`, `striate predict` and `striate lr-find`.

Options left out fall back to `--config FILE.toml`, then to TrainConfig's defaults, so
`striate train` alone trains the small ConvNet on the bundled digits set. The options named after
TrainConfig's fields take their flag, help and default from the field (`striate.cli.options`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from striate.cli.inputs import PRETRAINED, load_classifier, read_images, split_model_and_images
from striate.cli.options import (
    CONFIG,
    HELP,
    MODEL_OPTION,
    OPT_OPTION,
    OVERWRITE,
    SCHEDULE_OPTION,
    listing,
    option,
    settings,
)
from striate.progress import output_console

console = output_console()  # tables unfolded when stdout is not a terminal

RECIPE = typer.Option(
    "--recipe",
    help=f"Start from a named recipe's settings ({listing('striate.train.recipes:RECIPES')}); "
    "options given win.",
)
SNAPSHOT_EVERY = typer.Option(
    "--snapshot-every", help="Save a snapshot every N epochs instead (with any schedule)."
)
RESUME = typer.Option(
    "--resume",
    help="Continue the run in this folder from its last checkpoint, with its saved settings.",
)
PROGRESS = typer.Option("--progress/--no-progress", help="Live progress bar.")


# The parameters named after TrainConfig fields are its settings (`settings(locals())`); their
# annotations are read when typer builds the command, not on import (postponed annotations).
def train(
    config: Annotated[Path | None, CONFIG] = None,
    recipe: Annotated[str | None, RECIPE] = None,
    data: Annotated[str | None, option("data")] = None,
    root: Annotated[str | None, option("root")] = None,
    model: Annotated[str | None, option("model")] = None,
    epochs: Annotated[int | None, option("epochs")] = None,
    steps: Annotated[int | None, option("steps")] = None,
    batch_size: Annotated[int | None, option("batch_size")] = None,
    opt: Annotated[str | None, option("opt")] = None,
    lr: Annotated[float | None, option("lr")] = None,
    weight_decay: Annotated[float | None, option("weight_decay")] = None,
    momentum: Annotated[float | None, option("momentum")] = None,
    schedule: Annotated[str | None, option("schedule")] = None,
    loss: Annotated[str | None, option("loss")] = None,
    label_smoothing: Annotated[float | None, option("label_smoothing")] = None,
    augment: Annotated[str | None, option("augment")] = None,
    init: Annotated[str | None, option("init")] = None,
    weights: Annotated[str | None, option("weights")] = None,
    finetune: Annotated[str | None, option("finetune")] = None,
    lr_factor: Annotated[float | None, option("lr_factor")] = None,
    precision: Annotated[str | None, option("precision")] = None,
    clip_grad: Annotated[float | None, option("clip_grad")] = None,
    ema: Annotated[float | None, option("ema")] = None,
    lookahead: Annotated[float | None, option("lookahead")] = None,
    early_stopping: Annotated[int | None, option("early_stopping")] = None,
    log_grad_norm: Annotated[bool | None, option("log_grad_norm")] = None,
    snapshots: Annotated[bool | None, option("snapshots")] = None,
    snapshot_every: Annotated[int | None, SNAPSHOT_EVERY] = None,
    model_option: Annotated[list[str] | None, MODEL_OPTION] = None,
    opt_option: Annotated[list[str] | None, OPT_OPTION] = None,
    schedule_option: Annotated[list[str] | None, SCHEDULE_OPTION] = None,
    tta: Annotated[str | None, option("tta")] = None,
    sampling: Annotated[str | None, option("sampling")] = None,
    sgds_transient: Annotated[int | None, option("sgds_transient")] = None,
    sgds_drop: Annotated[float | None, option("sgds_drop")] = None,
    val_size: Annotated[float | None, option("val_size")] = None,
    train_size: Annotated[int | None, option("train_size")] = None,
    test_size: Annotated[int | None, option("test_size")] = None,
    seed: Annotated[int | None, option("seed")] = None,
    device: Annotated[str | None, option("device")] = None,
    threads: Annotated[int | None, option("threads")] = None,
    out: Annotated[Path | None, option("out")] = None,
    resume: Annotated[Path | None, RESUME] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    progress: Annotated[bool, PROGRESS] = True,
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """Train a network and write a run folder with metrics, checkpoints, plots and report.html."""
    given = settings(locals())
    from striate.train.run import is_complete, resume_point, train_run

    cfg = _run_config(config, recipe, resume, overwrite, given)
    if resume is not None:
        point = resume_point(resume)
        if point is not None and not is_complete(resume):
            epoch, step = point
            console.print(f"resuming {escape(str(resume))} from epoch {epoch + 1}, step {step}")
    result = train_run(cfg, resume=resume, overwrite=overwrite, progress=progress)
    _print_result(result)


def _run_config(
    config: Path | None,
    recipe: str | None,
    resume: Path | None,
    overwrite: bool,
    given: dict[str, Any],
):
    """The run's TrainConfig: the recipe's or the defaults, then --config, then the options
    `given`; with --resume, which takes the run's saved settings, none of them."""
    from striate.errors import ConfigError
    from striate.train.config import TrainConfig, merge, read_toml
    from striate.train.recipes import recipe_config

    if resume is not None:
        extra = ["--" + k.replace("_", "-") for k in sorted(given)]
        extra += ["--recipe"] * (recipe is not None) + ["--overwrite"] * overwrite
        if extra or config is not None:
            raise ConfigError(
                f"--resume continues a run with its saved settings; leave out "
                f"{', '.join(extra) or '--config'}"
            )
        return TrainConfig()  # replaced by the run's saved settings
    if recipe is not None:
        return recipe_config(recipe, **merge(read_toml(config) if config else {}, given))
    return TrainConfig.load(config, **given)


def _print_result(result) -> None:
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
    root: Annotated[str | None, option("root")] = None,
    split: str | None = typer.Option(
        None,
        "--split",
        help="Split to evaluate on [default: test; of the run's own data: train, val or test, "
        "as the run split it].",
    ),
    tta: str = typer.Option(
        "none",
        "--tta",
        help="Test-time augmentation: none, flip, translate[:N], flip,translate or "
        "tencrop[:S1/S2/...] (10 crops per scale).",
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
    paths: list[Path] = typer.Argument(
        ...,
        metavar="[RUN] IMAGE...",
        help="A run folder (or its model/ folder, or a model.json), then image files of any size; "
        "with --pretrained, image files only.",
    ),
    pretrained: Annotated[str | None, PRETRAINED] = None,
    k: int = typer.Option(3, "--k", "--top", help="How many classes to show per image."),
    device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Top-k classes with probabilities for each image."""
    if k < 1:
        from striate.errors import ConfigError

        raise ConfigError(f"--k must be at least 1, got {k}")
    run, images = split_model_and_images(paths, pretrained, "predict")
    net = load_classifier(run, pretrained, device)
    for path, top in zip(images, net.predict(read_images(images), k=k), strict=True):
        ranked = "  ".join(f"{escape(str(c))} {p:.1%}" for c, p in top)
        console.print(f"{escape(str(path))}: {ranked}")


def lr_find(
    config: Annotated[Path | None, CONFIG] = None,
    data: Annotated[str | None, option("data")] = None,
    root: Annotated[str | None, option("root")] = None,
    model: Annotated[str | None, option("model")] = None,
    batch_size: Annotated[int | None, option("batch_size")] = None,
    opt: Annotated[str | None, option("opt")] = None,
    weight_decay: Annotated[float | None, option("weight_decay")] = None,
    augment: Annotated[str | None, option("augment")] = None,
    precision: Annotated[str | None, option("precision")] = None,
    seed: Annotated[int | None, option("seed")] = None,
    device: Annotated[str | None, option("device")] = None,
    start: Annotated[float, typer.Option("--start", help="First learning rate.")] = 1e-8,
    end: Annotated[float, typer.Option("--end", help="Last learning rate.")] = 10.0,
    num_steps: Annotated[int, typer.Option("--num-steps", help="Steps of the sweep.")] = 100,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for lr_find.png and lr_find.json [default: runs/lr-find/DATA-MODEL].",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    show_help: Annotated[bool, HELP] = False,
) -> None:
    """The LR finder (Smith 2017): loss against a geometrically growing lr, and a suggestion."""
    given = settings(locals())
    from striate.outputs import default_folder
    from striate.train.config import TrainConfig
    from striate.train.run import lr_find_run

    cfg = TrainConfig.load(config, **given, schedule="constant")
    out = folder or default_folder(Path("runs/lr-find"), f"{Path(cfg.data).stem}-{cfg.model}")
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
