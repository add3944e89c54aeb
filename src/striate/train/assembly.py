"""The one assembly of a classification run from its TrainConfig, as the data-flow diagram
draws it: data (train/val/test, the normaliser) → model (weights loaded, layers frozen) → trainer
(its task and the callbacks of the config's features) → loaders on the trainer's device.

    run = prepare(TrainConfig(epochs=5))
    run.trainer.fit(run.model, run.train, run.val)

`striate train` (`run.py`), `lr-find`, the search's trials, the doctor and the benchmarks all
assemble their runs here, so they cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from striate import models
from striate.data import BatchLoader, ImageSet, Normalizer, load_dataset, train_val_split
from striate.data.augment import fit_to
from striate.data.augment_spec import parse_augment
from striate.data.splits import stratified_split
from striate.engine.callbacks import (
    EMA,
    Callback,
    EarlyStopping,
    GradientClipping,
    GradientNormLogger,
    Lookahead,
)
from striate.engine.classification import Classification
from striate.engine.loss_sampling import SGDS, ImportanceWeighted
from striate.engine.sampling import LossTable, SGDSSampler
from striate.engine.task import Task
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, StriateError
from striate.models.io import load_weights, model_folder, read_state_dict
from striate.models.weights import named_weights
from striate.threads import spare_busy_cores
from striate.train.config import TrainConfig
from striate.train.recipes import model_callbacks
from striate.train.snapshots import Snapshots
from striate.train.transfer import FreezeFrozen, finetune_parameters, head_name


@dataclass
class RunData:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet
    normalizer: Normalizer


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
    """Fine-tuning a striate model or named pretrained weights keeps the normalisation they were
    trained with; otherwise the statistics of the training data."""
    if config.weights is not None:
        named = named_weights(config.model, config.weights)
        try:
            info = json.loads((model_folder(config.weights) / "model.json").read_text())
        except (StriateError, OSError, ValueError):
            info = {}
        norm = info.get("normalization")
        if named is not None and named.mean is not None:  # pretrained: its own normalisation
            norm = {"mean": list(named.mean), "std": list(named.std)}
        if norm and len(norm.get("mean", ())) == data.train.shape[0]:
            return Normalizer.from_state_dict(norm)
    return data.normalizer


def build_model(config: TrainConfig, data: ImageSet) -> torch.nn.Module:
    """The model of `config`, with `config.weights` loaded: every key checked, except a head
    whose shape differs (another number of classes), which starts afresh."""

    torch.manual_seed(config.seed)
    model = models.create(
        config.model,
        num_classes=data.num_classes,
        in_shape=data.shape,
        init=config.init,
        **config.model_options,
    )
    if config.weights is not None:
        named = named_weights(config.model, config.weights)
        weights = read_state_dict(named.path() if named is not None else config.weights)
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

    groups, frozen = finetune_parameters(
        model, config.finetune, config.lr, config.lr_factor, config.weight_decay
    )
    return {"param_groups": groups, "callbacks": [FreezeFrozen(frozen)] if frozen else []}


def make_task(config: TrainConfig) -> Task:
    """The run's task: classification with the config's loss, smoothing and TTA (its losses
    weighted by the sampler's 1/(N·p) with sampling sgds-unbiased)."""
    task = Classification(config.loss, label_smoothing=config.label_smoothing, tta=config.tta)
    return ImportanceWeighted(task) if config.sampling == "sgds-unbiased" else task


def make_sampler(config: TrainConfig, size: int) -> SGDSSampler | None:
    """The loss-based sampler of `config.sampling` for a training set of `size` images (None:
    uniform). Every epoch draws `size` images, so --epochs and the schedule keep their meaning
    (the post draws as many as are still active: shorter epochs, the same draws per step)."""
    if config.sampling == "uniform":
        return None
    return SGDSSampler(
        LossTable(size),
        transient_epochs=config.sgds_transient,
        drop_fraction=config.sgds_drop,
        num_samples=size,
        reweight=config.sampling == "sgds-unbiased",
        seed=config.seed,
    )


def config_callbacks(config: TrainConfig, task: Task, out: Path | None) -> list[Callback]:
    """The callbacks the config's features ask for, one line per feature (the Trainer's loop
    knows none of them)."""
    every = None if config.snapshots is True else config.snapshots
    made = [
        config.log_grad_norm and GradientNormLogger(),  # first: the norm before any clipping
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
        opt_options=config.opt_options,
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
    config: TrainConfig,
    data: RunData,
    device: torch.device,
    sampler: SGDSSampler | None = None,
) -> tuple[BatchLoader, BatchLoader | None, BatchLoader]:
    augment = parse_augment(config.augment, data.train.shape, data.train.num_classes)
    if augment is not None:
        fit_to(augment, data.train.images)  # fancy PCA learns the training set's colours
    norm = data.normalizer
    train = BatchLoader(
        data.train,
        config.batch_size,
        shuffle=True,
        augment=augment,
        normalize=norm,
        device=device,
        seed=config.seed,
        sampler=sampler,
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
    (a torchrun process's own GPU), `callbacks` are added after the run's own. `config.threads`
    sets torch's CPU threads for the process; without it, a run on the CPU leaves out the cores
    that other processes keep busy (`striate.threads`)."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if data is None:
        data = load_run_data(config)
    data.normalizer = source_normalizer(config, data)
    model = build_model(config, data.train)
    extra = finetune_setup(config, model)
    sampler = make_sampler(config, len(data.train))
    sampling = [SGDS(sampler)] if sampler is not None else []
    extra["callbacks"] = [
        *extra.get("callbacks", []),
        *sampling,
        *model_callbacks(model),
        *callbacks,
    ]
    trainer = build_trainer(config, out, progress, device=device or config.device, **extra)
    if config.threads is None and trainer.device.type == "cpu":
        spare_busy_cores()
    train, val, test = loaders(config, data, trainer.device, sampler)
    return Prepared(config, data, model, trainer, train, val, test)
