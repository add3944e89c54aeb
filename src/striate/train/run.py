"""A training run from a TrainConfig: data → model → Trainer → run folder with report.

The library side of `striate train`, `striate evaluate` and `striate lr-find`:

    result = train_run(TrainConfig(epochs=5))
    result.out / "report.html"

The run folder holds `config.json` (the resolved settings), `metrics.csv`, `steps.csv`,
`checkpoints/`, `model/` (for `load_model`), the plots as PNG and `report.html`.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from striate._atomic import atomic_write
from striate.data import BatchLoader, ImageSet, Normalizer, load_dataset, train_val_split
from striate.data.splits import stratified_split
from striate.errors import ConfigError
from striate.train.augment_spec import parse_augment
from striate.train.config import TrainConfig
from striate.train.recipes import model_callbacks
from striate.train.trainer import Trainer


@dataclass
class RunData:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    normalizer: Normalizer


@dataclass
class RunResult:
    out: Path
    config: TrainConfig
    history: list[dict[str, float]]
    test: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    stop_reason: str | None = None
    seconds: float = 0.0


def _subset(ds: ImageSet, size: int | None, seed: int) -> ImageSet:
    if size is None or size >= len(ds):
        return ds
    _, keep = stratified_split(ds, size, seed)
    return ds[keep]


def load_run_data(config: TrainConfig) -> RunData:
    """Train/val/test sets and the normaliser fitted on the training part."""
    full = _subset(load_dataset(config.data, "train", config.root), config.train_size, config.seed)
    test = _subset(load_dataset(config.data, "test", config.root), config.test_size, config.seed)
    val = None
    if config.val_size > 0:
        size = int(config.val_size) if config.val_size >= 1 else config.val_size
        train, val = train_val_split(full, size, seed=config.seed)
    else:
        train = full
    if test.shape != train.shape:
        raise ConfigError(
            f"{config.data}: test images are {test.shape}, training images {train.shape}"
        )
    return RunData(train, val, test, Normalizer().fit(train))


def source_normalizer(config: TrainConfig, data: RunData) -> Normalizer:
    """Fine-tuning a striate model keeps the normalisation it was trained with; otherwise the
    statistics of the training data."""
    if config.weights is not None:
        from striate.errors import StriateError
        from striate.models.io import model_folder

        try:
            info = json.loads((model_folder(config.weights) / "model.json").read_text())
        except (StriateError, OSError, ValueError):
            info = {}
        norm = info.get("normalization")
        if norm and len(norm.get("mean", ())) == data.train.shape[0]:
            return Normalizer.from_state_dict(norm)
    return data.normalizer


def build_model(config: TrainConfig, data: ImageSet) -> torch.nn.Module:
    """The model of `config`, with `config.weights` loaded: every key checked, except a head
    whose shape differs (another number of classes), which starts afresh."""
    from striate import models
    from striate.models.io import load_weights, read_state_dict
    from striate.train.transfer import head_name

    torch.manual_seed(config.seed)
    model = models.create(
        config.model,
        num_classes=data.num_classes,
        in_shape=data.shape,
        init=config.init,
        **config.model_options,
    )
    if config.weights is not None:
        weights = read_state_dict(config.weights)
        head = head_name(model)
        own = model.state_dict()
        replaced = any(
            k.startswith(head + ".") and k in own and own[k].shape != v.shape
            for k, v in weights.items()
        )
        skip = (head + ".",) if replaced else ()
        load_weights(model, weights, skip=skip, source=str(config.weights))
        model.replaced_head = head if replaced else None
    return model


def finetune_setup(config: TrainConfig, model: torch.nn.Module) -> dict[str, Any]:
    """Trainer arguments for `config.finetune` and `config.lr_factor` (nothing for the default
    of training every layer at one lr)."""
    if config.finetune == "all" and config.lr_factor == 1.0:
        return {}
    from striate.train.transfer import FreezeFrozen, finetune_parameters

    groups, frozen = finetune_parameters(
        model, config.finetune, config.lr, config.lr_factor, config.wd
    )
    return {"param_groups": groups, "callbacks": [FreezeFrozen(frozen)] if frozen else []}


def build_trainer(config: TrainConfig, out: Path | None, progress: bool, **extra: Any) -> Trainer:
    extra.setdefault("device", config.device)
    if config.snapshots is not False and out is not None:
        from striate.train.ensemble import Snapshots

        every = None if config.snapshots is True else config.snapshots
        extra["callbacks"] = [*extra.get("callbacks", ()), Snapshots(every)]
    return Trainer(
        epochs=config.epochs,
        steps=config.steps,
        opt=config.opt,
        lr=config.lr,
        weight_decay=config.wd,
        momentum=config.momentum,
        nesterov=config.nesterov and config.opt == "sgd",  # the default is for SGD only
        schedule=config.schedule,
        schedule_options=config.schedule_options,
        loss=config.loss,
        label_smoothing=config.label_smoothing,
        precision=config.precision,
        channels_last=config.channels_last,
        seed=config.seed,
        clip_grad_norm=config.clip_grad,
        ema=config.ema,
        lookahead=config.lookahead,
        early_stopping=config.early_stopping,
        tta=config.tta,
        out=out,
        progress=progress,
        **extra,
    )


def loaders(
    config: TrainConfig, data: RunData, device: torch.device
) -> tuple[BatchLoader, BatchLoader | None, BatchLoader]:
    augment = parse_augment(config.augment, data.train.shape, data.train.num_classes)
    norm = data.normalizer
    train = BatchLoader(
        data.train,
        config.batch_size,
        shuffle=True,
        augment=augment,
        normalize=norm,
        device=device,
        seed=config.seed,
    )
    evaluation = max(config.batch_size, 256)
    val = (
        None
        if data.val is None
        else BatchLoader(data.val, evaluation, shuffle=False, normalize=norm, device=device)
    )
    # every process evaluates the whole test set (process 0 reports it): no collective needed
    test = BatchLoader(
        data.test, evaluation, shuffle=False, normalize=norm, device=device, rank=0, world_size=1
    )
    return train, val, test


def default_out(config: TrainConfig, base: Path = Path("runs/train")) -> Path:
    """runs/train/DATA-MODEL, or -2, -3, ... when that holds an earlier run."""
    data = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(config.data).stem) or "data"
    out = base / f"{data}-{config.model}"
    n = 2
    while out.exists() and any(out.iterdir()):
        out = base / f"{data}-{config.model}-{n}"
        n += 1
    return out


def train_run(
    config: TrainConfig, *, resume: str | Path | None = None, progress: bool = True
) -> RunResult:
    """Train as `config` says and write the run folder; `resume` continues a stopped run
    (its folder, with the settings saved in its config.json).

    Under `torchrun` every process runs this: each trains on its share of every batch, and only
    process 0 chooses and writes the run folder.
    """
    from striate.train import distributed

    ctx = distributed.init_from_env(device=config.device)
    try:
        return _train_run(config, resume, progress, ctx)
    finally:
        distributed.cleanup()


def _train_run(
    config: TrainConfig, resume: str | Path | None, progress: bool, ctx: Any
) -> RunResult:
    from striate.train import distributed

    start = time.perf_counter()
    if resume is not None:
        out = Path(resume)
        saved = out / "config.json"
        if not saved.is_file():
            raise ConfigError(f"cannot resume: {out} is not a run folder (no config.json)")
        config = TrainConfig.from_dict(json.loads(saved.read_text())["config"])
        if not (out / "checkpoints" / "last.safetensors").is_file():
            raise ConfigError(f"cannot resume: {out} has no checkpoints/last.safetensors")
    else:
        out = Path(config.out) if config.out else default_out(config) if ctx.is_main else None
        out = distributed.broadcast_object(out)
    if not ctx.is_main:
        distributed.barrier()  # process 0 downloads and decodes first; the others read its cache
    data = load_run_data(config)
    data.normalizer = source_normalizer(config, data)
    if ctx.is_main:
        distributed.barrier()
    model = build_model(config, data.train)
    device = str(ctx.device) if ctx.distributed else config.device
    extra = finetune_setup(config, model)
    extra["callbacks"] = extra.get("callbacks", []) + model_callbacks(model)
    trainer = build_trainer(config, out, progress, device=device, **extra)
    train, val, test = loaders(config, data, trainer.device)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume is None:
            _write_config(out, config, trainer, data, model)
    history = trainer.fit(model, train, val, resume=out if resume is not None else None)
    result = RunResult(
        out, config, history, interrupted=trainer.interrupted, stop_reason=trainer.stop_reason
    )
    if trainer.interrupted or not ctx.is_main:
        result.seconds = time.perf_counter() - start
        return result
    final = trainer.eval_model
    result.test = trainer.evaluate(final, test)
    from striate.models.io import save_model

    save_model(
        out / "model",
        final,
        classes=data.train.classes,
        in_shape=data.train.shape,
        normalization=data.normalizer.state_dict(),
        metrics={f"test_{k}": v for k, v in result.test.items()},
    )
    write_run_report(out, config, trainer, final, test, data, result.test)
    result.seconds = time.perf_counter() - start
    return result


def _write_config(
    out: Path, config: TrainConfig, trainer: Trainer, data: RunData, model: torch.nn.Module
) -> None:
    """config.json: the settings, and what they resolved to on this machine."""
    params = list(model.parameters())
    resolved = {
        "device": str(trainer.device),
        "precision": trainer.precision.name,
        "processes": trainer.world_size,
        "classes": list(data.train.classes),
        "in_shape": list(data.train.shape),
        "train_images": len(data.train),
        "val_images": 0 if data.val is None else len(data.val),
        "test_images": len(data.test),
        "parameters": sum(p.numel() for p in params),
        "trainable_parameters": sum(p.numel() for p in params if p.requires_grad),
        "replaced_head": getattr(model, "replaced_head", None),
        "normalization": data.normalizer.state_dict(),
        "striate_version": _version(),
    }
    _write_json(out / "config.json", {"config": config.to_dict(), "resolved": resolved})


def write_run_report(
    out: Path,
    config: TrainConfig,
    trainer: Trainer,
    model: torch.nn.Module,
    test: BatchLoader,
    data: RunData,
    test_metrics: dict[str, float],
    worst: int = 16,
) -> Path:
    """Plots (PNG) and report.html for a finished run: curves, confusion, hardest test images,
    and the Doctor section when `striate doctor` saved its results in the folder."""
    from striate.evaluate.confusion import confusion_matrix, plot_confusion
    from striate.evaluate.curves import plot_history, plot_steps
    from striate.evaluate.report import write_report

    probs, labels, losses = per_sample(trainer, model, test)
    pred = probs.argmax(1)
    classes = data.test.classes
    cm = confusion_matrix(labels.numpy(), pred.numpy(), len(classes))
    steps = {k: v for k, v in trainer.steps_log.items() if not all(map(_nan, v))}
    for name, fig in (
        ("history.png", plot_history(trainer.history)),
        ("steps.png", plot_steps(steps)),
        ("confusion.png", plot_confusion(cm, classes)),
    ):
        fig.savefig(out / name, dpi=100, bbox_inches="tight")
    order = losses.argsort(descending=True)[:worst]
    final = {f"test_{k}": v for k, v in test_metrics.items()}
    if trainer.history:
        last = trainer.history[-1]
        final.update(
            {k: last[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in last}
        )
    final["epochs"] = trainer.epoch
    final["steps"] = trainer.step
    return write_report(
        out / "report.html",
        title=f"striate train: {config.model} on {config.data}",
        config=config.to_dict(),
        history=trainer.history,
        steps=steps,
        final=final,
        classes=classes,
        confusion=cm,
        doctor=_saved_doctor(out),
        worst={
            "images": data.test.images[order].numpy(),
            "true": labels[order].tolist(),
            "pred": pred[order].tolist(),
            "loss": losses[order].tolist(),
            "prob": probs[order, pred[order]].tolist(),
        },
    )


def _saved_doctor(out: Path) -> dict | None:
    """The results `striate doctor --run RUN --out RUN` saved in the run folder, if any."""
    try:
        saved = json.loads((out / "doctor.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and "checks" in saved else None


def per_sample(
    trainer: Trainer, model: torch.nn.Module, data: BatchLoader
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Probabilities, labels and cross-entropy of every sample of an unshuffled loader (in the
    dataset's order, on the CPU)."""
    probs = trainer.predict(model, data)
    labels = data.data.labels.cpu()
    losses = -probs.clamp_min(1e-12).log().gather(1, labels[:, None]).squeeze(1)
    return probs, labels, losses


def evaluate_run(
    model_path: str | Path,
    data: str,
    root: str | None = None,
    split: str = "test",
    batch_size: int = 256,
    tta: bool | str = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Accuracy, top-5, loss and per-class accuracy of a saved model on a dataset split."""
    from striate.evaluate.confusion import confusion_matrix, per_class_accuracy
    from striate.models.io import load_model

    model = load_model(model_path, device="cpu")
    ds = load_dataset(data, split, root)
    if tuple(ds.classes) != tuple(model.classes):
        raise ConfigError(
            f"{data} has classes {list(ds.classes)[:10]}, the model {list(model.classes)[:10]}: "
            f"evaluate on data with the model's classes"
        )
    trainer = Trainer(epochs=1, device=device, progress=False, tta=tta)
    model.to(trainer.device)
    x = BatchLoader(
        ds, batch_size, shuffle=False, device=trainer.device, normalize=lambda b: model.prepare(b)
    )
    metrics = trainer.evaluate(model, x)
    probs, labels, _ = per_sample(trainer, model, x)
    cm = confusion_matrix(labels.numpy(), probs.argmax(1).numpy(), len(ds.classes))
    metrics["per_class"] = dict(zip(ds.classes, per_class_accuracy(cm).tolist(), strict=True))
    metrics["images"] = len(ds)
    return metrics


def lr_find_run(
    config: TrainConfig,
    *,
    start: float = 1e-8,
    end: float = 10.0,
    num_steps: int = 100,
    out: Path | None = None,
    progress: bool = True,
):
    """The LR finder on the training data of `config`; saves lr_find.png/json in `out`."""
    data = load_run_data(config)
    data.normalizer = source_normalizer(config, data)
    model = build_model(config, data.train)
    trainer = build_trainer(config, None, progress=False, **finetune_setup(config, model))
    train, _, _ = loaders(config, data, trainer.device)
    result = trainer.lr_find(model, train, start=start, end=end, num_steps=num_steps)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        result.plot().savefig(out / "lr_find.png", dpi=100, bbox_inches="tight")
        _write_json(out / "lr_find.json", result.to_dict())
    return result


def _nan(v: float) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _version() -> str:
    from striate import __version__

    return __version__


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.generic,)):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
