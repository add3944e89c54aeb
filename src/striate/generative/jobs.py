"""The generative jobs behind `striate generate train|sample|eval`: a VAE, a DCGAN, a PixelCNN or an
autoencoder trained on a dataset's images through the Trainer, into a run folder.

    run = train_generative("vae", "mnist", out="runs/gen/vae", epochs=5)
    images = sample_generative("runs/gen/vae", 64, seed=0)             # N×C×H×W in [0, 1]
    scores = evaluate_generative("runs/gen/vae", k=100, classifier="runs/train/mnist")

The run folder holds config.json, metrics.csv, checkpoints/, report.html, samples.png (a grid),
samples/epoch-NNN.png (VAE and DCGAN: the same latents and seed after every epoch;
samples_over_training.png puts them side by side) and model/ (weights.safetensors + model.json:
"striate-model/1", the task, the architecture's name and arguments, the dataset and its
binarisation). The autoencoder is `train_autoencoder`'s run with model/ added.

Binarised MNIST / Fashion-MNIST (the Bernoulli VAE, PixelCNN with levels=2) is a *static*
binarisation drawn here: each pixel ~ Bernoulli(value/255) once, with the run's seed (the test
split with seed + 1). It is not Larochelle & Murray's fixed file, so NLLs sit near, not on, the
published benchmark's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from striate import __version__
from striate._atomic import save_figure, write_json
from striate.checks import one_of, positive_int
from striate.data import BatchLoader, ImageSet, load_dataset
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.evaluate.report import figure_html
from striate.generative.autoencoder import Autoencoder
from striate.generative.dcgan import SIZES, DCGANDiscriminator, DCGANGenerator
from striate.generative.gan import GAN, GANPair, generate
from striate.generative.grids import save_grid
from striate.generative.pixelcnn import PixelCNN, PixelModelling
from striate.generative.run import train_autoencoder
from striate.generative.vae import VAE, VariationalAutoencoding, elbo
from striate.models.io import FORMAT, read_model_info
from striate.outputs import check_folder, clear_folder
from striate.state_file import save_weights

MODELS = ("vae", "dcgan", "pixelcnn", "autoencoder")
TASK = {"vae": "vae", "dcgan": "gan", "pixelcnn": "pixelcnn", "autoencoder": "autoencoder"}
MADE_BY = "striate generate train"
_LATENT = {"vae": 20, "dcgan": 100, "autoencoder": 32}
_HIDDEN = {"vae": [400], "autoencoder": [256]}
_LR = {"vae": 1e-3, "dcgan": 2e-4, "pixelcnn": 1e-3, "autoencoder": 1e-3}
_GRID = {"vae": 64, "dcgan": 64, "pixelcnn": 16}  # samples.png (PixelCNN: a pass per pixel)


@dataclass
class GenerativeConfig:
    """The settings of `train_generative` (config.json); None means the model's default, which
    is resolved and saved. `size` (DCGAN) is checked against the dataset's images."""

    model: str = "vae"
    data: str = "mnist"
    root: str | None = None
    latent: int | None = None
    hidden: list[int] | None = None
    kind: str = "mlp"
    likelihood: str | None = None
    beta: float = 1.0
    width: int | None = None
    size: int | None = None
    generator_loss: str = "non_saturating"
    d_steps: int = 1
    levels: int | None = None
    blocks: int = 5
    binarize: bool | None = None
    epochs: int = 5
    batch_size: int = 128
    lr: float | None = None
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class GenerativeRun:
    out: Path | None
    model: nn.Module
    trainer: Trainer | None
    test: dict[str, float]


@dataclass
class LoadedGenerative:
    """A trained generative model (eval mode) with its model.json."""

    model: nn.Module
    name: str
    info: dict[str, Any]
    run: Path


def _resolve(config: GenerativeConfig, shape: tuple[int, int, int]) -> GenerativeConfig:
    """Fill the model-dependent defaults from the model and the images' shape."""
    m, grey = config.model, shape[0] == 1
    if config.latent is None and m in _LATENT:
        config.latent = _LATENT[m]
    if config.hidden is None and m in _HIDDEN:
        config.hidden = list(_HIDDEN[m])
    if config.lr is None:
        config.lr = _LR[m]
    if m == "vae" and config.likelihood is None:
        config.likelihood = "bernoulli" if grey else "gaussian"
    if config.width is None:  # PixelCNN splits its maps into colour groups: a multiple of 6
        config.width = 96 if m == "pixelcnn" and not grey else 64
    if m == "pixelcnn" and config.levels is None:
        config.levels = 2 if grey else 256
    if config.binarize is None:
        config.binarize = (m == "vae" and config.likelihood == "bernoulli") or (
            m == "pixelcnn" and config.levels == 2
        )
    return config


def binarize(images: ImageSet, seed: int) -> ImageSet:
    """A static binarisation: each pixel of value v is 255 with probability v/255, else 0, drawn
    once with `seed` (an integer r uniform on 0 … 254 per pixel; the pixel is on when r < v)."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 255, images.images.shape, generator=g, dtype=torch.uint8)
    bits = (r < images.images).to(torch.uint8) * 255
    return ImageSet(bits, images.labels, images.classes, images.source)


def _images(
    config: GenerativeConfig, split: str, size: int | None, images: ImageSet | None = None
) -> ImageSet:
    images = images if images is not None else load_dataset(config.data, split, config.root)
    if config.binarize:  # the whole split, so every subset of it sees the same bits
        images = binarize(images, config.seed + (split != "train"))
    if size is not None and size < len(images):
        images = images.sample(size, seed=config.seed)
    return images


def architecture(config: GenerativeConfig, shape: tuple[int, int, int]) -> dict[str, Any]:
    """model.json's architecture ({name, arguments}) for `config` and images of `shape`;
    a DataError when the images do not fit the architecture."""
    c, h, w = shape
    if config.model == "vae":
        args = {"in_shape": list(shape), "latent": config.latent, "hidden": config.hidden}
        args |= {"kind": config.kind, "likelihood": config.likelihood}
    elif config.model == "dcgan":
        size = config.size if config.size is not None else h
        if h != w or h != size or size not in SIZES:
            raise DataError(
                f"generate: {config.data} images are {c}×{h}×{w} but the DCGAN is built for "
                f"{size}×{size} (it takes square 28 or 32 px images); leave size unset or pick a "
                f"dataset of {size} px"
            )
        args = {"latent_dim": config.latent, "channels": c, "size": size, "width": config.width}
    elif config.model == "pixelcnn":
        args = {"channels": c, "levels": config.levels, "width": config.width}
        args["blocks"] = config.blocks
    else:
        args = {"in_shape": list(shape), "latent": config.latent, "hidden": config.hidden}
        args["kind"] = config.kind
    return {"name": config.model, "arguments": args}


def build(spec: dict[str, Any]) -> nn.Module:
    """The untrained network of an architecture spec (model.json's)."""
    name, args = spec["name"], dict(spec["arguments"])
    if name == "vae":
        return VAE(**args)
    if name == "dcgan":
        gen = DCGANGenerator(**args)
        args.pop("latent_dim")
        return GANPair(gen, DCGANDiscriminator(**args))
    if name == "pixelcnn":
        return PixelCNN(**args)
    if name == "autoencoder":
        return Autoencoder(**args)
    raise InputError(f"generate: unknown architecture {name!r}; one of {', '.join(MODELS)}")


def _task(config: GenerativeConfig) -> Any:
    if config.model == "vae":
        return VariationalAutoencoding(config.beta)
    if config.model == "dcgan":
        return GAN(config.generator_loss, config.d_steps, d_lr=config.lr)
    return PixelModelling()


def train_generative(
    model: str = "vae",
    data: str = "mnist",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> GenerativeRun:
    """Train `model` (vae, dcgan, pixelcnn or autoencoder) on `data`'s training images
    (settings: `GenerativeConfig`'s fields); with `out`, write the run folder (module docstring).
    `resume=True` continues the run stopped in `out`; a setting given then must match the run's.
    `callbacks` add features (`striate.engine.callbacks`)."""
    owner = "train_generative"
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError(f"{owner}: resume needs the run folder (out=...)")
        if _is_autoencoder_run(out):
            return _train_autoencoder(out, None, resume=True, overwrite=False, progress=progress)
        config = saved_settings(out, GenerativeConfig, MADE_BY)
        for name, value in known_settings(owner, GenerativeConfig, settings).items():
            if value is not None and value != getattr(config, name):
                raise ConfigError(
                    f"{owner}: {name} {value!r} does not match the saved run's "
                    f"{getattr(config, name)!r}; drop it to resume, or start a new run"
                )
    else:
        model = one_of(owner, "model", model, MODELS)
        config = GenerativeConfig(
            model=model, data=data, **known_settings(owner, GenerativeConfig, settings, ("model",))
        )
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
        if model == "autoencoder":
            return _train_autoencoder(out, config, resume=False, overwrite=overwrite,
                                      progress=progress)  # fmt: skip
    positive_int(owner, "epochs", config.epochs)
    positive_int(owner, "batch_size", config.batch_size)
    raw = load_dataset(config.data, "train", config.root)
    config = _resolve(config, raw.shape)
    train_set = _images(config, "train", config.train_size, raw)
    test_set = _images(config, "test", config.test_size)
    spec = architecture(config, train_set.shape)
    torch.manual_seed(config.seed)
    net = build(spec)
    count, side = _GRID[config.model], train_set.shape[1]
    snapshots = None  # PixelCNN: none, as drawing takes a pass per pixel (3,072 on CIFAR-10)
    if out is not None and config.model != "pixelcnn":
        snapshots = SampleSnapshots(config.model, out / "samples", count, config.seed, side)
        callbacks = [*callbacks, snapshots]
    trainer = Trainer(
        epochs=config.epochs,
        task=_task(config),
        opt="adam",
        lr=config.lr,
        momentum=0.5 if config.model == "dcgan" else None,
        precision=config.precision,
        device=config.device,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=callbacks,
    )
    scale = (lambda x: x * 2 - 1) if config.model == "dcgan" else None
    # a DCGAN step cuts its batch into d_steps real minibatches of batch_size (gan.GAN)
    per_step = config.batch_size * (config.d_steps if config.model == "dcgan" else 1)
    train = BatchLoader(train_set, per_step, normalize=scale, device=trainer.device,
                        seed=config.seed, drop_last=config.model == "dcgan")  # fmt: skip
    test = BatchLoader(test_set, 256, shuffle=False, normalize=scale, device=trainer.device)
    if out is not None and not resume:
        trainer.check(net, train)
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {"train_images": len(train_set), "test_images": len(test_set)}
        resolved = resolved_facts(trainer, net, **sizes)
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    trainer.fit(net, train, test, resume=out if resume else None)
    if trainer.interrupted:
        return GenerativeRun(out, net, trainer, {})
    metrics = trainer.evaluate(net, test)
    if out is not None:
        _save_model(out / "model", net, spec, config, train_set.shape, metrics)
        images = _draw(config.model, net.eval(), count, config.seed, side)
        fig = save_grid(images, out / "samples.png")
        sections = [("Samples", figure_html(fig, "samples"))]
        over = snapshots.figure() if snapshots is not None else None
        if over is not None:
            save_figure(over, out / "samples_over_training.png")
            sections.append(("Samples over training", figure_html(over, "samples over training")))
        write_task_report(
            out,
            trainer,
            title=f"striate {config.model} on {config.data}",
            config=asdict(config),
            final={f"test_{k}": v for k, v in metrics.items()},
            sections=sections,
        )
    return GenerativeRun(out, net, trainer, metrics)


class SampleSnapshots(Callback):
    """After every epoch, `count` samples from the same latents (the same `seed`) into
    `folder`/epoch-NNN.png: how the samples change over training (Radford et al. 2016, Fig. 2-3)."""

    main_only = True
    shown = 8  # epochs in `figure`, evenly spaced

    def __init__(self, name: str, folder: Path, count: int, seed: int, side: int) -> None:
        self.name, self.folder, self.count, self.seed, self.side = name, folder, count, seed, side

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        net = trainer.eval_model
        was = net.training
        try:
            images = _draw(self.name, net.eval(), self.count, self.seed, self.side)
        finally:
            net.train(was)
        save_grid(images, self.folder / f"epoch-{trainer.epoch:03d}.png")

    def figure(self) -> Figure | None:
        """The saved grids side by side (at most `shown` epochs, first and last included)."""
        from matplotlib.image import imread

        paths = sorted(self.folder.glob("epoch-*.png"))
        if not paths:
            return None
        count = min(self.shown, len(paths))
        picks = sorted({round(i * (len(paths) - 1) / max(count - 1, 1)) for i in range(count)})
        fig = Figure(figsize=(2.2 * len(picks), 2.5), layout="constrained")
        for ax, i in zip(fig.subplots(1, len(picks), squeeze=False)[0], picks, strict=True):
            ax.imshow(imread(paths[i]))
            ax.set_title(f"epoch {int(paths[i].stem.split('-')[1])}", fontsize=9)
            ax.set_axis_off()
        return fig


def _is_autoencoder_run(out: Path) -> bool:
    try:
        return "model" not in json.loads((out / "config.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return False  # saved_settings says what is wrong


def _train_autoencoder(
    out: Path | None, config: GenerativeConfig | None, *, resume: bool, overwrite: bool,
    progress: bool,
) -> GenerativeRun:  # fmt: skip
    """`train_autoencoder` with this job's settings, then model/ (task "autoencoder")."""
    if resume:
        result = train_autoencoder(out=out, resume=True, progress=progress)
    else:
        assert config is not None
        config = _resolve(config, (1, 1, 1))
        if config.binarize:
            raise ConfigError(
                "train_generative: the autoencoder trains on grey levels; drop binarize"
            )
        shared = ("root", "kind", "latent", "hidden", "epochs", "batch_size", "lr",
                  "train_size", "test_size", "seed", "precision", "device")  # fmt: skip
        result = train_autoencoder(
            config.data, out=out, overwrite=overwrite, progress=progress,
            **{k: getattr(config, k) for k in shared},
        )  # fmt: skip
    model = result.model
    if out is not None and not result.trainer.interrupted:
        saved = json.loads((out / "config.json").read_text())["config"]
        args = {"in_shape": list(model.in_shape), "latent": saved["latent"]}
        args |= {"hidden": list(saved["hidden"]), "kind": saved["kind"]}
        info = {"data": saved["data"], "root": saved["root"], "binarize": False}
        spec = {"name": "autoencoder", "arguments": args}
        _write_model(out / "model", model, spec, info, result.test)
    return GenerativeRun(out, model, result.trainer, result.test)


def _save_model(
    folder: Path, net: nn.Module, spec: dict[str, Any], config: GenerativeConfig,
    shape: tuple[int, int, int], metrics: dict[str, float],
) -> None:  # fmt: skip
    info = {"data": config.data, "root": config.root, "binarize": config.binarize,
            "binarize_seed": config.seed, "image_shape": list(shape)}  # fmt: skip
    _write_model(folder, net, spec, info, metrics)


def _write_model(
    folder: Path, net: nn.Module, spec: dict[str, Any], info: dict[str, Any],
    metrics: dict[str, float],
) -> None:  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.safetensors", net.state_dict())
    task = TASK[spec["name"]]
    write_json(
        folder / "model.json",
        {"format": FORMAT, "task": task, "striate_version": __version__, "architecture": spec,
         **info, "metrics": {f"test_{k}": v for k, v in metrics.items()}},
    )  # fmt: skip


def load_generative(run: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedGenerative:
    """The trained model of a run made by `train_generative`, in eval mode on `device`; an
    InputError when the folder is missing, not a generative run, or its weights do not fit."""
    run = Path(run)
    if not run.is_dir():
        raise InputError(f"no run folder at {run}: give a folder made by {MADE_BY}")
    try:
        folder, info = read_model_info(run, made_by=MADE_BY)
    except StriateError as e:
        raise InputError(str(e)) from e
    spec = info.get("architecture")
    if info.get("task") not in TASK.values() or not isinstance(spec, dict):
        theirs = info.get("task") or "image classification"
        raise InputError(
            f"{run} is not a generative run (its model's task is {theirs}); give a run folder "
            f"made by {MADE_BY}"
        )
    try:
        net = build(spec)
        weights = load_file(str(folder / "weights.safetensors"))
    except (OSError, KeyError, TypeError, SafetensorError, StriateError) as e:
        raise InputError(f"{folder} does not hold a readable generative model ({e})") from e
    _check_latent(folder, net, weights, spec)
    try:
        net.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise InputError(
            f"{folder}: the weights do not fit model.json's architecture ({first}); train the "
            "run again"
        ) from e
    return LoadedGenerative(net.to(device).eval(), spec["name"], info, run)


def _check_latent(folder: Path, net: nn.Module, weights: dict[str, torch.Tensor],
                  spec: dict[str, Any]) -> None:  # fmt: skip
    """One clear line when model.json's latent size is not the saved weights'."""
    own = net.state_dict()
    for name in ("decoder.0.weight", "generator.net.0.weight"):  # the first layer reading z
        if name in weights and name in own and weights[name].shape != own[name].shape:
            axis = 1 if name.startswith("decoder") else 0
            raise InputError(
                f"{folder}: the saved weights take a latent of {weights[name].shape[axis]} "
                f"numbers but model.json asks for {own[name].shape[axis]}; use the latent size "
                "the model was trained with"
            )


def _draw(name: str, net: nn.Module, count: int, seed: int, side: int = 28) -> torch.Tensor:
    """`count` samples in [0, 1] (N×C×H×W, CPU float); `side`: PixelCNN's image size."""
    device = next(net.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        if name == "vae":
            return net.sample(count, generator=g).float().cpu()
        if name == "dcgan":
            z = torch.randn(count, net.latent_dim, generator=g, device=device)
            return ((generate(net.generator, z).float() + 1) / 2).clamp(0, 1).cpu()
        if name == "pixelcnn":
            return net.sample(count, (side, side), generator=g).cpu()
    raise InputError(
        "generate sample: an autoencoder has no prior to sample from; train a vae, dcgan or "
        "pixelcnn to draw images"
    )


def sample_generative(
    run: str | os.PathLike, count: int = 64, seed: int = 0, *, out: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:  # fmt: skip
    """`count` images from the run's model (N×C×H×W in [0, 1]); with `out`, also a PNG grid."""
    check_count(count)
    loaded = load_generative(run, device)
    images = _draw(loaded.name, loaded.model, count, seed, _side(loaded))
    if out is not None:
        save_grid(images, Path(out))
    return images


def check_count(count: object) -> int:
    """`count` when it is a whole number of at least 1; else one line saying so."""
    hint = "ask for 1 or more images"
    return positive_int("generate sample", "count", count, hint=hint, error=InputError)


def _side(loaded: LoadedGenerative) -> int:
    """The image size the model was trained on (model.json's image_shape; 28 if absent)."""
    shape = loaded.info.get("image_shape")
    return int(shape[1]) if shape else 28


def _test_images(loaded: LoadedGenerative, size: int | None, seed: int) -> torch.Tensor:
    """The run's test images in [0, 1], binarised as in training."""
    info = loaded.info
    images = load_dataset(info["data"], "test", info.get("root"))
    if info.get("binarize"):
        images = binarize(images, int(info.get("binarize_seed", 0)) + 1)
    if size is not None and size < len(images):
        images = images.sample(size, seed=seed)
    return images.images.float() / 255


@torch.no_grad()
def evaluate_generative(
    run: str | os.PathLike,
    *,
    k: int = 100,
    images: int | None = 1000,
    classifier: str | os.PathLike | None = None,
    samples: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict[str, float]:
    """Likelihood on `images` test images (VAE: mean ELBO and importance-weighted log p(x) with
    `k` samples, nats; PixelCNN: NLL in nats and bits/dim; autoencoder: BCE nats per image and
    PSNR) and, with `classifier` (a run of `striate train` on the same dataset), the classifier
    Fréchet distance, classifier score and precision/recall of `samples` draws against as many
    test images. A GAN has no likelihood, so it needs `classifier`."""
    from striate.generative.likelihood import importance_weighted_log_likelihood
    from striate.generative.reconstruction import psnr

    k = positive_int("generate eval", "k", k, error=InputError)
    loaded = load_generative(run, device)
    if loaded.name == "dcgan" and classifier is None:
        raise InputError(
            "generate eval: a GAN has no likelihood to score; give --classifier RUN (a striate "
            "train run on the same dataset) for the sample metrics"
        )
    net, name = loaded.model, loaded.name
    x = _test_images(loaded, images, seed).to(device)
    scores: dict[str, float] = {"images": float(len(x))}
    g = torch.Generator(device=x.device).manual_seed(seed)
    if name == "vae":
        scores["elbo"] = float(elbo(net, x, generator=g).elbo.mean())
        iw = importance_weighted_log_likelihood(net, x, k, generator=g, progress=progress)
        scores[f"log_px_k{k}"] = float(iw.mean())
    elif name == "pixelcnn":
        nll = torch.cat([net.nll(x[s : s + 256]) for s in range(0, len(x), 256)])
        scores["nll"] = float(nll.mean())
        scores["bits_per_dim"] = float(nll.mean() / (x[0].numel() * torch.log(torch.tensor(2.0))))
    elif name == "autoencoder":
        logits = net(x)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        scores["bce"] = float(bce.flatten(1).sum(1).mean())
        scores["psnr"] = float(psnr(logits.sigmoid(), x).mean())
    if classifier is not None:
        scores |= sample_metrics(loaded, classifier, x, samples, seed, device)
    return scores


def sample_metrics(
    loaded: LoadedGenerative, classifier: str | os.PathLike, real: torch.Tensor, samples: int,
    seed: int, device: str | torch.device = "cpu",
) -> dict[str, float]:  # fmt: skip
    """Classifier Fréchet distance, classifier score and precision/recall (k = 3) of `samples`
    draws against `real` images, in the features of the classifier trained on the same data."""
    from striate.generative.sample_quality import (
        classifier_features,
        classifier_frechet_distance,
        classifier_score,
        precision_recall,
    )
    from striate.models.io import load_model

    samples = positive_int("generate eval", "samples", samples, error=InputError)
    try:
        clf = load_model(classifier, device)
    except StriateError as e:
        raise InputError(f"generate eval: --classifier {classifier}: {e}") from e
    if tuple(clf.in_shape) != tuple(real.shape[1:]):
        raise InputError(
            f"generate eval: the classifier takes {'×'.join(map(str, clf.in_shape))} images but "
            f"the model's are {'×'.join(map(str, real.shape[1:]))}; give a classifier trained on "
            f"{loaded.info.get('data')}"
        )
    fake = _draw(loaded.name, loaded.model, samples, seed, _side(loaded))
    fake, real = fake.to(device), real.to(device)
    score = classifier_score(clf, fake)
    pr = precision_recall(classifier_features(clf, real), classifier_features(clf, fake))
    return {
        "classifier_frechet_distance": classifier_frechet_distance(clf, real, fake),
        "classifier_score": score.score,
        "precision": pr.precision,
        "recall": pr.recall,
    }
