"""`striate generate train|sample|eval`: a VAE, DCGAN, PixelCNN or autoencoder on MNIST,
Fashion-MNIST or CIFAR-10, its samples, and its likelihood and sample metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import DEVICE, OVERWRITE, RESUME
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Generative models: train a VAE, DCGAN, PixelCNN or autoencoder, draw samples, "
    "score likelihoods and samples.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="RUN", help="Run folder made by striate generate train.")
MODEL = typer.Argument(metavar="MODEL", help="vae, dcgan, pixelcnn or autoencoder.")


def _opt(flag: str, help: str, show_default: bool = True) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


def _line(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


@app.command()
def train(
    model: Annotated[str | None, MODEL] = None,
    data: Annotated[
        str, _opt("--data", "mnist, fashion-mnist or cifar10 (or a folder).")
    ] = "mnist",
    root: Annotated[
        str | None,
        _opt("--root", "Folder holding the dataset [default: the data cache].", False),
    ] = None,
    latent: Annotated[
        int | None,
        _opt("--latent", "Latent size [default: vae 20, dcgan 100, autoencoder 32].", False),
    ] = None,
    hidden: Annotated[
        list[int] | None,
        _opt(
            "--hidden", "Hidden widths, repeat for more [default: vae 400, autoencoder 256].", False
        ),
    ] = None,
    kind: Annotated[str, _opt("--kind", "vae/autoencoder layers: mlp or conv.")] = "mlp",
    likelihood: Annotated[
        str | None,
        _opt(
            "--likelihood",
            "vae decoder: bernoulli or gaussian [default: bernoulli for grey "
            "images (binarised), else gaussian].",
            False,
        ),
    ] = None,  # fmt: skip
    beta: Annotated[float, _opt("--beta", "vae: weight of the KL term.")] = 1.0,
    width: Annotated[
        int | None,
        _opt("--width", "dcgan / pixelcnn: feature maps [default: 64; pixelcnn colour 96].", False),
    ] = None,
    levels: Annotated[
        int | None,
        _opt("--levels", "pixelcnn: 2 (binarised) or 256 [default: 2 for grey images].", False),
    ] = None,
    blocks: Annotated[int, _opt("--blocks", "pixelcnn: residual blocks.")] = 5,
    generator_loss: Annotated[
        str, _opt("--generator-loss", "dcgan: non_saturating or minimax.")
    ] = "non_saturating",
    d_steps: Annotated[
        int, _opt("--d-steps", "dcgan: discriminator steps per G step, each on its own images.")
    ] = 1,
    epochs: Annotated[int, _opt("--epochs", "Passes over the training images.")] = 5,
    batch_size: Annotated[
        int, _opt("--batch-size", "Images per step (dcgan: per discriminator step).")
    ] = 128,
    lr: Annotated[
        float | None,
        _opt("--lr", "Adam's learning rate [default: dcgan 2e-4, else 1e-3].", False),
    ] = None,
    train_size: Annotated[
        int | None, _opt("--train-size", "Training images [default: all].", False)
    ] = None,
    test_size: Annotated[
        int | None, _opt("--test-size", "Test images [default: all].", False)
    ] = None,
    seed: Annotated[int, _opt("--seed", "Seed of weights, order and binarisation.")] = 0,
    precision: Annotated[str, _opt("--precision", "auto, fp32 or bf16.")] = "auto",
    device: Annotated[str, DEVICE] = "auto",
    out: Annotated[
        Path | None,
        _opt("--out", "Run folder [default: runs/generate/MODEL, or -2, -3, ...].", False),
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    resume: Annotated[Path | None, RESUME] = None,
) -> None:
    """Train a generative model; the run folder gets the model, metrics, samples.png and a
    report. Ctrl-C keeps the last checkpoint (--resume RUN continues it)."""
    from striate.errors import ConfigError
    from striate.generative.jobs import train_generative
    from striate.outputs import default_folder

    if resume is not None:
        result = train_generative(out=resume, resume=True, latent=latent)
    else:
        if model is None:
            raise ConfigError("give the MODEL to train: vae, dcgan, pixelcnn or autoencoder")
        out = out or default_folder(Path("runs/generate"), model)
        settings = dict(
            root=root, latent=latent, hidden=hidden, kind=kind, beta=beta, width=width,
            levels=levels, blocks=blocks, generator_loss=generator_loss, d_steps=d_steps,
            epochs=epochs, batch_size=batch_size, lr=lr, train_size=train_size,
            test_size=test_size, seed=seed, precision=precision, device=device,
        )  # fmt: skip
        if model == "vae":
            settings["likelihood"] = likelihood
        result = train_generative(model, data, out=out, overwrite=overwrite, **settings)
    run = result.out
    if result.trainer is not None and result.trainer.interrupted:
        console.print(
            f"interrupted; continue with: striate generate train --resume {escape(str(run))}"
        )
        return
    console.print(f"test: {_line(result.test)}")
    console.print(f"run: {escape(str(run))}")


@app.command()
def sample(
    run: Annotated[Path, RUN],
    count: Annotated[
        int,
        _opt(
            "--count",
            "Images to draw; interpolation: count // 10 rows of 10; manifold: a "
            "round(√count)-sided grid; traversal: unused (the first ≤ 10 latents, 9 steps each).",
        ),
    ] = 64,
    show: Annotated[
        str,
        _opt(
            "--show",
            "samples; interpolation or traversal (vae, dcgan): walks in the latent space; "
            "manifold (vae with --latent 2): decoder means over a grid of the latent plane.",
        ),
    ] = "samples",
    out: Annotated[
        Path | None, _opt("--out", "PNG grid to write [default: RUN/SHOW-SEED.png].", False)
    ] = None,
    seed: Annotated[int, _opt("--seed", "Seed of the draws.")] = 0,
    overwrite: Annotated[bool, _opt("--overwrite", "Replace an existing --out file.")] = False,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Draw images from a trained model, or walk its latent space, into a PNG grid."""
    from striate.errors import InputError
    from striate.generative.grids import save_grid
    from striate.generative.views import draw_view

    if out is not None and out.suffix.lower() != ".png":
        raise InputError(f"--out {out}: name a .png file")
    if out is not None and out.exists() and not overwrite:
        raise InputError(f"{out} exists; choose another --out or pass --overwrite")
    images, columns = draw_view(run, show, count, seed, device)
    out = out or run / f"{show}-{seed}.png"  # the same seed draws the same images again
    save_grid(images, out, columns)
    what = "samples" if show == "samples" else f"{show} images"
    console.print(f"{len(images)} {what}: {escape(str(out))}")


@app.command("eval")
def evaluate(
    run: Annotated[Path, RUN],
    k: Annotated[int, _opt("--k", "vae: importance samples per image for log p(x).")] = 100,
    images: Annotated[int, _opt("--images", "Test images scored.")] = 1000,
    classifier: Annotated[
        Path | None,
        _opt(
            "--classifier",
            "Run of striate train on the same dataset: adds the classifier "
            "Fréchet distance, classifier score and precision/recall of samples.",
            False,
        ),
    ] = None,  # fmt: skip
    samples: Annotated[int, _opt("--samples", "Samples drawn for the sample metrics.")] = 1000,
    seed: Annotated[int, _opt("--seed", "Seed of the draws.")] = 0,
    device: Annotated[str, DEVICE] = "cpu",
) -> None:
    """Score a trained model: likelihood (nats; bits/dim for PixelCNN) and, with --classifier,
    sample metrics in that classifier's feature space (not FID: another network)."""
    from striate.generative.jobs import evaluate_generative

    scores = evaluate_generative(
        run, k=k, images=images, classifier=classifier, samples=samples, seed=seed,
        device=device, progress=True,
    )  # fmt: skip
    for name, value in scores.items():
        console.print(f"{name:<28} {value:.4f}")
