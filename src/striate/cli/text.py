"""`striate text train|sample|eval`: character and word language models (RNN, LSTM, GRU or a
causal transformer) on tiny-shakespeare, the King James Bible or any text file; sampling from a
prompt; perplexity, with the neural cache on request."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, MODEL_OPTION, OVERWRITE, RESUME
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Language models: train one on a text, sample from it, measure its perplexity.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="RUN", help="Run folder made by striate text train.")


def _opt(flag: str, help: str) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help)


def _unit(level: str) -> str:
    return "character" if level == "char" else "word"


def _line(metrics: dict[str, float], level: str) -> str:
    return (
        f"loss {metrics['loss']:.4f}, perplexity {metrics['perplexity']:.3f}, "
        f"bits per {_unit(level)} {metrics['bits_per_token']:.4f}"
    )


@app.command()
def train(
    corpus: Annotated[
        str,
        _opt("--corpus", "tinyshakespeare, kjv (the King James Bible) or a .txt/.gz file."),
    ] = "tinyshakespeare",
    root: Annotated[
        str | None,
        typer.Option(
            "--root",
            show_default=False,
            help="Folder holding the named corpora [default: $STRIATE_SHARED_DATA/text or "
            "../shared/data/text].",
        ),
    ] = None,
    level: Annotated[str, _opt("--level", "char or word.")] = "char",
    model: Annotated[str, _opt("--model", "lstm, gru, rnn or transformer.")] = "lstm",
    embed: Annotated[int, _opt("--embed", "Token embedding size.")] = 128,
    hidden: Annotated[int, _opt("--hidden", "Recurrent models: the state's size.")] = 256,
    layers: Annotated[
        int | None,
        typer.Option(
            "--layers",
            show_default=False,
            help="Layers [default: 4 for the transformer, 2 for recurrent models].",
        ),
    ] = None,
    heads: Annotated[int, _opt("--heads", "The transformer's attention heads.")] = 4,
    dropout: Annotated[float, _opt("--dropout", "Dropout probability.")] = 0.0,
    model_option: Annotated[list[str] | None, MODEL_OPTION] = None,
    length: Annotated[
        int,
        _opt(
            "--length",
            "Tokens per chunk: the BPTT length of a recurrent model, the transformer's context.",
        ),
    ] = 64,  # fmt: skip
    batch_size: Annotated[int, _opt("--batch-size", "Parallel streams per step.")] = 12,
    steps: Annotated[int, _opt("--steps", "Optimiser steps (unless --epochs).")] = 2000,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs", show_default=False, help="Passes over the text, instead of --steps."
        ),
    ] = None,
    opt: Annotated[str, _opt("--opt", "Optimiser.")] = "adamw",
    lr: Annotated[float, _opt("--lr", "Peak learning rate.")] = 1e-3,
    beta2: Annotated[float, _opt("--beta2", "Adam's beta2.")] = 0.99,
    weight_decay: Annotated[
        float, _opt("--weight-decay", "Weight decay of matrices and embeddings.")
    ] = 0.1,
    schedule: Annotated[str, _opt("--schedule", "Learning-rate schedule.")] = "cosine",
    warmup: Annotated[int, _opt("--warmup", "Steps of linear warm-up.")] = 100,
    min_lr: Annotated[float, _opt("--min-lr", "Where the cosine schedule ends.")] = 1e-4,
    clip: Annotated[float, _opt("--clip", "Largest gradient norm; 0 turns clipping off.")] = 1.0,
    max_vocab: Annotated[
        int | None,
        typer.Option(
            "--max-vocab",
            show_default=False,
            help="Words: the most frequent training words kept, the rest <unk> [default: all; "
            "kjv 10,000].",
        ),
    ] = None,
    eval_batches: Annotated[
        int | None,
        typer.Option(
            "--eval-batches",
            show_default=False,
            help="Validation chunks per epoch while training [default: all].",
        ),
    ] = None,
    seed: Annotated[int, _opt("--seed", "Seed of the weights, order and samples.")] = 0,
    device: Annotated[str, DEVICE] = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            show_default=False,
            help="Run folder [default: runs/text/CORPUS-MODEL, or -2, -3, ... when taken]; one "
            "that already holds results needs --overwrite.",
        ),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    resume: Annotated[Path | None, RESUME] = None,
) -> None:
    """Train a language model; the run folder gets the model, metrics, samples and a report.
    The defaults are nanoGPT's CPU configuration for tiny-shakespeare. Ctrl-C keeps the last
    checkpoint (--resume RUN continues it)."""
    from striate.cli.models import parse_options
    from striate.outputs import default_folder
    from striate.sequence.run import train_language_model

    if resume is not None:
        result = train_language_model(out=resume, resume=True)
    else:
        out = out or default_folder(Path("runs/text"), f"{Path(corpus).stem}-{model}")
        length_of = {"steps": steps, "epochs": None} if epochs is None else {"epochs": epochs}
        result = train_language_model(
            corpus,
            out=out,
            overwrite=overwrite,
            root=root,
            level=level,
            model=model,
            embed=embed,
            hidden=hidden,
            layers=layers,
            heads=heads,
            dropout=dropout,
            model_options=parse_options(model_option or []),
            length=length,
            batch_size=batch_size,
            **length_of,
            opt=opt,
            lr=lr,
            beta2=beta2,
            weight_decay=weight_decay,
            schedule=schedule,
            warmup=warmup,
            min_lr=min_lr,
            clip=clip or None,
            max_vocab=max_vocab,
            eval_batches=eval_batches,
            seed=seed,
            device=device,
        )
    run = result.out
    if result.trainer.interrupted:
        console.print(f"interrupted; continue with: striate text train --resume {escape(str(run))}")
        return
    level_of_run = result.vocab.level
    console.print(f"val: {_line(result.val, level_of_run)}")
    console.print(f"test: {_line(result.test, level_of_run)}")
    for name in ("model", "samples.txt", "report.html"):
        console.print(f"{name.split('.')[0]}: {escape(str(run / name))}")


@app.command()
def sample(
    run: Annotated[Path, RUN],
    prompt: Annotated[
        str,
        typer.Option(
            "--prompt",
            show_default=False,
            help="Text to continue [default: none: a new line of characters, or after <eos>].",
        ),
    ] = "",
    length: Annotated[int, _opt("--length", "Tokens to generate.")] = 500,
    temperature: Annotated[
        float, _opt("--temperature", "Softmax temperature; 0 takes the likeliest token.")
    ] = 0.8,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", show_default=False, help="Draw among the k likeliest [default: all]."
        ),
    ] = None,
    seed: Annotated[int, _opt("--seed", "Seed of the draws.")] = 0,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Continue a prompt with a trained language model; prints the prompt and the new text."""
    from striate.sequence.run import load_language_model

    lm = load_language_model(run, device)
    text = lm.sample(prompt, length, temperature=temperature, top_k=top_k, seed=seed)
    typer.echo(text)


@app.command("eval")
def evaluate(
    run: Annotated[Path, RUN],
    split: Annotated[str, _opt("--split", "val or test.")] = "test",
    cache: Annotated[
        bool,
        typer.Option(
            "--cache",
            help="Add the neural cache (Grave et al. 2017): theta, lambda and the window chosen "
            "on validation, no retraining.",
        ),
    ] = False,
    device: Annotated[str, DEVICE] = "auto",
) -> None:
    """Loss, perplexity and bits per token of a trained run on a split of its corpus."""
    from striate.sequence.run import evaluate_language_model, saved_config

    metrics = evaluate_language_model(run, split, cache=cache, device=device)
    unit = _unit(saved_config(run).level)
    header = f"{'split':<6} {'loss':>8} {'perplexity':>11} {f'bits per {unit}':>19}"
    console.print(header)
    console.print(
        f"{split:<6} {metrics['loss']:>8.4f} {metrics['perplexity']:>11.3f} "
        f"{metrics['bits_per_token']:>19.4f}"
    )
    if cache:
        console.print(
            f"neural cache: theta {metrics['cache_theta']:g}, lambda {metrics['cache_lambda']:g}, "
            f"window {metrics['cache_window']} (chosen on val: perplexity "
            f"{metrics['cache_val_perplexity']:.3f})"
        )
        console.print(f"{'':<6} {'without cache':>14} {'with cache':>11}")
        console.print(
            f"{split:<6} {metrics['plain_perplexity']:>14.3f} {metrics['cache_perplexity']:>11.3f}"
        )
