"""Training a segmentation network end to end: scenes with instance masks → class maps → a network
of the registry → Trainer(task=Segmentation) → a run folder with the model, metrics and pictures.

    result = train_segmenter("runs/scenes", model="unet", epochs=5, out="runs/seg")
    train_segmenter(out="runs/seg", resume=True)                  # after Ctrl-C
    evaluate_segmenter("runs/seg")                                # mIoU on the test split
    predict_segmentation("runs/seg", images)                      # class maps

`data` is a folder in COCO's layout (annotations/instances_{train,test}.json beside train/ and
test/, as `striate detect scenes` writes the digit scenes) or "scenes" to draw the digit scenes
afresh from MNIST and CIFAR-10 (`striate.data.scenes`, seeded). The class maps are the instance
masks' classes (0 background, class c → c + 1). `val_size` images of the training split are held
out to choose the best epoch; the test split is scored once, at the end.

The run folder gets config.json, metrics.csv, steps.csv, checkpoints/ (last and best), model/
(weights.safetensors + model.json: architecture, classes, normalisation, test metrics),
metrics.json (test scores and per-class IoU), overlays.png (image | truth | prediction),
confusion.png, iou.png and report.html.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from striate._atomic import write_json
from striate.checks import non_negative_int, positive_int
from striate.data.box_augment import parse_box_augment
from striate.data.coco import read_coco
from striate.data.detection_loader import DetectionLoader
from striate.data.detectionset import DetectionSet
from striate.data.preprocess import Normalizer
from striate.data.scenes import scenes_from_sources
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError, StriateError
from striate.evaluate.confusion import plot_confusion
from striate.evaluate.report import figure_html
from striate.models.io import read_model_info, save_model
from striate.models.registry import MODELS, from_spec
from striate.models.registry import create as create_model
from striate.outputs import check_folder, clear_folder
from striate.segmentation import fcn, unet  # noqa: F401  (registers the networks)
from striate.segmentation.figures import plot_iou, plot_overlays
from striate.segmentation.metrics import iou_per_class
from striate.segmentation.task import Segmentation

NETWORKS = ("unet", "fcn", "deconvnet")
BACKGROUND = "background"


@dataclass
class SegmentationConfig:
    """The settings of `train_segmenter` (saved in config.json; a resumed run reads them)."""

    data: str = "scenes"
    root: str | None = None  # with data="scenes": the folder holding mnist/ and cifar10/
    model: str = "unet"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 6
    batch_size: int = 32
    opt: str = "adam"
    lr: float = 5e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    augment: str = ""
    class_weights: list[float] | None = None
    train_size: int | None = None
    val_size: int = 500
    test_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class SegmentationRun:
    out: Path | None
    model: nn.Module
    trainer: Trainer
    test: dict[str, float]


def train_segmenter(
    data: str | os.PathLike | None = None,
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> SegmentationRun:
    """Train a segmentation network (settings: `SegmentationConfig`'s fields); see the module
    docstring. `resume=True` continues the run stopped in `out` with its saved settings, exactly
    as if it had not stopped."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_segmenter: resume needs the run folder (out=...)")
        config = saved_config(out)
    else:
        if data is None:
            raise ConfigError(
                "train_segmenter: give the data: a folder in COCO layout (annotations/"
                "instances_train.json, train/, …) or 'scenes'"
            )
        config = SegmentationConfig(
            data=str(data),
            **known_settings("train_segmenter", SegmentationConfig, settings, ("data",)),
        )
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    _check(config)
    train_set, test_set = read_splits(config)
    classes = (BACKGROUND, *train_set.classes)
    train_set, val_set = _hold_out(train_set, config.val_size, config.seed)
    weights = config.class_weights
    if weights is not None and len(weights) != len(classes):
        raise ConfigError(
            f"train_segmenter: class_weights needs one weight per class ({len(classes)}: "
            f"{', '.join(classes)}), got {len(weights)}"
        )
    torch.manual_seed(config.seed)
    model = create_model(config.model, len(classes), train_set.shape, **dict(config.model_options))
    task = Segmentation(class_weights=config.class_weights)
    trainer = Trainer(
        epochs=config.epochs,
        task=task,
        opt=config.opt,
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule=config.schedule,
        precision=config.precision,
        device=config.device,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=callbacks,
    )
    norm = Normalizer().fit(train_set.images)  # uint8: fitted in chunks on the 0–1 scale
    augment = parse_box_augment(config.augment) if config.augment else None
    loader = dict(normalize=norm, device=trainer.device, targets="semantic")
    train = DetectionLoader(
        train_set, config.batch_size, augment=augment, seed=config.seed, **loader
    )
    val = DetectionLoader(val_set, 256, shuffle=False, **loader) if len(val_set) else None
    test = DetectionLoader(test_set, 256, shuffle=False, **loader)
    if out is not None and not resume:
        trainer.check(model, train)  # a bad option fails before the folder is made
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {
            "train_images": len(train_set),
            "val_images": len(val_set),
            "test_images": len(test_set),
        }
        resolved = resolved_facts(trainer, model, **sizes)
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    trainer.fit(model, train, val, resume=out if resume else None)
    if trainer.interrupted:
        return SegmentationRun(out, model, trainer, {})
    metrics, cm = evaluate_model(trainer, model, test)
    if out is not None:
        save_model(
            out / "model",
            model,
            classes=classes,
            in_shape=train_set.shape,
            normalization=norm.state_dict(),
            metrics={f"test_{k}": v for k, v in metrics.items()},
        )
        _write_outputs(out, config, trainer, model, norm, test_set, classes, metrics, cm)
    return SegmentationRun(out, model, trainer, metrics)


def _check(config: SegmentationConfig) -> None:
    owner = "train_segmenter"
    positive_int(owner, "epochs", config.epochs)
    positive_int(owner, "batch_size", config.batch_size)
    non_negative_int(owner, "val_size", config.val_size)
    positive_int(owner, "train_size", config.train_size, allow_none=True)
    positive_int(owner, "test_size", config.test_size, allow_none=True)
    MODELS.get(config.model)  # an unknown name: the registry's did-you-mean line
    if config.model.replace("-", "_") not in NETWORKS:
        raise ConfigError(
            f"train_segmenter: {config.model!r} is not a segmentation network; choose one of "
            f"{', '.join(NETWORKS)}"
        )
    if not isinstance(config.model_options, dict):
        raise ConfigError(
            f"train_segmenter: model_options must be a dict, got {config.model_options!r}"
        )


def saved_config(run: Path) -> SegmentationConfig:
    """The settings a run folder was trained with (its config.json)."""
    return saved_settings(run, SegmentationConfig, "striate segment train")


def read_splits(config: SegmentationConfig) -> tuple[DetectionSet, DetectionSet]:
    """The training and test DetectionSets (with masks) of `config.data`, cut to their sizes."""
    train, test = read_data(config, "train"), read_data(config, "test")
    if train.classes != test.classes:
        raise DataError(
            f"{config.data}: the train and test annotations name different classes "
            f"({', '.join(train.classes)} / {', '.join(test.classes)})"
        )
    return train, test


def read_data(config: SegmentationConfig, split: str) -> DetectionSet:
    """One split of `config.data`: a COCO folder's, or digit scenes drawn afresh (8,000 train
    scenes with seed `seed`, 1,000 test scenes with seed `seed` + 1, unless sizes are given)."""
    size = config.train_size if split == "train" else config.test_size
    if config.data != "scenes":
        return read_split(config.data, split, size, config.seed)
    roots = {}  # None: mnist/ and cifar10/ of the shared data folder
    if config.root is not None:
        root = Path(config.root)
        roots = {"root_mnist": root / "mnist", "root_cifar": root / "cifar10"}
    n = size or (8000 if split == "train" else 1000)
    seed = config.seed + (split == "test")
    return scenes_from_sources(n, split, seed=seed, **roots)


def read_split(folder: str | os.PathLike, split: str, size: int | None, seed: int) -> DetectionSet:
    """`folder`/annotations/instances_`split`.json and its images, a seeded `size` of them."""
    path = Path(folder)
    annotations = path / "annotations" / f"instances_{split}.json"
    if not path.is_dir():
        raise DataError(
            f"no data folder {path}: give a folder in COCO layout (annotations/instances_train"
            f".json, train/, …), e.g. made by striate detect scenes, or 'scenes'"
        )
    if not annotations.is_file():
        raise DataError(
            f"{path} has no {annotations.relative_to(path)}: a segmentation data folder holds "
            f"annotations/instances_train.json and instances_test.json with their image folders"
        )
    ds = read_coco(annotations)
    if ds.masks is None:
        raise DataError(f"{annotations} has no segmentations: class maps need instance masks")
    if size is not None and size < len(ds):
        g = torch.Generator().manual_seed(seed)
        ds = ds[torch.randperm(len(ds), generator=g)[:size].sort().values]
    return ds


def _hold_out(ds: DetectionSet, n: int, seed: int) -> tuple[DetectionSet, DetectionSet]:
    """A seeded `n` images of `ds` for validation, the rest for training."""
    if n >= len(ds):
        raise ConfigError(
            f"train_segmenter: val_size {n} leaves no training image of {len(ds)}; lower it"
        )
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed + 7))
    return ds[order[n:].sort().values], ds[order[:n].sort().values]


def evaluate_model(
    trainer: Trainer, model: nn.Module, data: DetectionLoader
) -> tuple[dict[str, float], torch.Tensor]:
    """The task's metrics of `model` on `data` and the confusion matrix of every pixel (K×K,
    rows truth)."""
    evaluation = trainer.task.evaluation()
    for batch in trainer.eval_batches(model, data, "testing"):
        evaluation.update(model, batch)
    if evaluation.confusion is None:
        raise ConfigError("the test data yields no batches")
    return evaluation.compute(), evaluation.confusion.matrix.cpu()


def _write_outputs(
    out: Path,
    config: SegmentationConfig,
    trainer: Trainer,
    model: nn.Module,
    norm: Normalizer,
    test_set: DetectionSet,
    classes: Sequence[str],
    metrics: dict[str, float],
    cm: torch.Tensor,
) -> None:
    iou = iou_per_class(cm)
    summary = {
        "test": metrics,
        "iou": {c: None if torch.isnan(v) else float(v) for c, v in zip(classes, iou, strict=True)},
        "confusion": cm.tolist(),
        "classes": list(classes),
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "training_seconds": sum(h.get("time", 0.0) for h in trainer.history),
    }
    write_json(out / "metrics.json", summary)
    figures = _figures(trainer, model, norm, test_set, classes, cm)
    headings = {
        "overlays": "Test images: image | truth | prediction",
        "iou": "Per-class IoU",
        "confusion": "Pixel confusion matrix (rows: truth)",
    }
    sections = [  # each figure drawn once, for its PNG and the report
        (headings[name], figure_html(fig, name, save=out / f"{name}.png"))
        for name, fig in figures.items()
    ]
    write_task_report(
        out,
        trainer,
        title=f"striate segmentation ({config.model}) on {config.data}",
        config=asdict(config),
        final={f"test_{k}": v for k, v in metrics.items()},
        sections=sections,
    )


def _figures(trainer, model, norm, test_set, classes, cm) -> dict[str, Any]:
    n = min(6, len(test_set))
    index = torch.arange(n)
    images = test_set.images[:n]
    x = norm(images.float().div(255)).to(trainer.device)
    with torch.no_grad():  # the model is in eval mode on the device since evaluate_model
        pred = trainer.task.predict(model.eval(), x).cpu()
    truth = test_set.semantic_masks(index)
    return {
        "overlays": plot_overlays(images, truth, pred, classes),
        "iou": plot_iou(iou_per_class(cm).tolist(), classes),
        "confusion": plot_confusion(cm.numpy(), classes, title="pixels"),
    }


# ------------------------------------------------------------------ using a trained run


@dataclass
class Segmenter:
    """A trained network with its classes and normalisation: `predict` gives class maps."""

    net: nn.Module
    classes: tuple[str, ...]
    normalizer: Normalizer
    metrics: dict[str, float]

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Class maps N×H×W (int64) of uint8 images N×C×H×W (any size the network can pad)."""
        self.net.eval()
        device = next(self.net.parameters()).device
        maps = []
        for chunk in images.split(batch_size):
            x = self.normalizer(chunk.to(device).float().div(255))
            maps.append(self.net(x).argmax(1).cpu())
        return torch.cat(maps) if maps else torch.zeros(0, dtype=torch.int64)


def load_segmenter(run: str | os.PathLike, device: str | torch.device = "cpu") -> Segmenter:
    """The trained network of a segmentation run folder (or its model/ folder)."""
    folder, info = read_model_info(run, made_by="striate segment train")
    try:
        spec = info["architecture"]
        norm = Normalizer.from_state_dict(info["normalization"])
        classes = tuple(info["classes"])
    except (OSError, ValueError, KeyError, TypeError, StriateError) as e:
        raise StriateError(f"{folder} does not hold a readable striate model ({e})") from e
    name = str(spec.get("name", "")) if isinstance(spec, dict) else ""
    if name not in NETWORKS or not classes or classes[0] != BACKGROUND:
        raise StriateError(
            f"{run} is not a segmentation run (its model is {name or 'unnamed'}); give a run "
            f"folder made by striate segment train"
        )
    net = from_spec(spec)
    try:
        weights = load_file(str(folder / "weights.safetensors"))
        net.load_state_dict(weights)
    except (OSError, RuntimeError, SafetensorError) as e:
        raise StriateError(f"{folder / 'weights.safetensors'} does not fit model.json ({e})") from e
    return Segmenter(net.to(device).eval(), classes, norm, dict(info.get("metrics", {})))


def evaluate_segmenter(
    run: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    device: str = "auto",
    progress: bool = True,
) -> tuple[dict[str, float], torch.Tensor, tuple[str, ...]]:
    """Test metrics, the pixel confusion matrix and the classes of a trained run on its test
    split (or the test split of the data folder `data`)."""
    run = Path(run)
    segmenter = load_segmenter(run)
    config = saved_config(run)
    if data is not None:
        config.data = str(data)
    test_set = read_data(config, "test")
    classes = (BACKGROUND, *test_set.classes)
    if classes != segmenter.classes:
        raise DataError(
            f"{config.data} has the classes {', '.join(classes[1:])} but the model of {run} "
            f"was trained on {', '.join(segmenter.classes[1:])}"
        )
    trainer = Trainer(epochs=1, task=Segmentation(), device=device, progress=progress)
    loader = DetectionLoader(
        test_set, 256, shuffle=False, normalize=segmenter.normalizer, device=trainer.device,
        targets="semantic",
    )  # fmt: skip
    metrics, cm = evaluate_model(trainer, segmenter.net, loader)
    return metrics, cm, classes


def as_uint8_batch(images: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """H×W×C uint8 arrays (as `striate.cli.inputs.read_images` gives) as 1×3×H×W tensors."""
    out = []
    for a in images:
        t = torch.from_numpy(np.array(a, dtype=np.uint8))  # a writable copy
        t = t[..., None] if t.dim() == 2 else t
        t = t.permute(2, 0, 1)[None]
        out.append(t.expand(1, 3, *t.shape[2:]) if t.shape[1] == 1 else t[:, :3])
    return out
