"""`striate stylize CONTENT STYLE [STYLE...]`: Gatys style transfer of one photograph, saved as
one image; the intermediate image every N steps; Ctrl-C keeps the last image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, VGG_WEIGHTS
from striate.progress import output_console

console = output_console()


def _blend(text: str | None, n: int) -> list[float] | None:
    """--style-blend "w1,w2,…" as n numbers."""
    from striate.errors import ConfigError

    if text is None:
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != n:
        raise ConfigError(
            f"--style-blend must be {n} comma-separated numbers, one per style, got {text!r}"
        )
    return weights


def snapshot_path(out: Path, step: int) -> Path:
    """Where the image of `step` goes beside `out`: stylized.png → stylized.step0100.png."""
    return out.with_name(f"{out.stem}.step{step:04d}{out.suffix}")


def stylize(
    content: Annotated[Path, typer.Argument(metavar="CONTENT", help="The photograph to paint.")],
    styles: Annotated[
        list[Path],
        typer.Argument(metavar="STYLE...", help="One or more style images (paintings)."),
    ],
    weights: Annotated[Path | None, VGG_WEIGHTS] = None,
    size: Annotated[int, typer.Option("--size", help="Longer side of the result in pixels.")] = 384,
    steps: Annotated[
        int, typer.Option("--steps", help="Optimisation steps (per scale with --scales).")
    ] = 300,
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="The image to write (.png or .jpg); an existing one needs --overwrite."
        ),
    ] = Path("stylized.png"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out if it exists.")
    ] = False,
    content_weight: Annotated[
        float, typer.Option("--content-weight", help="Weight of the content loss.")
    ] = 1.0,
    style_weight: Annotated[
        float,
        typer.Option(
            "--style-weight",
            help="Weight of the style loss; the ratio to --content-weight is the knob (higher: "
            "more paint, less photograph).",
        ),
    ] = 3.0,
    tv_weight: Annotated[
        float, typer.Option("--tv-weight", help="Weight of the total-variation smoothing.")
    ] = 1.0,
    style_blend: Annotated[
        str | None,
        typer.Option(
            "--style-blend",
            help="Weights of the styles, comma-separated (e.g. 0.7,0.3) [default: equal].",
            show_default=False,
        ),
    ] = None,
    style_scale: Annotated[
        float,
        typer.Option(
            "--style-scale",
            help="Size of each style image relative to the result's (smaller: finer brush "
            "strokes).",
        ),
    ] = 1.0,
    init: Annotated[str, typer.Option("--init", help="Start from content, style or noise.")] = (
        "content"
    ),
    optimizer: Annotated[str, typer.Option("--optimizer", help="lbfgs or adam.")] = "lbfgs",
    preserve_colour: Annotated[
        bool,
        typer.Option(
            "--preserve-colour", help="Keep the photograph's colours (transfer luminance only)."
        ),
    ] = False,
    scales: Annotated[
        int,
        typer.Option(
            "--scales",
            help="Coarse-to-fine: optimise at 1/2^(k-1), ..., 1/2, 1 of --size, each result the "
            "next start.",
        ),
    ] = 1,
    every: Annotated[
        int,
        typer.Option(
            "--every",
            help="Save the image every N steps beside --out (stylized.step0100.png; replaced if "
            "there); 0: never.",
        ),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise start.")] = 0,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """Paint CONTENT in the style of the STYLE images (Gatys et al.'s optimisation on VGG
    features) and write the result to --out."""
    from striate.checks import positive_int
    from striate.device import resolve_device
    from striate.errors import StriateError
    from striate.synthesis.gatys import stylize as run
    from striate.synthesis.images import read_image, save_image

    owner = ""
    size = positive_int(owner, "--size", size)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise StriateError(f"--out {out}: name a .png or .jpg file")
    if out.exists() and not overwrite:
        raise StriateError(f"{out} exists; choose another --out or pass --overwrite")
    blend = _blend(style_blend, len(styles))
    dev = resolve_device(device)
    photo = read_image(content, size).to(dev)
    paintings = [read_image(p).to(dev) for p in styles]

    def snapshot(step: int, image) -> None:
        path = save_image(image, snapshot_path(out, step))
        console.print(f"step {step}: {escape(str(path))}")

    result = run(
        photo,
        paintings,
        style_weights=blend,
        content_weight=content_weight,
        style_weight=style_weight,
        tv_weight=tv_weight,
        weights=weights,
        optimizer=optimizer,
        steps=steps,
        init=init,
        seed=seed,
        style_scale=style_scale,
        preserve_colour=preserve_colour,
        scales=scales,
        every=every,
        on_snapshot=snapshot if every else None,
    )
    path = save_image(result.image, out, overwrite=overwrite)
    if result.interrupted:
        console.print(f"stopped at step {len(result.history)} (Ctrl-C); the image so far:")
    console.print(f"wrote {escape(str(path))}")
