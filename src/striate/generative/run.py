"""Training an autoencoder end to end: data → Autoencoder → Trainer(task=Reconstruction) → a
run folder with metrics, checkpoints, the reconstructions and report.html.

    result = train_autoencoder("mnist", epochs=5, out="runs/ae")
    train_autoencoder("mnist", epochs=5, out="runs/ae", resume=True)   # after Ctrl-C

The same Trainer as classification trains it; only the task differs. Images stay in [0, 1] (no
normalisation): the reconstruction is compared with the pixels themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from striate._atomic import save_figure, write_json
from striate.checks import positive_int
from striate.data import BatchLoader, ImageSet, load_dataset
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError
from striate.evaluate.report import figure_html
from striate.generative.autoencoder import Autoencoder
from striate.generative.reconstruction import Reconstruction
from striate.outputs import check_folder, clear_folder


@dataclass
class AutoencoderConfig:
    """The settings of `train_autoencoder` (saved in config.json; a resumed run reads them)."""

    data: str = "mnist"
    root: str | None = None
    kind: str = "mlp"
    latent: int = 32
    hidden: list[int] = field(default_factory=lambda: [256])
    loss: str = "bce"
    epochs: int = 5
    batch_size: int = 128
    opt: str = "adam"
    lr: float = 1e-3
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class AutoencoderRun:
    out: Path | None
    model: Autoencoder
    trainer: Trainer
    test: dict[str, float]


def train_autoencoder(
    data: str = "mnist",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> AutoencoderRun:
    """Train an `Autoencoder` on a dataset's images (settings: `AutoencoderConfig`'s fields).

    With `out`, the run folder gets config.json, metrics.csv, steps.csv, checkpoints/,
    reconstructions.png and report.html; `resume=True` continues the run stopped there (Ctrl-C)
    with its saved settings, exactly as if it had not stopped. `callbacks` add features
    (`striate.engine.callbacks`)."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_autoencoder: resume needs the run folder (out=...)")
        config = saved_settings(out, AutoencoderConfig, "train_autoencoder")
    else:
        config = AutoencoderConfig(
            data=data, **known_settings("train_autoencoder", AutoencoderConfig, settings)
        )
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    positive_int("train_autoencoder", "epochs", config.epochs)
    positive_int("train_autoencoder", "batch_size", config.batch_size)
    train_set = _images(config, "train", config.train_size)
    test_set = _images(config, "test", config.test_size)
    torch.manual_seed(config.seed)
    model = Autoencoder(train_set.shape, config.latent, config.hidden, config.kind)
    trainer = Trainer(
        epochs=config.epochs,
        task=Reconstruction(config.loss),
        opt=config.opt,
        lr=config.lr,
        precision=config.precision,
        device=config.device,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=callbacks,
    )
    train = BatchLoader(train_set, config.batch_size, device=trainer.device, seed=config.seed)
    test = BatchLoader(test_set, 512, shuffle=False, device=trainer.device)
    if out is not None and not resume:
        trainer.check(model, train)  # a bad option fails before the folder is made
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {"train_images": len(train_set), "test_images": len(test_set)}
        resolved = resolved_facts(trainer, model, **sizes)
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    trainer.fit(model, train, test, resume=out if resume else None)
    if trainer.interrupted:
        return AutoencoderRun(out, model, trainer, {})
    metrics = trainer.evaluate(model, test)
    if out is not None:
        _write_outputs(out, config, trainer, model, test_set, metrics)
    return AutoencoderRun(out, model, trainer, metrics)


def _images(config: AutoencoderConfig, split: str, size: int | None) -> ImageSet:
    images = load_dataset(config.data, split, config.root)
    if size is not None and size < len(images):
        images = images.sample(size, seed=config.seed)
    return images


def plot_reconstructions(images: torch.Tensor, reconstructed: torch.Tensor) -> Figure:
    """Originals (top row) above their reconstructions (bottom row); images in [0, 1]."""
    n = len(images)
    fig = Figure(figsize=(1.2 * n, 2.6))
    axes = fig.subplots(2, n, squeeze=False)
    for row, batch in enumerate((images, reconstructed)):
        for i in range(n):
            img = batch[i].detach().cpu().float().clamp(0, 1).permute(1, 2, 0).numpy()
            ax = axes[row][i]
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_axis_off()
    axes[0][0].set_title("input", fontsize=8, loc="left")
    axes[1][0].set_title("reconstruction", fontsize=8, loc="left")
    fig.tight_layout()
    return fig


def _write_outputs(
    out: Path,
    config: AutoencoderConfig,
    trainer: Trainer,
    model: Autoencoder,
    test_set: ImageSet,
    metrics: dict[str, float],
) -> None:
    x = test_set.images[:10].float().div(255).to(trainer.device)
    fig = plot_reconstructions(x, trainer.predict(model, x))
    save_figure(fig, out / "reconstructions.png")
    write_task_report(
        out,
        trainer,
        title=f"striate autoencoder ({config.kind}, {config.latent} numbers) on {config.data}",
        config=asdict(config),
        final={f"test_{k}": v for k, v in metrics.items()},
        sections=[("Reconstructions of test images", figure_html(fig, "reconstructions"))],
    )
