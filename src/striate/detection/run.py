"""Training a detector end to end: COCO data → detector → Trainer(task=Detection) → a run folder
with the model, metrics, checkpoints, mAP on the test split and pictures.

    result = train_detector("scenes/", model="grid", epochs=10, out="runs/grid")
    train_detector("scenes/", out="runs/grid", resume=True)       # after Ctrl-C
    evaluate_detector("runs/grid")                                 # COCO mAP, mAP@0.5, VOC07
    predict_detections("runs/grid", images, threshold=0.5)

`data` is a folder in the COCO layout `striate detect scenes` writes: annotations/
instances_{train,test}.json and the images under train/ and test/. The run folder gets
config.json, metrics.csv, steps.csv, checkpoints/ (exact resume), model/ (weights.safetensors +
model.json, which `load_detector` rebuilds from the model registry), eval.json (COCO, VOC 2007
and VOC 2010 numbers of the final weights on the test split, and the training time),
detections.png (test images before and after NMS, with scores), pr_curves.png (precision–recall
per class at IoU 0.5) and report.html. The test split is the validation set of every epoch
(its COCO mAP is `val_map`); the numbers in eval.json are the final weights', not the best
epoch's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from striate._atomic import write_json
from striate.checks import did_you_mean, number, positive_int
from striate.data.box_augment import parse_box_augment
from striate.data.coco import read_coco
from striate.data.detection_loader import DetectionLoader
from striate.data.detectionset import DetectionSet
from striate.data.preprocess import Normalizer
from striate.detection import one_stage, two_stage  # noqa: F401  (registers the detectors)
from striate.detection.figures import plot_detections, plot_pr_curves
from striate.detection.mean_ap import MeanAveragePrecision
from striate.detection.postprocess import Detections
from striate.detection.task import Detection, ground_truth
from striate.device import resolve_device
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.evaluate.report import figure_html
from striate.models.io import load_model, save_model
from striate.models.registry import create
from striate.outputs import check_folder, clear_folder

DETECTORS = {"grid": "grid_detector", "two-stage": "faster_rcnn_small"}
PROTOCOLS = ("coco", "voc2007", "voc2010")


@dataclass
class DetectorConfig:
    """The settings of `train_detector` (saved in config.json; a resumed run reads them)."""

    data: str = ""
    model: str = "grid"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 6
    batch_size: int = 32
    opt: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    augment: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class DetectorRun:
    out: Path | None
    model: nn.Module
    trainer: Trainer
    test: dict[str, dict[str, float]]
    seconds: float


def detector_name(model: str) -> str:
    """The registry name of "grid", "two-stage" or a registered detector's own name."""
    if model in DETECTORS:
        return DETECTORS[model]
    if model in DETECTORS.values():
        return model
    raise ConfigError(
        f"unknown detector {model!r}{did_you_mean(model, DETECTORS)}; choose one of "
        f"{', '.join(DETECTORS)} (or {', '.join(DETECTORS.values())})"
    )


def read_split(data: str | Path, split: str, size: int | None = None, seed: int = 0):
    """The `split` of a COCO-layout folder as a DetectionSet (`size` images drawn at random)."""
    root = Path(data)
    if not root.is_dir():
        raise DataError(
            f"no data folder at {root}: make one with striate detect scenes {root} (or give a "
            f"folder holding annotations/instances_train.json and train/)"
        )
    annotations = root / "annotations" / f"instances_{split}.json"
    if not annotations.is_file():
        raise DataError(
            f"{root} has no {split} split (no annotations/instances_{split}.json): give a folder "
            f"that striate detect scenes wrote"
        )
    return _subset(read_coco(annotations, root / split, masks=False), size, seed)


def train_detector(
    data: str | Path = "",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    sets: tuple[DetectionSet, DetectionSet] | None = None,
    **settings: Any,
) -> DetectorRun:
    """Train a detector (settings: `DetectorConfig`'s fields; `model` "grid" or "two-stage") on
    the train split of `data`, evaluate it on the test split; see the module docstring.
    `sets` = (train, test) DetectionSets replaces reading `data` (Python use, tests)."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_detector: resume needs the run folder (out=...)")
        config = saved_settings(out, DetectorConfig, "striate detect train")
    else:
        config = DetectorConfig(
            data=str(data), **known_settings("train_detector", DetectorConfig, settings, ("data",))
        )
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    name = detector_name(config.model)
    positive_int("train_detector", "epochs", config.epochs)
    positive_int("train_detector", "batch_size", config.batch_size)
    number("train_detector", "lr", config.lr, low=0, low_open=True)
    positive_int("train_detector", "train_size", config.train_size, allow_none=True)
    positive_int("train_detector", "test_size", config.test_size, allow_none=True)
    if sets is not None:
        train_set = _subset(sets[0], config.train_size, config.seed)
        test_set = _subset(sets[1], config.test_size, config.seed)
    else:
        train_set = read_split(config.data, "train", config.train_size, config.seed)
        test_set = read_split(config.data, "test", config.test_size, config.seed)
    if train_set.classes != test_set.classes:
        raise DataError(
            f"the train and test splits name different classes ({', '.join(train_set.classes)} "
            f"and {', '.join(test_set.classes)})"
        )
    torch.manual_seed(config.seed)
    model = create(
        name,
        num_classes=train_set.num_classes,
        in_shape=train_set.shape,
        **config.model_options,
    )
    normalizer = Normalizer().fit(train_set.images)
    trainer = Trainer(
        epochs=config.epochs,
        task=Detection.for_model(model),
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
    augment = parse_box_augment(config.augment) if config.augment else None
    train = DetectionLoader(
        train_set,
        config.batch_size,
        augment=augment,
        normalize=normalizer,
        device=trainer.device,
        seed=config.seed,
    )
    test = DetectionLoader(test_set, 64, shuffle=False, normalize=normalizer, device=trainer.device)
    if out is not None and not resume:
        trainer.check(model, train)  # a bad option fails before the folder is made
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {"train_images": len(train_set), "test_images": len(test_set)}
        resolved = resolved_facts(trainer, model, **sizes)
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    start = time.perf_counter()
    trainer.fit(model, train, test, resume=out if resume else None)
    seconds = sum(h.get("time", 0.0) for h in trainer.history) or time.perf_counter() - start
    if trainer.interrupted:
        return DetectorRun(out, model, trainer, {}, seconds)
    scores, shown = score_detector(model.eval(), test, trainer.device)
    if out is not None:
        norm = {"mean": normalizer.mean_.tolist(), "std": normalizer.std_.tolist()}
        save_model(
            out / "model",
            model,
            classes=train_set.classes,
            in_shape=train_set.shape,
            normalization=norm,
            metrics=scores["coco"],
        )
        _write_outputs(out, config, trainer, model, test_set, normalizer, scores, shown, seconds)
    return DetectorRun(out, model, trainer, scores, seconds)


def score_detector(
    model: nn.Module, loader: DetectionLoader, device: torch.device | str = "cpu"
) -> tuple[dict[str, dict[str, float]], MeanAveragePrecision]:
    """mAP of `model` on `loader` under each protocol of PROTOCOLS (one pass over the data),
    and the VOC 2010 metric itself (for its precision–recall curves at IoU 0.5)."""
    metrics = {p: MeanAveragePrecision(protocol=p) for p in PROTOCOLS}
    model.to(device).eval()
    with torch.no_grad():
        for x, boxes, labels in loader:
            found: Detections = model(x.to(device))
            preds = [{k: v.cpu() for k, v in d.items()} for d in found]
            truth = ground_truth(boxes.cpu(), labels.cpu(), getattr(model, "num_classes", None))
            for metric in metrics.values():
                metric.update(preds, truth)
    scores = {
        p: {
            k: float(v)
            for k, v in m.compute().items()
            if isinstance(v, (int, float)) or (isinstance(v, torch.Tensor) and v.numel() == 1)
        }
        for p, m in metrics.items()
    }
    return scores, metrics["voc2010"]


def _write_outputs(
    out: Path,
    config: DetectorConfig,
    trainer: Trainer,
    model: nn.Module,
    test_set: DetectionSet,
    normalizer: Normalizer,
    scores: dict[str, dict[str, float]],
    metric: MeanAveragePrecision,
    seconds: float,
) -> None:
    summary = {
        "coco_map": scores["coco"].get("map"),
        "coco_map_50": scores["coco"].get("map_50"),
        "voc2007_map": scores["voc2007"].get("map"),
        "train_seconds": round(seconds, 1),
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "test_images": len(test_set),
    }
    write_json(out / "eval.json", {"summary": summary, **scores})
    figures = _figures(model, test_set, normalizer, metric, trainer.device)
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
    write_task_report(
        out,
        trainer,
        title=f"striate {detector_name(config.model)} on {config.data or 'detection data'}",
        config=asdict(config),
        final={k: v for k, v in summary.items() if isinstance(v, (int, float))},
        sections=[
            (
                "Test images before and after non-maximum suppression",
                figure_html(figures["detections"], "detections"),
            ),
            ("Precision–recall per class (IoU 0.5)", figure_html(figures["pr_curves"], "pr")),
        ],
    )


def _figures(
    model: nn.Module,
    test_set: DetectionSet,
    normalizer: Normalizer,
    metric: MeanAveragePrecision,
    device: torch.device | str,
    n: int = 6,
) -> dict[str, Any]:
    images = test_set.images[:n].float().div(255)
    x = normalizer(images).to(device)
    model.eval()
    before = model.detect(x, nms=False)
    after = model.detect(x)
    return {
        "detections": plot_detections(images, before, after, test_set.classes),
        "pr_curves": plot_pr_curves(metric, test_set.classes),
    }


# ------------------------------------------------------------------------- a saved run


@dataclass
class LoadedDetector:
    model: nn.Module
    classes: tuple[str, ...]
    normalizer: Normalizer
    run: Path


def load_detector(run: str | Path, device: str | torch.device = "cpu") -> LoadedDetector:
    """The detector a run folder (or its model/ folder) holds, with its classes and
    normalisation; a one-line InputError when it holds no detector."""
    path = Path(run)
    if not path.exists():
        raise InputError(f"no run folder at {path}: give the --out of striate detect train")
    try:
        wrapped = load_model(path, device=resolve_device(device))
    except StriateError as e:
        raise InputError(f"{path} is not a detection run: {e}") from e
    net = wrapped.net
    if not hasattr(net, "loss_names"):
        raise InputError(
            f"{path} is not a detection run: its model is {net.spec['name']}, not a detector "
            f"(train one with striate detect train)"
        )
    normalizer = Normalizer(
        mean=wrapped.mean.flatten().tolist(), std=wrapped.std.flatten().tolist()
    )
    return LoadedDetector(net.eval(), tuple(wrapped.classes), normalizer, path)


def evaluate_detector(
    run: str | Path,
    data: str | Path | None = None,
    *,
    test_size: int | None = None,
    device: str = "auto",
    write: bool = True,
) -> dict[str, dict[str, float]]:
    """COCO, VOC 2007 and VOC 2010 numbers of a run's model on the test split of `data` (the
    run's own data folder by default); with `write`, into the run's eval.json."""
    loaded = load_detector(run, resolve_device(device))
    if data is None:
        try:
            data = json.loads((loaded.run / "config.json").read_text())["config"]["data"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(
                f"{loaded.run} does not say which data it was trained on (config.json): pass --data"
            ) from e
    test_set = read_split(data, "test", test_size)
    if test_set.classes != loaded.classes:
        raise DataError(
            f"{data} names the classes {', '.join(test_set.classes)}, the model "
            f"{', '.join(loaded.classes)}: evaluate on data with the model's classes"
        )
    dev = resolve_device(device)
    loader = DetectionLoader(test_set, 64, shuffle=False, normalize=loaded.normalizer, device=dev)
    scores, _ = score_detector(loaded.model, loader, dev)
    if write and (loaded.run / "config.json").is_file():
        try:  # the training's facts stay
            before = json.loads((loaded.run / "eval.json").read_text())["summary"]
        except (OSError, ValueError, KeyError, TypeError):
            before = {}
        summary = {
            **{k: before[k] for k in ("train_seconds", "epochs", "steps") if k in before},
            "coco_map": scores["coco"].get("map"),
            "coco_map_50": scores["coco"].get("map_50"),
            "voc2007_map": scores["voc2007"].get("map"),
            "test_images": len(test_set),
            "data": str(data),
        }
        write_json(loaded.run / "eval.json", {"summary": summary, **scores})
    return scores


def predict_detections(
    loaded: LoadedDetector, images: Sequence[np.ndarray | torch.Tensor], threshold: float = 0.5
) -> list[dict[str, torch.Tensor]]:
    """Each image's detections with score ≥ `threshold` (boxes in its pixels). Images are uint8
    H×W×C arrays of any size (grey or RGBA are converted to the model's channels)."""
    threshold = number("predict", "threshold", threshold, low=0, high=1)
    channels = loaded.model.in_shape[0]
    device = next(loaded.model.parameters()).device
    out = []
    for image in images:  # one image at a time: they may differ in size
        x = _as_chw(image, channels).to(device).float().div(255)[None]
        d = loaded.model.detect(loaded.normalizer(x))[0]
        keep = d["scores"] >= threshold
        out.append({k: v[keep].cpu() for k, v in d.items()})
    return out


def _as_chw(image: np.ndarray | torch.Tensor, channels: int) -> torch.Tensor:
    t = torch.as_tensor(np.array(image)) if not isinstance(image, torch.Tensor) else image
    if t.dim() == 2:
        t = t[..., None]
    if t.dim() != 3:
        raise InputError(f"predict: an image must be H×W×C, got shape {tuple(t.shape)}")
    t = t.permute(2, 0, 1)[:channels]
    if t.shape[0] == 1 and channels == 3:
        t = t.expand(3, -1, -1)
    return t


def _subset(ds: DetectionSet, size: int | None, seed: int) -> DetectionSet:
    """`size` images of `ds` drawn at random (in their order), or all of them."""
    if size is None or size >= len(ds):
        return ds
    g = torch.Generator().manual_seed(seed)
    return ds[torch.randperm(len(ds), generator=g)[:size].sort().values]
