"""A training run from a TrainConfig: data → model → Trainer → run folder with report.

The library side of `striate train` and `striate lr-find` (`striate evaluate`: `evaluation.py`,
the report: `run_report.py`):

    result = train_run(TrainConfig(epochs=5))
    result.out / "report.html"

The run folder holds `config.json` (the resolved settings), `metrics.csv`, `steps.csv`,
`checkpoints/`, `model/` (for `load_model`), the plots as PNG and `report.html`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from striate._atomic import write_json
from striate.data import BatchLoader, ImageSet, Normalizer, load_dataset, train_val_split
from striate.data.augment_spec import parse_augment
from striate.data.splits import stratified_split
from striate.engine.callbacks import EMA, Callback, EarlyStopping, GradientClipping, Lookahead
from striate.engine.classification import Classification
from striate.engine.run_info import resolved_facts, timestamp
from striate.engine.task import Task
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, StriateError
from striate.evaluate.tta import untrained_views
from striate.outputs import check_folder, clear_folder, default_folder
from striate.train.config import TrainConfig
from striate.train.ensemble import Snapshots
from striate.train.recipes import model_callbacks
from striate.train.run_report import write_run_report


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
    epoch: int = 0  # epochs finished (when interrupted: saved in checkpoints/last.safetensors)
    step: int = 0  # optimiser steps taken
    already_complete: bool = False  # resume found a finished run: nothing was trained
    warnings: list[str] = field(default_factory=list)


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
        model, config.finetune, config.lr, config.lr_factor, config.weight_decay
    )
    return {"param_groups": groups, "callbacks": [FreezeFrozen(frozen)] if frozen else []}


def make_task(config: TrainConfig) -> Classification:
    """The run's task: classification with the config's loss, smoothing and TTA."""
    return Classification(config.loss, label_smoothing=config.label_smoothing, tta=config.tta)


def config_callbacks(config: TrainConfig, task: Task, out: Path | None) -> list[Callback]:
    """The callbacks the config's features ask for, one line per feature (the Trainer's loop
    knows none of them)."""
    every = None if config.snapshots is True else config.snapshots
    made = [
        config.clip_grad is not None and GradientClipping(config.clip_grad),
        config.ema is not None and EMA(config.ema),
        config.lookahead is not None and Lookahead(config.lookahead),
        config.early_stopping is not None and EarlyStopping(task.monitor, config.early_stopping),
        config.snapshots is not False and out is not None and Snapshots(every),
    ]
    return [cb for cb in made if cb]


def build_trainer(config: TrainConfig, out: Path | None, progress: bool, **extra: Any) -> Trainer:
    """The Trainer of `config`: its task, optimiser and schedule, and the callbacks of its
    features before those in `extra["callbacks"]` (fine-tuning, the model's own)."""
    extra.setdefault("device", config.device)
    task = make_task(config)
    extra["callbacks"] = [*config_callbacks(config, task, out), *extra.get("callbacks", ())]
    return Trainer(
        epochs=config.epochs,
        steps=config.steps,
        task=task,
        opt=config.opt,
        lr=config.lr,
        weight_decay=config.weight_decay,
        momentum=config.momentum,
        nesterov=config.nesterov and config.opt == "sgd",  # the default is for SGD only
        schedule=config.schedule,
        schedule_options=config.schedule_options,
        precision=config.precision,
        channels_last=config.channels_last,
        seed=config.seed,
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


@dataclass
class Prepared:
    """A run assembled from its config: what `prepare` returns."""

    config: TrainConfig
    data: RunData
    model: torch.nn.Module
    trainer: Trainer
    train: BatchLoader
    val: BatchLoader | None
    test: BatchLoader


def prepare(
    config: TrainConfig,
    *,
    out: Path | None = None,
    progress: bool = True,
    device: str | None = None,
    data: RunData | None = None,
    callbacks: Sequence[Callback] = (),
) -> Prepared:
    """The one assembly of a run, as the data-flow diagram draws it: data (with the
    normalisation a fine-tuned model was trained with) → model (weights loaded) → trainer (with
    the callbacks the config and the model ask for) → loaders on the trainer's device.

    Used by `striate train`, `lr-find`, the search's trials, the doctor and the benchmarks;
    `data` gives already loaded sets (a search trial's subset), `device` overrides the config's
    (a torchrun process's own GPU), `callbacks` are added after the run's own."""
    if data is None:
        data = load_run_data(config)
    data.normalizer = source_normalizer(config, data)
    model = build_model(config, data.train)
    extra = finetune_setup(config, model)
    extra["callbacks"] = [*extra.get("callbacks", []), *model_callbacks(model), *callbacks]
    trainer = build_trainer(config, out, progress, device=device or config.device, **extra)
    train, val, test = loaders(config, data, trainer.device)
    return Prepared(config, data, model, trainer, train, val, test)


def default_out(config: TrainConfig, base: Path = Path("runs/train")) -> Path:
    """runs/train/DATA-MODEL, or -2, -3, ... when that holds an earlier run."""
    return default_folder(base, f"{Path(config.data).stem}-{config.model}")


def resume_point(out: str | Path) -> tuple[int, int] | None:
    """(epoch, step) of the state saved in a run folder's last checkpoint; None without one."""
    try:
        saved = json.loads((Path(out) / "checkpoints" / "last.json").read_text())
        return int(saved["epoch"]), int(saved["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_complete(out: str | Path) -> bool:
    """Whether a run folder holds a finished run (its final model is written at the end)."""
    return (Path(out) / "model" / "model.json").is_file()


def train_run(
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train as `config` says and write the run folder; `resume` continues a stopped run
    (its folder, with the settings saved in its config.json).

    A run folder that holds results is refused unless `overwrite` (its contents are removed once
    every option has been checked). Every option is checked before the folder is made; a run that
    fails after that (a loss that diverges) leaves `failed.json` with the diagnosis.

    Under `torchrun` every process runs this: each trains on its share of every batch, and only
    process 0 chooses and writes the run folder.
    """
    from striate.engine import distributed

    ctx = distributed.init_from_env(device=config.device)
    try:
        return _train_run(config, resume, overwrite, progress, ctx)
    finally:
        distributed.cleanup()


def _resumed_config(out: Path) -> TrainConfig:
    saved = out / "config.json"
    if not saved.is_file():
        raise ConfigError(f"cannot resume: {out} is not a run folder (no config.json)")
    try:
        config = TrainConfig.from_dict(json.loads(saved.read_text())["config"])
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"cannot resume: {saved} is damaged ({e})") from e
    if not is_complete(out) and resume_point(out) is None:
        raise ConfigError(f"cannot resume: {out} has no checkpoints/last.safetensors")
    return config


def _claim_out(config: TrainConfig, overwrite: bool, ctx: Any) -> Path:
    """The run folder (process 0 chooses; every process gets it), refused when it holds results
    and `overwrite` is not given."""
    from striate.engine import distributed

    out, error = None, None
    if ctx.is_main:
        out = Path(config.out) if config.out else default_out(config)
        try:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
        except StriateError as e:
            error = e
    out, error = distributed.broadcast_object((out, error))
    if error is not None:
        raise error
    return out


def _train_run(
    config: TrainConfig, resume: str | Path | None, overwrite: bool, progress: bool, ctx: Any
) -> RunResult:
    from striate.engine import distributed

    start = time.perf_counter()
    if resume is not None:
        out = Path(resume)
        config = _resumed_config(out)
        if is_complete(out):
            info = json.loads((out / "model" / "model.json").read_text())
            test = {k.removeprefix("test_"): v for k, v in info.get("metrics", {}).items()}
            return RunResult(out, config, [], test=test, already_complete=True)
    else:
        out = _claim_out(config, overwrite, ctx)
    if not ctx.is_main:
        distributed.barrier()  # process 0 downloads and decodes first; the others read its cache
    data = load_run_data(config)
    if ctx.is_main:
        distributed.barrier()
    device = str(ctx.device) if ctx.distributed else None
    run = prepare(config, out=out, progress=progress, device=device, data=data)
    model, trainer, train, val, test = run.model, run.trainer, run.train, run.val, run.test
    warnings = untrained_views(config.tta, config.augment, data.train.shape)
    if resume is None:
        trainer.check(model, train)  # a bad option fails here, before the folder is made
        if ctx.is_main:
            clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
            _write_config(out, config, trainer, data, model)
    try:
        history = trainer.fit(model, train, val, resume=out if resume is not None else None)
    except Exception as e:
        if ctx.is_main:
            _write_failure(out, trainer, e)
        if isinstance(e, StriateError) and ctx.is_main:
            raise type(e)(f"{e}\n  the diagnosis is saved in {out / 'failed.json'}") from e
        raise
    result = RunResult(
        out,
        config,
        history,
        interrupted=trainer.interrupted,
        stop_reason=trainer.stop_reason,
        epoch=trainer.epoch,
        step=trainer.step,
        warnings=warnings,
    )
    if trainer.interrupted or not ctx.is_main:
        result.seconds = time.perf_counter() - start
        return result
    from striate.train.evaluation import per_sample, score

    final = trainer.eval_model
    outputs = per_sample(trainer, final, test)
    result.test = score(trainer, *outputs[:2])
    from striate.models.io import save_model

    save_model(
        out / "model",
        final,
        classes=data.train.classes,
        in_shape=data.train.shape,
        normalization=data.normalizer.state_dict(),
        metrics={f"test_{k}": v for k, v in result.test.items()},
    )
    (out / "failed.json").unlink(missing_ok=True)  # a diverged run resumed and finished
    result.seconds = time.perf_counter() - start
    write_run_report(out, config, trainer, data, result.test, outputs)
    return result


def _write_failure(out: Path, trainer: Trainer, error: Exception) -> None:
    """failed.json: why a run stopped with an error, so its folder explains itself."""
    write_json(
        out / "failed.json",
        {
            "error": str(error),
            "kind": type(error).__name__,
            "epoch": trainer.epoch,
            "step": trainer.step,
            "date": timestamp(),
        },
    )


def _write_config(
    out: Path, config: TrainConfig, trainer: Trainer, data: RunData, model: torch.nn.Module
) -> None:
    """config.json: the settings, and what they resolved to on this machine."""
    resolved = resolved_facts(
        trainer,
        model,
        classes=list(data.train.classes),
        in_shape=list(data.train.shape),
        train_images=len(data.train),
        val_images=0 if data.val is None else len(data.val),
        test_images=len(data.test),
    )
    resolved["replaced_head"] = getattr(model, "replaced_head", None)
    resolved["normalization"] = data.normalizer.state_dict()
    write_json(out / "config.json", {"config": config.to_dict(), "resolved": resolved})


def lr_find_run(
    config: TrainConfig,
    *,
    start: float = 1e-8,
    end: float = 10.0,
    num_steps: int = 100,
    out: Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
):
    """The LR finder on the training data of `config`; saves lr_find.png/json in `out` (a folder
    that holds results is refused unless `overwrite`)."""
    if out is not None:
        check_folder(out, overwrite)
    run = prepare(config, progress=False)
    result = run.trainer.lr_find(run.model, run.train, start=start, end=end, num_steps=num_steps)
    if out is not None:
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        result.plot().savefig(out / "lr_find.png", dpi=100, bbox_inches="tight")
        write_json(out / "lr_find.json", result.to_dict())
    return result
