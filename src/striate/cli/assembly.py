"""`striate assembly generate|train|evaluate`: Form2Fit at small scale (Zakka et al. 2019):
kit assembly learned from time-reversed disassembly in a 2-D top-down simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, OVERWRITE
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Kit assembly from disassembly (Form2Fit): make data by disassembling kits, train the "
    "suction, place and matching networks, measure assembly success.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

SEED = typer.Option("--seed", help="Seed of every random choice.")


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the data and a picture.")],
    kits: Annotated[int, typer.Option("--kits", help="Training kits (random shapes).")] = 8,
    episodes: Annotated[
        int, typer.Option("--episodes", help="Disassemblies of each kit, each at a new pose.")
    ] = 12,
    pieces: Annotated[int, typer.Option("--pieces", help="Pieces per kit (1 to 4).")] = 3,
    size: Annotated[
        int, typer.Option("--size", help="Side of each half of the heightmap (pixels).")
    ] = 48,
    rotations: Annotated[int, typer.Option("--rotations", help="Discretised turns.")] = 20,
    seed: Annotated[int, SEED] = 0,
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Disassemble random kits by trial-and-error suction; save the reversed (assembly) steps as
    suction, place and matching training data, and disassembly.png."""
    from striate.assembly.run import generate_data

    info = generate_data(
        out,
        kits=kits,
        episodes=episodes,
        pieces=pieces,
        size=size,
        rotations=rotations,
        seed=seed,
        overwrite=overwrite,
    )
    console.print(
        f"{info['episodes']} episodes, {info['assembly_steps']} assembly steps, suction "
        f"success {info['suction_success_rate']:.1%} of {info['suction_trials']} trials"
    )
    console.print(f"data: {escape(str(out))}")


@app.command()
def train(
    data: Annotated[Path, typer.Argument(metavar="DATA", help="Folder from assembly generate.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder for the networks.")],
    steps: Annotated[
        int, typer.Option("--steps", help="Optimiser steps of the suction and place networks.")
    ] = 300,
    matching_steps: Annotated[
        int | None,
        typer.Option(
            "--matching-steps",
            show_default=False,
            help="Steps of the matching network [default: --steps].",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Heightmaps per step.")] = 16,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (cosine decay).")] = 2e-3,
    width: Annotated[int, typer.Option("--width", help="Channels of every network layer.")] = 32,
    dim: Annotated[int, typer.Option("--dim", help="Descriptor dimensions.")] = 16,
    margin: Annotated[float, typer.Option("--margin", help="Contrastive hinge margin.")] = 1.0,
    seed: Annotated[int, SEED] = 0,
    device: Annotated[str, DEVICE] = "auto",
    overwrite: Annotated[bool, OVERWRITE] = False,
) -> None:
    """Train the suction, place and matching networks through the engine's Trainer."""
    from striate.assembly.run import train_networks

    result = train_networks(
        data,
        out=out,
        steps=steps,
        matching_steps=matching_steps,
        batch_size=batch_size,
        lr=lr,
        width=width,
        dim=dim,
        margin=margin,
        seed=seed,
        device=device,
        overwrite=overwrite,
    )
    for name, last in result["final"].items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k.startswith("train_"))
        console.print(f"{name}: {shown}")
    console.print(f"networks: {escape(str(out))}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Run folder from assembly train.")],
    episodes: Annotated[
        int, typer.Option("--episodes", help="Assembly episodes per kit set and policy.")
    ] = 40,
    novel_kits: Annotated[
        int, typer.Option("--novel-kits", help="Kits of new shapes, never trained on.")
    ] = 8,
    candidates: Annotated[
        int,
        typer.Option("--candidates", help="Place-map pixels the matching network chooses among."),
    ] = 16,
    seed: Annotated[int, SEED] = 1,
    device: Annotated[str, DEVICE] = "auto",
    figures: Annotated[
        bool, typer.Option("--figures/--no-figures", help="heatmaps.png, descriptors_tsne.png.")
    ] = True,
) -> None:
    """Assembly success (pieces placed, kits completed) of the planner and of random baselines,
    on the trained kits at new poses and on novel kits; metrics.json and pictures in RUN."""
    from striate.assembly.run import evaluate_run, results_table

    metrics = evaluate_run(
        run,
        episodes=episodes,
        novel_kits=novel_kits,
        candidates=candidates,
        seed=seed,
        device=device,
        figures=figures,
    )
    console.print(results_table(metrics), markup=False, highlight=False)
    console.print(f"metrics: {escape(str(run / 'metrics.json'))}")
