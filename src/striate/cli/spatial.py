"""`striate spatial mnist VARIANT OUT`: the distorted MNIST sets of the spatial transformer paper
(Jaderberg et al. 2015) written as MNIST IDX files, so that
``striate train --data mnist --root OUT --model st_cnn`` trains on them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: "[default: all]" is text
    help="Spatial transformer networks: the distorted MNIST sets of Jaderberg et al. 2015.",
)

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@app.callback()
def _group() -> None:
    """Spatial transformer networks: the distorted MNIST sets of Jaderberg et al. 2015."""


@app.command("mnist")
def mnist(
    variant: Annotated[
        str,
        typer.Argument(
            metavar="VARIANT",
            help="R (rotated ±90°), RTS (rotated ±45°, scaled 0.7-1.2, in 42×42), P "
            "(projective), E (elastic) or cluttered (60×60 with 6×6 distractors).",
        ),
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Folder for the four MNIST-named IDX .gz files.")
    ],
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the training set's distortions; test: seed+1.")
    ] = 0,
    train: Annotated[
        int | None,
        typer.Option(
            "--train", show_default=False, help="The first N training images [default: all]."
        ),
    ] = None,
    test: Annotated[
        int | None,
        typer.Option("--test", show_default=False, help="The first N test images [default: all]."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            show_default=False,
            help="Folder of the MNIST IDX files [default: the data folder].",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the files in an OUT that holds some.")
    ] = False,
) -> None:
    """Write the VARIANT distortion of MNIST's training and test sets to OUT (IDX, gzip)."""
    from striate import load_dataset
    from striate._atomic import write_json
    from striate.checks import positive_int
    from striate.data.idx import write_idx
    from striate.outputs import check_folder, clear_folder
    from striate.spatial.variants import VARIANTS, distorted_set, variant_name

    name = variant_name(variant)
    counts = {
        "train": positive_int("striate spatial mnist", "--train", train, allow_none=True),
        "test": positive_int("striate spatial mnist", "--test", test, allow_none=True),
    }
    check_folder(out, overwrite)
    sets = {}
    for i, split in enumerate(("train", "test")):
        ds = load_dataset("mnist", split, root=root)
        if counts[split] is not None:
            ds = ds[: counts[split]]
        sets[split] = distorted_set(ds, name, seed + i)
    clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
    for split, ds in sets.items():
        images, labels = FILES[split]
        write_idx(out / images, ds.images[:, 0].numpy(), overwrite=True)
        write_idx(out / labels, ds.labels.numpy().astype("uint8"), overwrite=True)
    h, w = sets["train"].images.shape[-2:]
    write_json(
        out / "distortion.json",
        {
            "variant": name,
            "description": VARIANTS[name][1],
            "seed": {"train": seed, "test": seed + 1},
            "images": {split: len(ds) for split, ds in sets.items()},
            "size": [int(h), int(w)],
        },
    )
    typer.echo(
        f"{name} MNIST: {len(sets['train']):,} training and {len(sets['test']):,} test images, "
        f"{h}×{w}, in {out}"
    )
