"""`striate segment train|eval|predict`: semantic segmentation of the digit scenes (or any COCO
folder with instance masks) by a U-Net, an FCN or a DeconvNet, trained through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, MODEL_OPTION, OVERWRITE, RESUME
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Semantic segmentation: train a network, evaluate it (mIoU), predict class maps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="RUN", help="Run folder made by striate segment train.")


def _line(metrics: dict[str, float]) -> str:
    names = {"miou": "mIoU", "acc": "pixel accuracy", "class_acc": "class accuracy"}
    parts = [f"{names[k]} {metrics[k]:.4f}" for k in ("miou", "acc", "class_acc") if k in metrics]
    return ", ".join(parts) + (f", loss {metrics['loss']:.4f}" if "loss" in metrics else "")


@app.command()
def train(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            show_default=False,
            help="Folder in COCO layout (annotations/instances_train.json and instances_test"
            ".json, train/, test/), e.g. from striate detect scenes; or 'scenes' to draw the "
            "digit scenes afresh. Required unless --resume.",
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="unet, fcn or deconvnet; -o coarse_scores=true gives the U-Net FCN-style "
            "coarse scores (it learns which digit far sooner: docs/segmentation).",
        ),
    ] = "unet",
    model_option: Annotated[list[str] | None, MODEL_OPTION] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 6,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 5e-3,
    opt: Annotated[str, typer.Option("--opt", help="Optimiser.")] = "adam",
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule.")] = "cosine",
    augment: Annotated[
        str,
        typer.Option(
            "--augment",
            help="Box-aware augmentation, e.g. zoom:0.8-1.25,jitter:0.2 (no flip "
            "for digits) [default: none].",
        ),
    ] = "",
    train_size: Annotated[
        int | None,
        typer.Option("--train-size", show_default=False, help="Training images [default: all]."),
    ] = None,
    val_size: Annotated[
        int, typer.Option("--val-size", help="Training images held out to pick the best epoch.")
    ] = 500,
    test_size: Annotated[
        int | None,
        typer.Option("--test-size", show_default=False, help="Test images [default: all]."),
    ] = None,
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            show_default=False,
            help="With --data scenes: the folder holding mnist/ and cifar10/ [default: "
            "$STRIATE_SHARED_DATA or ../shared/data].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, weights and order.")] = 0,
    device: Annotated[str, DEVICE] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Run folder [default: runs/segment/MODEL, or -2, -3, ... when taken]; one that "
            "already holds results needs --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    resume: Annotated[Path | None, RESUME] = None,
) -> None:
    """Train a segmentation network; the run folder gets the model, metrics, overlays and a
    report. Ctrl-C keeps the last checkpoint (--resume RUN continues it)."""
    from striate.cli.models import parse_options
    from striate.errors import ConfigError
    from striate.outputs import default_folder
    from striate.segmentation.run import train_segmenter

    if resume is not None:
        result = train_segmenter(out=resume, resume=True)
    else:
        if data is None:
            raise ConfigError(
                "give --data: a folder in COCO layout (striate detect scenes OUT makes one) or "
                "'scenes'"
            )
        out = out or default_folder(Path("runs/segment"), model)
        result = train_segmenter(
            data,
            out=out,
            overwrite=overwrite,
            model=model,
            model_options=parse_options(model_option or []),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            opt=opt,
            schedule=schedule,
            augment=augment,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            root=root,
            seed=seed,
            device=device,
        )
    run = result.out
    if result.trainer.interrupted:
        console.print(
            f"interrupted; continue with: striate segment train --resume {escape(str(run))}"
        )
        return
    console.print(f"test: {_line(result.test)}")
    console.print(f"model: {escape(str(run / 'model'))}")
    console.print(f"report: {escape(str(run / 'report.html'))}")


@app.command("eval")
def evaluate(
    run: Annotated[Path, RUN],
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            show_default=False,
            help="Another COCO folder to test on [default: the run's].",
        ),
    ] = None,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """mIoU, pixel and class accuracy of a trained run on its test split, with per-class IoU."""
    from striate.segmentation.metrics import iou_per_class
    from striate.segmentation.run import evaluate_segmenter

    metrics, cm, classes = evaluate_segmenter(run, data, device=device, progress=False)
    console.print(f"test: {_line(metrics)}")
    for name, iou in zip(classes, iou_per_class(cm).tolist(), strict=True):
        shown = "—" if iou != iou else f"{iou:.4f}"  # NaN: in neither truth nor prediction
        console.print(f"  IoU {escape(name):>10}  {shown}")


@app.command()
def predict(
    run: Annotated[Path, RUN],
    images: Annotated[
        list[Path], typer.Argument(metavar="IMAGE...", help="Image files to segment.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for NAME.png (image | prediction, with a legend) and NAME_classes.png "
            "(class indices, palette PNG); one that already holds files needs --overwrite.",
        ),
    ],
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Class maps of images by a trained run, drawn over them."""
    from striate._atomic import save_figure
    from striate.cli.inputs import read_images
    from striate.outputs import check_folder, clear_folder
    from striate.segmentation.figures import plot_overlays, save_class_map
    from striate.segmentation.run import as_uint8_batch, load_segmenter

    check_folder(out, overwrite)
    segmenter = load_segmenter(run, device)
    arrays = read_images(images)
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    k = len(segmenter.classes)
    for path, x in zip(images, as_uint8_batch(arrays), strict=True):  # a few files, each its size
        class_map = segmenter.predict(x)
        fig = plot_overlays(x, None, class_map, segmenter.classes, titles=[path.name])
        save_figure(fig, out / f"{path.stem}.png")
        save_class_map(out / f"{path.stem}_classes.png", class_map[0], k)
        found = sorted({segmenter.classes[i] for i in class_map.unique().tolist()} - {"background"})
        console.print(
            f"{escape(str(out / path.stem))}.png: {', '.join(found) or 'background only'}"
        )
