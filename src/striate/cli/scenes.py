"""`striate detect scenes OUT`: the generated digit-scene detection set (MNIST digits on CIFAR-10
backgrounds, with boxes and instance masks) written in COCO's layout:
OUT/annotations/instances_train.json, OUT/train/*.png, and the same for test."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import OVERWRITE
from striate.progress import output_console

console = output_console()


def _range(flag: str, text: str) -> tuple[int, int]:
    from striate.errors import ConfigError

    lo, sep, hi = text.partition("-")
    try:
        pair = (int(lo), int(hi if sep else lo))
    except ValueError:
        raise ConfigError(
            f"{flag} must be MIN-MAX (two integers, e.g. 1-4), got {text!r}"
        ) from None
    return pair


def scenes(
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder for annotations/, train/ and test/.")
    ],
    train: Annotated[int, typer.Option("--train", help="Number of train scenes.")] = 8000,
    test: Annotated[int, typer.Option("--test", help="Number of test scenes.")] = 1000,
    size: Annotated[int, typer.Option("--size", help="Side of the square scenes, pixels.")] = 64,
    per_image: Annotated[
        str, typer.Option("--per-image", help="MIN-MAX digits per scene.")
    ] = "1-4",
    digit_size: Annotated[
        str, typer.Option("--digit-size", help="MIN-MAX side of a scaled 28×28 digit, pixels.")
    ] = "16-40",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the train scenes; the test scenes use seed + 1.")
    ] = 0,
    mnist: Annotated[
        Path | None,
        typer.Option(
            "--mnist",
            show_default=False,
            help="MNIST's folder [default: $STRIATE_SHARED_DATA/mnist or ../shared/data/mnist "
            "when there, else the data folder].",
        ),
    ] = None,
    cifar: Annotated[
        Path | None,
        typer.Option(
            "--cifar",
            show_default=False,
            help="CIFAR-10: an image folder/zip with train/ and test/, a folder holding "
            "cifar10-jpeg.zip, or the official batches' folder [default: "
            "$STRIATE_SHARED_DATA/cifar10 or ../shared/data/cifar10 when there].",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Generate digit scenes (MNIST train/test digits on CIFAR-10 train/test backgrounds, so the
    splits share nothing) and write them as COCO JSON with PNG images."""
    from striate.checks import integer, positive_int
    from striate.data.coco import write_coco
    from striate.data.scenes import scenes_from_sources
    from striate.outputs import check_folder, clear_folder

    positive_int("scenes", "--train", train)
    positive_int("scenes", "--test", test)
    integer("scenes", "--size", size, low=8)
    options = {
        "size": size,
        "per_image": _range("--per-image", per_image),
        "digit_size": _range("--digit-size", digit_size),
    }
    check_folder(out, overwrite)
    made = {}
    for split, n, s in (("train", train, seed), ("test", test, seed + 1)):
        made[split] = scenes_from_sources(
            n, split, root_mnist=mnist, root_cifar=cifar, seed=s, progress=True, **options
        )
    clear_folder(out)
    for split, ds in made.items():
        path = write_coco(ds, out / "annotations" / f"instances_{split}.json", out / split)
        console.print(
            f"{split}: {len(ds):,} images, {len(ds.labels):,} digits → {escape(str(path))}"
        )
