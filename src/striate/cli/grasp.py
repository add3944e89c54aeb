"""`striate grasp generate|train|plan`: Dex-Net 2.0 at small scale — labelled depth scenes, a
grasp-quality CNN, and planners compared under the analytic robustness model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import OVERWRITE
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Parallel-jaw grasping (Dex-Net 2.0): generate labelled scenes, train a GQ-CNN, plan.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _opt(flag: str, help: str, show_default: bool = True) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


def _out(default: str) -> typer.models.OptionInfo:
    return typer.Option("--out", help=f"Output folder [default: {default}].", show_default=False)


@app.command()
def generate(
    scenes: Annotated[int, _opt("--scenes", "Scenes (one polygon on a table each).")] = 2000,
    seed: Annotated[int, _opt("--seed", "Seed of the scenes, noise, candidates, labels.")] = 0,
    pairs: Annotated[int, _opt("--pairs", "Edge-pixel pairs tried per scene.")] = 256,
    samples: Annotated[int, _opt("--samples", "Monte-Carlo samples per robustness.")] = 32,
    threshold: Annotated[float, _opt("--threshold", "Robust when robustness > this.")] = 0.5,
    out: Annotated[Path | None, _out("runs/grasp/data")] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Make a labelled dataset: noisy 64×64 depth images of random extruded polygons, antipodal
    and random grasp candidates, their Monte-Carlo robustness and labels (balanced); writes
    dataset.safetensors, summary.json and examples.png (green: robust, red: not)."""
    from striate.checks import integer, number
    from striate.errors import InputError
    from striate.grasp.run import generate_job

    integer("grasp generate", "--scenes", scenes, low=1, error=InputError)
    integer("grasp generate", "--pairs", pairs, low=1, error=InputError)
    integer("grasp generate", "--samples", samples, low=1, error=InputError)
    number("grasp generate", "--threshold", threshold, low=0, high=1, error=InputError)
    out = out or Path("runs/grasp/data")
    s = generate_job(out, scenes=scenes, seed=seed, pairs=pairs, samples=samples,
                     threshold=threshold, overwrite=overwrite)  # fmt: skip
    console.print(
        f"{s['scenes']:,} scenes, {s['grasps']:,} labelled grasps ({s['positives']:,} robust)"
    )
    console.print(f"data: {escape(str(out))}")


@app.command()
def train(
    data: Annotated[
        Path, typer.Argument(metavar="DATA", help="Folder made by striate grasp generate.")
    ],
    epochs: Annotated[int, _opt("--epochs", "Passes over the training grasps.")] = 8,
    batch_size: Annotated[int, _opt("--batch-size", "Grasps per step.")] = 128,
    lr: Annotated[float, _opt("--lr", "Adam's learning rate (cosine schedule).")] = 1e-3,
    test_fraction: Annotated[
        float, _opt("--test-fraction", "Share of the scenes held out for precision/recall.")
    ] = 0.2,
    seed: Annotated[int, _opt("--seed", "Seed of the split, weights and batches.")] = 0,
    device: Annotated[str, _opt("--device", "cpu, cuda, cuda:N or auto.")] = "cpu",
    out: Annotated[Path | None, _out("runs/grasp/gqcnn")] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Train the GQ-CNN on grasp-aligned crops and the gripper depth; held-out scenes give
    accuracy, precision and recall (metrics.json) beside the majority-class classifier's; writes
    gqcnn.safetensors and crops.png."""
    from striate.checks import integer, number
    from striate.errors import InputError
    from striate.grasp.run import TrainSettings, train_job

    integer("grasp train", "--epochs", epochs, low=1, error=InputError)
    integer("grasp train", "--batch-size", batch_size, low=1, error=InputError)
    number("grasp train", "--lr", lr, low=0, low_open=True, error=InputError)
    number("grasp train", "--test-fraction", test_fraction, low=0.01, high=0.9, error=InputError)
    out = out or Path("runs/grasp/gqcnn")
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr,
                             test_fraction=test_fraction, seed=seed, device=device)  # fmt: skip
    m = train_job(data, out, settings, overwrite=overwrite)
    console.print(
        f"held-out {m['test_grasps']:,} grasps: accuracy {m['acc']:.3f} (majority "
        f"{m['majority_acc']:.3f}), precision {m['precision']:.3f}, recall {m['recall']:.3f}"
    )
    console.print(f"model: {escape(str(out))}")


@app.command()
def plan(
    model: Annotated[
        Path, typer.Argument(metavar="MODEL", help="Folder made by striate grasp train.")
    ],
    scenes: Annotated[int, _opt("--scenes", "New scenes to plan on.")] = 200,
    seed: Annotated[int, _opt("--seed", "Seed of the scenes and planners.")] = 100,
    candidates: Annotated[
        int, _opt("--candidates", "Candidates per scene (and per CEM round).")
    ] = 100,
    cem_iterations: Annotated[
        int, _opt("--cem-iterations", "CEM refits after the first round.")
    ] = 3,
    samples: Annotated[int, _opt("--samples", "Monte-Carlo samples per robustness.")] = 64,
    out: Annotated[Path | None, _out("runs/grasp/plan")] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Plan grasps on new scenes with random grasps, antipodal candidates ranked by the GQ-CNN,
    the cross-entropy method and the analytic oracle; prints and writes (results.md,
    results.json) the mean true robustness of each planner's grasp; plans.png shows them."""
    from striate.checks import integer
    from striate.errors import InputError
    from striate.grasp.run import plan_job, results_table

    integer("grasp plan", "--scenes", scenes, low=1, error=InputError)
    integer("grasp plan", "--candidates", candidates, low=1, error=InputError)
    integer("grasp plan", "--cem-iterations", cem_iterations, low=0, error=InputError)
    integer("grasp plan", "--samples", samples, low=1, error=InputError)
    out = out or Path("runs/grasp/plan")
    results = plan_job(
        model, out, scenes=scenes, seed=seed, candidates=candidates,
        cem_iterations=cem_iterations, samples=samples, overwrite=overwrite,
    )  # fmt: skip
    console.print(results_table(results), markup=False, highlight=False)
    console.print(f"plans: {escape(str(out))}")
