"""`striate stylize train-fast STYLE... --out DIR` and `striate stylize apply MODEL IMAGE...`: fast
feed-forward style transfer (Johnson et al. 2016; several styles in one network, Dumoulin et al.
2017) — train a network once, then stylise any photograph in one forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, OVERWRITE, VGG_WEIGHTS
from striate.progress import output_console

console = output_console()


def train_fast(
    styles: Annotated[
        list[Path],
        typer.Argument(
            metavar="STYLE...",
            help="Style images; one network learns them all (conditional instance norm).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Run folder [default: runs/fast-style/STYLES, or -2, -3, ... when taken]; one "
            "that already holds results needs --overwrite (or --resume).",
        ),
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Side of the training crops.")] = 128,
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per step.")] = 4,
    every: Annotated[
        int, typer.Option("--every", help="Steps between checkpoints and held-out evaluations.")
    ] = 100,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 1e-3,
    content_weight: Annotated[
        float, typer.Option("--content-weight", help="Weight of the content loss (relu2_2).")
    ] = 1.0,
    style_weight: Annotated[
        float, typer.Option("--style-weight", help="Weight of the style (Gram) loss.")
    ] = 5.0,
    tv_weight: Annotated[
        float, typer.Option("--tv-weight", help="Weight of the total variation.")
    ] = 1e-2,
    style_size: Annotated[
        int | None,
        typer.Option(
            "--style-size",
            help="Longer side of the style images [default: --size].",
            show_default=False,
        ),
    ] = None,
    width: Annotated[
        int, typer.Option("--width", help="Channels of the first layer (then 2×, 4×).")
    ] = 32,
    residual_blocks: Annotated[
        int, typer.Option("--residual-blocks", help="Residual blocks of the network.")
    ] = 5,
    weights: Annotated[Path | None, VGG_WEIGHTS] = None,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Images to crop besides the photographs: cifar10 (the shared JPEG copy), a "
            "dataset name or path, or none.",
        ),
    ] = "cifar10",
    data_size: Annotated[
        int | None,
        typer.Option("--data-size", help="Use this many images of --data.", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the initialisation and crops.")] = 0,
    device: Annotated[str, DEVICE] = "auto",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run stopped in --out (Ctrl-C).")
    ] = False,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Train a fast style-transfer network; the run folder gets model.safetensors, loss.png and
    samples.png (held-out photographs in each style)."""
    from striate.errors import ConfigError
    from striate.outputs import default_folder
    from striate.synthesis.fast import train_fast_style

    if resume:
        if out is None:
            raise ConfigError("--resume needs --out RUN, the folder of the run to continue")
        run = train_fast_style([], out, resume=True)
    else:
        label = "-".join(p.stem for p in styles)
        out = out or default_folder(Path("runs/fast-style"), label)
        run = train_fast_style(
            styles,
            out,
            overwrite=overwrite,
            size=size,
            steps=steps,
            batch_size=batch_size,
            every=every,
            lr=lr,
            content_weight=content_weight,
            style_weight=style_weight,
            tv_weight=tv_weight,
            style_size=style_size,
            width=width,
            residual_blocks=residual_blocks,
            weights=None if weights is None else str(weights),
            data=None if data.lower() == "none" else data,
            data_size=data_size,
            seed=seed,
            device=device,
        )
    if run.interrupted:
        console.print(f"interrupted: continue with --resume --out {escape(str(out))}")
    held = ", ".join(f"{k.removeprefix('held_out_')} {v:.4g}" for k, v in run.held_out.items())
    if held:
        console.print(f"held-out photographs: {held}")
    console.print(f"model: {escape(str(out / 'model.safetensors'))}")
    console.print(f"samples: {escape(str(out / 'samples.png'))}")


def apply(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A train-fast model.safetensors (or its run).")
    ],
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Images to stylise.")],
    style: Annotated[
        str | None,
        typer.Option(
            "--style",
            help="Style by name or index [default: every style of the model].",
            show_default=False,
        ),
    ] = None,
    blend: Annotated[
        str | None,
        typer.Option(
            "--blend",
            help="Blend the styles by weights, one per style, e.g. 0.5,0.5 (Dumoulin et al.).",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size", help="Longer side of the results [default: the image's].", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Folder for IMAGE-STYLE.png [default: runs/fast-style-apply/MODEL]; existing "
            "files there need --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Stylise images with a trained fast style-transfer network."""
    from striate.device import resolve_device
    from striate.errors import ConfigError, InputError
    from striate.outputs import slug
    from striate.synthesis.fast import apply_fast_style, load_fast_style
    from striate.synthesis.images import read_image, save_image

    if style is not None and blend is not None:
        raise ConfigError("give --style or --blend, not both")
    net = load_fast_style(model, resolve_device(device))
    if blend is not None:
        try:
            weights = [float(v) for v in blend.split(",")]
        except ValueError as e:
            raise InputError(f"--blend takes numbers separated by commas, got {blend!r}") from e
        choices = [(weights, "blend-" + "-".join(f"{w:g}" for w in weights))]
    elif style is not None:
        choices = [(style, style)]
    else:
        choices = [(name, name) for name in net.style_names]
    if out is None:
        name = model.parent.name if model.name == "model.safetensors" else model.stem
        out = Path("runs/fast-style-apply") / slug(name or "model")
    targets = {(i, label): out / f"{slug(p.stem)}-{slug(label)}.png" for i, p in enumerate(images)
               for _, label in choices}  # fmt: skip
    taken = [str(t) for t in targets.values() if t.exists()]
    if taken and not overwrite:
        raise ConfigError(
            f"{taken[0]} exists{f' (and {len(taken) - 1} more)' if len(taken) > 1 else ''}: "
            f"pass --overwrite to replace, or choose another --out"
        )
    if len(set(targets.values())) != len(targets):
        raise ConfigError("two images have the same file name: stylise them in separate runs")
    pictures = [read_image(p, size) for p in images]  # every file is read before any is written
    for i, picture in enumerate(pictures):
        for chosen, label in choices:
            result = apply_fast_style(net, picture, chosen)
            path = save_image(result, targets[(i, label)], overwrite=overwrite)
            console.print(f"{escape(str(images[i]))} → {escape(str(path))}")
