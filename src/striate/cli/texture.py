"""`striate texture SOURCE`: a new, larger image of the texture in SOURCE — neural (Gatys et al.
2015: white noise optimised until its VGG Gram matrices are the source's) or non-parametric
(Efros & Leung 1999: grown pixel by pixel from the best-matching source neighbourhoods)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, VGG_WEIGHTS
from striate.progress import output_console

console = output_console()

METHODS = ("neural", "efros-leung")
# Efros & Leung compare each pixel with every window of the source: a small source keeps the
# search (and its memory, windows × window² × 3 floats) small.
EFROS_LEUNG_SOURCE = 64


def texture(
    source: Annotated[
        Path, typer.Argument(metavar="SOURCE", help="Image file of the texture to continue.")
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="neural (Gram matrices of VGG features, optimised) or efros-leung "
            "(non-parametric sampling).",
        ),
    ] = "neural",
    size: Annotated[int, typer.Option("--size", help="Side of the square texture, pixels.")] = 256,
    source_size: Annotated[
        int | None,
        typer.Option(
            "--source-size",
            show_default=False,
            help="Longer side the source is brought to [default: --size for neural, "
            f"{EFROS_LEUNG_SOURCE} for efros-leung].",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", show_default=False, help="neural: L-BFGS steps [default: 300]."),
    ] = None,
    weights: Annotated[Path | None, VGG_WEIGHTS] = None,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            show_default=False,
            help="efros-leung: side of the compared neighbourhood, odd [default: 11].",
        ),
    ] = None,
    every: Annotated[
        int,
        typer.Option("--every", help="neural: write the image so far to --out every N steps."),
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the noise or the sampling.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Image file (.png or .jpg) [default: runs/texture/SOURCE-METHOD.png, or -2, -3, "
            "... when taken]; an existing file needs --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing --out file.")
    ] = False,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """Synthesise a texture like SOURCE, neurally or by non-parametric sampling; Ctrl-C keeps the
    last image (neural)."""
    from striate.checks import non_negative_int, one_of, positive_int
    from striate.device import resolve_device
    from striate.errors import ConfigError
    from striate.synthesis.images import read_image, save_image

    method = one_of("texture", "--method", method, METHODS)
    only = {"--steps": steps, "--weights": weights, "--every": every or None}
    only = {"neural": only, "efros-leung": {"--window": window}}
    for other, options in only.items():
        for flag, value in options.items():
            if other != method and value is not None:
                raise ConfigError(f"{flag} is an option of --method {other}, not {method}")
    positive_int("texture", "--size", size)
    non_negative_int("texture", "--every", every)
    out = _output(out, source, method, overwrite)
    dev = resolve_device(device)
    side = source_size or (size if method == "neural" else EFROS_LEUNG_SOURCE)
    image = read_image(source, positive_int("texture", "--source-size", side)).to(dev)

    if method == "efros-leung":
        from striate.synthesis.efros_leung import efros_leung

        result = efros_leung(image, size, window=11 if window is None else window, seed=seed)
        save_image(result, out, overwrite=overwrite)
        console.print(f"texture: {escape(str(out))}")
        return

    from striate.synthesis.gatys import synthesize_texture

    def snapshot(step: int, x) -> None:
        save_image(x, out)

    done = synthesize_texture(
        image, size, weights=weights, steps=300 if steps is None else steps, seed=seed,
        progress=True, every=every, on_snapshot=snapshot if every else None,
    )  # fmt: skip
    save_image(done.image, out)
    if done.interrupted:
        console.print(f"interrupted; the last image: {escape(str(out))}")
    else:
        console.print(f"texture: {escape(str(out))}")


def _output(out: Path | None, source: Path, method: str, overwrite: bool) -> Path:
    """--out checked before any work: an image suffix, and no file replaced unless asked."""
    from striate.errors import ConfigError
    from striate.outputs import slug

    if out is None:
        base = Path("runs/texture") / f"{slug(source.stem)}-{method}"
        out, n = base.with_suffix(".png"), 2
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}.png"), n + 1
        return out
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {out}: name a .png or .jpg file")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder: name an image file")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists: pass --overwrite to replace it, or choose another --out")
    return out
