"""`striate caption train|eval|predict`: image captioning with soft attention (Show, Attend and
Tell) on captioned scenes of coloured shapes, trained through the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, OVERWRITE, RESUME
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Image captioning with attention: train on captioned scenes, evaluate (BLEU), caption "
    "images.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="RUN", help="Run folder made by striate caption train.")
BEAM = typer.Option("--beam", help="Beam width; 1 decodes greedily.")
LENGTH_NORM = typer.Option(
    "--length-norm",
    help="Beam search ranks finished captions by log p / length^ALPHA (0: no normalisation).",
)


def _line(metrics: dict[str, float]) -> str:
    parts = [f"BLEU-{n} {metrics[f'bleu{n}']:.4f}" for n in range(1, 5) if f"bleu{n}" in metrics]
    if "loss" in metrics:
        parts.append(f"loss {metrics['loss']:.4f}")
    if "acc" in metrics:
        parts.append(f"token accuracy {metrics['acc']:.4f}")
    return ", ".join(parts)


@app.command()
def train(
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training scenes.")] = 5,
    train_size: Annotated[int, typer.Option("--train-size", help="Training scenes.")] = 6000,
    val_size: Annotated[
        int, typer.Option("--val-size", help="Validation scenes (they pick the best epoch).")
    ] = 500,
    test_size: Annotated[int, typer.Option("--test-size", help="Test scenes.")] = 1000,
    hold_out: Annotated[
        list[str] | None,
        typer.Option(
            "--hold-out",
            show_default=False,
            help="A 'COLOUR SHAPE' pair (e.g. 'red triangle') never drawn in the training "
            "scenes; its test scenes are scored apart. Repeat for more [default: none].",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenes per step.")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 3e-3,
    opt: Annotated[str, typer.Option("--opt", help="Optimiser.")] = "adam",
    schedule: Annotated[str, typer.Option("--schedule", help="Learning-rate schedule.")] = "cosine",
    hidden: Annotated[int, typer.Option("--hidden", help="LSTM hidden units.")] = 256,
    features: Annotated[
        int, typer.Option("--features", help="Numbers per location of the encoder (D).")
    ] = 128,
    regularizer: Annotated[
        float,
        typer.Option(
            "--regularizer",
            help="λ of the doubly stochastic attention penalty λ Σ_i (1 − Σ_t α_ti)² (Xu et "
            "al. use 1; here it spreads the attention over the background).",
        ),
    ] = 0.0,
    beam: Annotated[int, BEAM] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scenes, weights and order.")] = 0,
    device: Annotated[str, DEVICE] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Run folder [default: runs/caption/scenes, or -2, -3, ... when taken]; one "
            "that already holds results needs --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    resume: Annotated[Path | None, RESUME] = None,
) -> None:
    """Train a captioner; the run folder gets the model, BLEU (greedy and beam), the attention
    maps, sample captions and a report. Ctrl-C keeps the last checkpoint (--resume RUN)."""
    from striate.outputs import default_folder
    from striate.sequence.captioning.run import train_captioner

    if resume is not None:
        result = train_captioner(out=resume, resume=True)
    else:
        out = out or default_folder(Path("runs/caption"), "scenes")
        result = train_captioner(
            out=out,
            overwrite=overwrite,
            epochs=epochs,
            train_size=train_size,
            val_size=val_size,
            test_size=test_size,
            held_out=list(hold_out or []),
            batch_size=batch_size,
            lr=lr,
            opt=opt,
            schedule=schedule,
            hidden=hidden,
            features=features,
            regularizer=regularizer,
            beam=beam,
            seed=seed,
            device=device,
        )
    run = result.out
    if result.trainer.interrupted:
        console.print(
            f"interrupted; continue with: striate caption train --resume {escape(str(run))}"
        )
        return
    console.print(f"test (greedy): {_line(result.test)}")
    beam = json.loads((run / "eval.json").read_text())["beam"]["beam"]
    console.print(f"test (beam {beam}): {_line(result.test_beam)}")
    if result.held_out:
        n = result.held_out["images"]
        console.print(
            f"held-out pairs, {n} test scenes (greedy): {_line(result.held_out['greedy'])}"
        )
    console.print(f"model: {escape(str(run / 'model'))}")
    console.print(f"report: {escape(str(run / 'report.html'))}")


@app.command("eval")
def evaluate(
    run: Annotated[Path, RUN],
    beam: Annotated[int, BEAM] = 1,
    length_norm: Annotated[float, LENGTH_NORM] = 0.0,
    held_out: Annotated[
        bool,
        typer.Option(
            "--held-out", help="Score only the test scenes showing a pair held out of training."
        ),
    ] = False,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """BLEU-1…4, cross-entropy and token accuracy of a trained run on its test scenes."""
    from striate.sequence.captioning.run import evaluate_captioner

    metrics = evaluate_captioner(
        run, beam=beam, length_norm=length_norm, device=device, progress=False, held_out=held_out
    )
    how = "greedy" if beam == 1 else f"beam {beam}"
    which = "held-out pairs" if held_out else "test"
    console.print(f"{which} ({how}): {_line(metrics)}")


@app.command()
def predict(
    run: Annotated[Path, RUN],
    images: Annotated[
        list[Path], typer.Argument(metavar="IMAGE...", help="Image files to caption.")
    ],
    beam: Annotated[int, BEAM] = 1,
    length_norm: Annotated[float, LENGTH_NORM] = 0.0,
    attention: Annotated[
        Path | None,
        typer.Option(
            "--attention",
            show_default=False,
            help="Write the per-word attention maps to this PNG (with several images: "
            "PNG-STEM_IMAGE-STEM.png each).",
        ),
    ] = None,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Caption image files with a trained run (resized to the scenes' size); prints one line
    per image."""
    from striate._atomic import save_figure
    from striate.cli.inputs import read_images
    from striate.sequence.captioning.figures import plot_attention
    from striate.sequence.captioning.run import as_uint8_images, load_captioner, predict_caption

    captioner = load_captioner(run, device)
    tensors = as_uint8_images(read_images(images))
    for path, x in zip(images, tensors, strict=True):
        [(text, decoded)] = predict_caption(captioner, x, beam=beam, length_norm=length_norm)
        console.print(f"{escape(path.name)}: {escape(text)}")
        if attention is not None:
            dest = attention
            if len(images) > 1:
                dest = attention.with_name(f"{attention.stem}_{path.stem}{attention.suffix}")
            s = captioner.image_size
            shown = x if x.shape[-2:] == (s, s) else _resized(x, s)
            fig = plot_attention(shown[0], captioner.words(decoded, 0), decoded.alphas[0].cpu())
            save_figure(fig, dest)
            console.print(f"  attention: {escape(str(dest))}")


def _resized(x, size: int):
    import torch.nn.functional as F

    y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
    return y.round().clamp(0, 255).byte()
