"""`striate harmonize PAINTING PASTED MASK`: an object pasted into a painting repainted in its
style (deep painterly harmonization, Luan et al. 2018, two passes), with the naive paste, pass 1
and pass 2 written side by side in a folder and the style distance of each in quality.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, OVERWRITE, VGG_WEIGHTS
from striate.progress import output_console

console = output_console()

OUTPUTS = ("naive.png", "pass1.png", "pass2.png", "quality.json")


def harmonize(
    painting: Annotated[
        Path, typer.Argument(metavar="PAINTING", help="Image file of the painting.")
    ],
    pasted: Annotated[
        Path,
        typer.Argument(
            metavar="PASTED", help="The painting with the object pasted in (same size)."
        ),
    ],
    mask: Annotated[
        Path,
        typer.Argument(
            metavar="MASK",
            help="Image file of the paste's mask: white on the object, black elsewhere.",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Folder for naive.png, pass1.png, pass2.png (the result) and quality.json "
            "[default: runs/harmonize/PASTED, or -2, -3, ... when taken]; results already there "
            "need --overwrite.",
        ),
    ] = None,
    weights: Annotated[Path | None, VGG_WEIGHTS] = None,
    size: Annotated[
        int, typer.Option("--size", help="Longer side to work at, pixels (the paper: 700).")
    ] = 256,
    steps: Annotated[
        int, typer.Option("--steps", help="L-BFGS steps of each pass (the paper: 1000).")
    ] = 80,
    tau: Annotated[
        float,
        typer.Option(
            "--tau",
            help="The painting's stylisation level, weighting pass 2's style, histogram and TV "
            "terms: 1 for Realism or Renaissance, about 5 for Impressionism, 10 for Expressionism "
            "(the authors' WikiArt estimates).",
        ),
    ] = 1.0,
    every: Annotated[
        int,
        typer.Option("--every", help="Write the pass's image so far to --out every N steps."),
    ] = 0,
    overwrite: Annotated[bool, OVERWRITE] = False,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """Harmonize the object of PASTED (where MASK is white) into PAINTING; Ctrl-C keeps the last
    image."""
    from striate._atomic import write_json
    from striate.checks import non_negative_int, positive_int
    from striate.device import resolve_device
    from striate.synthesis.harmonize import QUALITY_LAYERS
    from striate.synthesis.harmonize import harmonize as run_harmonize
    from striate.synthesis.images import read_image, save_image

    positive_int("harmonize", "--size", size)
    positive_int("harmonize", "--steps", steps)
    non_negative_int("harmonize", "--every", every)
    out = _output(out, pasted, overwrite)
    dev = resolve_device(device)
    images = [read_image(path).to(dev) for path in (painting, pasted, mask)]

    def snapshot(stage: str, step: int, x) -> None:
        save_image(x, out / f"{stage}.png")

    out.mkdir(parents=True, exist_ok=True)
    done = run_harmonize(
        *images, weights=weights, size=size, steps_pass1=steps, steps_pass2=steps, tau=tau,
        progress=True, every=every, on_snapshot=snapshot if every else None,
    )  # fmt: skip
    save_image(done.naive, out / "naive.png")
    save_image(done.pass1, out / "pass1.png")
    if done.pass2 is not None:
        save_image(done.final, out / "pass2.png")
    else:
        (out / "pass2.png").unlink(missing_ok=True)  # an earlier run's, replaced by nothing
    write_json(
        out / "quality.json",
        {
            "style_distance": done.quality,
            "style_distance_per_layer": done.quality_layers,
            "layers": list(QUALITY_LAYERS),
            "size": list(done.final.shape[-2:]),
            "steps": steps,
            "tau": tau,
            "pass2_weights": done.weights,
            "interrupted": done.interrupted,
        },
    )
    q = "  ".join(f"{k} {v:.3g}" for k, v in done.quality.items())
    if done.interrupted:
        console.print(f"interrupted; the last images are in {escape(str(out))}")
    else:
        console.print(f"harmonized: {escape(str(out / 'pass2.png'))}")
    console.print(f"style distance to the painting (lower is better): {q}", highlight=False)


def _output(out: Path | None, pasted: Path, overwrite: bool) -> Path:
    """--out checked before any work: a folder whose results are replaced only when asked."""
    from striate.errors import ConfigError
    from striate.outputs import slug

    if out is None:
        base = Path("runs/harmonize") / slug(pasted.stem)
        out, n = base, 2
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file: name a folder")
    taken = [name for name in OUTPUTS if (out / name).exists()]
    if taken and not overwrite:
        raise ConfigError(
            f"{out} already holds {', '.join(taken)}: pass --overwrite to replace them, or choose "
            f"another --out"
        )
    return out
