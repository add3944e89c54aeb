"""Scoring a trained model: the test metrics of a run in one pass over the data, and
`striate evaluate` (a saved model on its run's own split, or on any dataset)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from striate.data import BatchLoader, ImageSet, load_dataset
from striate.engine.classification import Classification
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, StriateError
from striate.evaluate.confusion import confusion_matrix, per_class_accuracy
from striate.evaluate.tta import untrained_views
from striate.models.io import load_model, model_folder
from striate.train.assembly import load_run_data
from striate.train.config import TrainConfig


def per_sample(
    trainer: Trainer, model: torch.nn.Module, data: BatchLoader
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Probabilities, labels and cross-entropy of every sample of an unshuffled loader (in the
    dataset's order, on the CPU), in one pass over the data."""
    probs = trainer.predict(model, data)
    labels = data.data.labels.cpu()
    losses = -probs.clamp_min(1e-12).log().gather(1, labels[:, None]).squeeze(1)
    return probs, labels, losses


def score(trainer: Trainer, probs: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """`trainer.evaluate`'s numbers from `per_sample`'s probabilities, without a second pass
    over the data (`Classification.score`)."""
    return trainer.task.score(probs, labels)


def evaluation_data(
    model_path: str | Path, data: str | None, root: str | None, split: str | None
) -> tuple[ImageSet, str, TrainConfig | None]:
    """The images `evaluate_run` scores and a line saying which: by default the run's own
    dataset and test split (its subset and validation split reproduced from config.json);
    `data` names another dataset."""

    folder = model_folder(model_path)  # RUN/model, or RUN/snapshots/snapshot-K
    config_path = next(
        (p / "config.json" for p in (folder, *folder.parents[:2]) if (p / "config.json").is_file()),
        None,
    )
    config = None
    if config_path is not None:
        try:
            config = TrainConfig.from_dict(json.loads(config_path.read_text())["config"])
        except (StriateError, ValueError, KeyError, TypeError):
            config = None
    split = split or "test"
    if data is None:
        if config is None:
            raise ConfigError(
                f"{model_path} has no run settings (config.json) saying what it was trained on: "
                f"give --data NAME or PATH"
            )
        if split not in ("train", "val", "test"):
            raise ConfigError(f"--split of a run's own data is train, val or test, not {split!r}")
        parts = load_run_data(config)
        ds = {"train": parts.train, "val": parts.val, "test": parts.test}[split]
        if ds is None:
            raise ConfigError("the run held out no validation split (val_size 0): use --split test")
        label = f"{config.data}, the run's {split} split"
        return ds, label, config
    if root is None and config is not None and data == config.data:
        root = config.root
    ds = load_dataset(data, split, root)
    return ds, f"{data}, {split} split", config


def evaluate_run(
    model_path: str | Path,
    data: str | None = None,
    root: str | None = None,
    split: str | None = None,
    batch_size: int = 256,
    tta: bool | str = False,
    device: str = "auto",
) -> dict[str, Any]:
    """Accuracy, top-5, loss and per-class accuracy of a saved model on a dataset split: the run's
    own test split unless `data` is given. "data" in the result says which images were used and
    "warnings" lists TTA views the model was not trained on."""

    model = load_model(model_path, device="cpu")
    ds, label, config = evaluation_data(model_path, data, root, split)
    if tuple(ds.classes) != tuple(model.classes):
        raise ConfigError(
            f"{label} has classes {list(ds.classes)[:10]}, the model {list(model.classes)[:10]}: "
            f"evaluate on data with the model's classes"
        )
    loss = config.loss if config is not None else "cross_entropy"
    trainer = Trainer(epochs=1, task=Classification(loss, tta=tta), device=device, progress=True)
    model.to(trainer.device)
    x = BatchLoader(
        ds, batch_size, shuffle=False, device=trainer.device, normalize=lambda b: model.prepare(b)
    )
    probs, labels, _ = per_sample(trainer, model, x)
    metrics: dict[str, Any] = score(trainer, probs, labels)
    cm = confusion_matrix(labels.numpy(), probs.argmax(1).numpy(), len(ds.classes))
    metrics["per_class"] = dict(zip(ds.classes, per_class_accuracy(cm).tolist(), strict=True))
    metrics["images"] = len(ds)
    metrics["data"] = label
    augment = config.augment if config is not None else None
    metrics["warnings"] = untrained_views(tta, augment, tuple(model.in_shape))
    return metrics
