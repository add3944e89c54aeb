"""`striate detect train|eval|predict`: train the one-stage grid detector or the two-stage
Faster R-CNN on a COCO-layout folder (e.g. the digit scenes of `striate detect scenes`), score a
run on the test split (COCO mAP, mAP@0.5, VOC 2007), and draw a run's detections on images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate._atomic import save_figure
from striate.cli.options import DEVICE, MODEL_OPTION, OVERWRITE
from striate.progress import output_console

console = output_console()

app = typer.Typer(
    no_args_is_help=True,
    help="Object detection: `train` a detector (grid: YOLO/SSD-style one stage; two-stage: "
    "Faster R-CNN) on a COCO-layout folder, `eval` a run on its test split, `predict` boxes "
    "on images.",
)

DATA_HELP = (
    "Folder in the COCO layout: annotations/instances_{train,test}.json and the images under "
    "train/ and test/ (striate detect scenes writes one)."
)


@app.command("train")
def train(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            show_default=False,
            help="Run folder; one that already holds results needs --overwrite (or --resume).",
        ),
    ],
    data: Annotated[Path | None, typer.Option("--data", help=DATA_HELP, show_default=False)] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model", help="grid (one stage: YOLO/SSD grid) or two-stage (Faster R-CNN)."
        ),
    ] = "grid",
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training images.")] = 6,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.")] = 32,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate (cosine decay).")] = 2e-3,
    augment: Annotated[
        str | None,
        typer.Option(
            "--augment",
            help="Box-aware augmentation, e.g. zoom (see striate.data.box_augment); boxes move "
            "with the pixels.",
            show_default=False,
        ),
    ] = None,
    train_size: Annotated[
        int | None,
        typer.Option("--train-size", help="Use this many training images.", show_default=False),
    ] = None,
    test_size: Annotated[
        int | None,
        typer.Option("--test-size", help="Use this many test images.", show_default=False),
    ] = None,
    model_option: Annotated[list[str] | None, MODEL_OPTION] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the initialisation and data order.")
    ] = 0,
    device: Annotated[str, DEVICE] = "auto",
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show progress bars.")
    ] = True,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run stopped in --out (Ctrl-C).")
    ] = False,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Train a detector; the run folder gets the model, metrics.csv, checkpoints, eval.json
    (COCO mAP, mAP@0.5, VOC07 on the test split), detections.png (before and after NMS),
    pr_curves.png and report.html."""
    from striate.cli.models import parse_options
    from striate.detection.run import detector_name, train_detector
    from striate.errors import ConfigError

    if resume:
        run = train_detector(out=out, resume=True, progress=progress)
    else:
        if data is None:
            raise ConfigError("detect train: give --data SCENES (or --resume to continue --out)")
        detector_name(model)  # an unknown model fails before the data is read
        run = train_detector(
            data,
            out=out,
            overwrite=overwrite,
            progress=progress,
            model=model,
            model_options=parse_options(model_option or []),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            augment=augment,
            train_size=train_size,
            test_size=test_size,
            seed=seed,
            device=device,
        )
    if run.trainer.interrupted:
        console.print(
            f"interrupted: continue with striate detect train --resume --out {escape(str(out))}"
        )
        return
    _print_scores(run.test)
    console.print(f"training time: {run.seconds:.0f} s")
    console.print(f"run: {escape(str(out))} (eval.json, detections.png, pr_curves.png)")


@app.command("eval")
def evaluate(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A striate detect train run folder.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help=DATA_HELP + " [default: the run's]", show_default=False),
    ] = None,
    test_size: Annotated[
        int | None,
        typer.Option("--test-size", help="Use this many test images.", show_default=False),
    ] = None,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """COCO mAP (IoU 0.50:0.95), mAP@0.5, mAP@0.75 and VOC 2007 / 2010 mAP of a run's model on
    the test split; written to RUN/eval.json."""
    from striate.detection.run import evaluate_detector

    scores = evaluate_detector(run, data, test_size=test_size, device=device)
    _print_scores(scores)


@app.command("predict")
def predict(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="A striate detect train run folder.")],
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Images to look at.")],
    threshold: Annotated[
        float, typer.Option("--threshold", help="Show detections scoring at least this.")
    ] = 0.5,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Folder for IMAGE.png with the boxes drawn [default: RUN/predictions]; one "
            "that already holds results needs --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Detect objects in images: print each detection (class, score, box x1 y1 x2 y2 in pixels)
    and draw them with their scores."""
    import torch

    from striate.cli.inputs import read_images
    from striate.detection.figures import plot_image_detections
    from striate.detection.run import load_detector, predict_detections
    from striate.errors import ConfigError
    from striate.outputs import check_folder, slug

    loaded = load_detector(run, device)
    arrays = read_images(images)
    out = out or run / "predictions"
    check_folder(out, overwrite)
    names = [f"{slug(p.stem)}.png" for p in images]
    if len(set(names)) != len(names):
        raise ConfigError("two images have the same file name: predict them in separate runs")
    found = predict_detections(loaded, arrays, threshold)
    out.mkdir(parents=True, exist_ok=True)
    for path, name, array, d in zip(images, names, arrays, found, strict=True):
        console.print(f"{escape(str(path))}: {len(d['scores'])} detection(s)")
        for box, score, label in zip(d["boxes"].tolist(), d["scores"].tolist(),
                                     d["labels"].tolist(), strict=True):  # fmt: skip
            where = " ".join(f"{v:.1f}" for v in box)
            console.print(f"  {escape(loaded.classes[label])} {score:.2f} [{where}]")
        image = torch.tensor(array).permute(2, 0, 1).float().div(255)
        fig = plot_image_detections(
            image, d, loaded.classes, title=f"{path.name} (score ≥ {threshold:g})"
        )
        save_figure(fig, out / name, dpi=120)
    console.print(f"pictures: {escape(str(out))}")


def _print_scores(scores: dict[str, dict[str, float]]) -> None:
    coco, voc07 = scores.get("coco", {}), scores.get("voc2007", {})
    console.print(
        f"test: COCO mAP {coco.get('map', float('nan')):.4f}, mAP@0.5 "
        f"{coco.get('map_50', float('nan')):.4f}, mAP@0.75 {coco.get('map_75', float('nan')):.4f}, "
        f"VOC07 mAP {voc07.get('map', float('nan')):.4f}"
    )
