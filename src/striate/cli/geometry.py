"""`striate geometry deform|classify|primitives OUT`: the 3D toys of striate.geometry, each writing
its figure and numbers into the folder OUT."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="3D vision: an icosphere deformed to a target, PointNet on primitives, their pictures.",
)

TARGETS = ("box", "ellipsoid", "cylinder")
OutArg = Annotated[Path, typer.Argument(metavar="OUT", help="Folder for the figure and JSON.")]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace files of the same names already in OUT.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of the data and the initial weights.")]


@app.callback()
def _group() -> None:
    """3D vision: an icosphere deformed to a target, PointNet on primitives, their pictures."""


def _check_files(out: Path, names: tuple[str, ...], overwrite: bool) -> None:
    from striate.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"striate geometry: OUT must be a folder, got the file {out}")
    taken = [n for n in names if (out / n).exists()]
    if taken and not overwrite:
        raise InputError(
            f"striate geometry: {out} already holds {', '.join(taken)}: choose another OUT or "
            f"pass --overwrite"
        )
    out.mkdir(parents=True, exist_ok=True)


@app.command("deform")
def deform(
    out: OutArg,
    target: Annotated[
        str, typer.Option("--target", help=f"The target cloud: {', '.join(TARGETS)}.")
    ] = "box",
    steps: Annotated[int, typer.Option("--steps", help="Adam steps.")] = 300,
    subdivisions: Annotated[
        int, typer.Option("--subdivisions", help="Icosphere subdivisions (3: 642 vertices).")
    ] = 3,
    points: Annotated[int, typer.Option("--points", help="Points in the target cloud.")] = 2000,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Deform an icosphere into a target point cloud by minimising the Chamfer distance with
    graph-conv layers (Pixel2Mesh in miniature); writes deform.png and deform.json."""
    import torch

    from striate._atomic import save_figure, write_json
    from striate.checks import one_of, positive_int
    from striate.errors import InputError
    from striate.geometry import deform_to_target, plot_deformation, sample_surface

    one_of("striate geometry deform", "--target", target, TARGETS, error=InputError)
    positive_int("striate geometry deform", "--points", points, error=InputError)
    _check_files(out, ("deform.png", "deform.json"), overwrite)
    if target == "box":
        cloud, _ = sample_surface("box", points, seed=seed, half=(0.9, 0.6, 0.4))
    elif target == "ellipsoid":
        cloud, _ = sample_surface("sphere", points, seed=seed)
        cloud = cloud * torch.tensor([1.0, 0.6, 0.35])
    else:
        cloud, _ = sample_surface("cylinder", points, seed=seed)
        cloud = cloud * torch.tensor([0.6, 0.6, 0.9])
    result = deform_to_target(
        cloud, subdivisions=subdivisions, steps=steps, seed=seed, progress=True
    )
    save_figure(plot_deformation(result), out / "deform.png", dpi=80)
    c = result.chamfer
    write_json(
        out / "deform.json",
        {"target": target, "steps": steps, "subdivisions": subdivisions, "vertices":
         len(result.before), "chamfer_before": c[0], "chamfer_after": c[-1], "chamfer": c},
    )  # fmt: skip
    typer.echo(f"Chamfer distance {c[0]:.4g} → {c[-1]:.4g} ({c[0] / c[-1]:.0f}× lower) in {steps} "
               f"steps; {out / 'deform.png'}")  # fmt: skip


@app.command("classify")
def classify(
    out: OutArg,
    per_class: Annotated[int, typer.Option("--per-class", help="Training clouds a class.")] = 200,
    test_per_class: Annotated[
        int, typer.Option("--test-per-class", help="Held-out clouds a class.")
    ] = 100,
    points: Annotated[int, typer.Option("--points", help="Points a cloud.")] = 128,
    steps: Annotated[int, typer.Option("--steps", help="Optimiser steps.")] = 1500,
    lr: Annotated[float, typer.Option("--lr", help="Adam's learning rate.")] = 3e-3,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, mps.")] = "cpu",
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """Train a PointNet on randomly rotated, scaled and jittered primitives through the engine;
    writes classify.json with the held-out accuracy and a confusion matrix."""
    import torch

    from striate._atomic import write_json
    from striate.geometry import CLASSES, primitive_clouds, train_pointnet

    _check_files(out, ("classify.json",), overwrite)
    result = train_pointnet(
        train_per_class=per_class, test_per_class=test_per_class, points=points, steps=steps,
        lr=lr, seed=seed, device=device, progress=True,
    )  # fmt: skip
    x, y = primitive_clouds(test_per_class, points, seed=2 * seed + 1)  # the held-out clouds
    model = result.model.eval()
    with torch.no_grad():
        pred = model(x.to(next(model.parameters()).device)).argmax(1).cpu()
    confusion = torch.zeros(len(CLASSES), len(CLASSES), dtype=torch.int64)
    confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    write_json(
        out / "classify.json",
        {"classes": list(CLASSES), "train_per_class": per_class, "test_per_class":
         test_per_class, "points": points, "steps": steps, "lr": lr, "seed": seed,
         "test_accuracy": result.accuracy, "test_loss": result.loss,
         "confusion": confusion.tolist()},
    )  # fmt: skip
    typer.echo(f"PointNet held-out accuracy {result.accuracy:.3f} ({len(CLASSES)} classes, "
               f"chance {1 / len(CLASSES):.2f}); {out / 'classify.json'}")  # fmt: skip


@app.command("primitives")
def primitives(out: OutArg, overwrite: Overwrite = False) -> None:
    """Draw the five primitives as points, meshes, voxel grids and depth maps (primitives.png)."""
    from striate._atomic import save_figure
    from striate.geometry.figures import plot_primitives
    from striate.progress import phase

    _check_files(out, ("primitives.png",), overwrite)
    with phase("drawing"):
        fig = plot_primitives()
    save_figure(fig, out / "primitives.png", dpi=55)
    typer.echo(f"{out / 'primitives.png'}")
