"""Error rates of a trained model on its splits, for the error analysis."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from striate.data import ImageSet
from striate.errors import ConfigError


def measure_errors(
    model: nn.Module, sets: Mapping[str, ImageSet], *, batch_size: int = 256
) -> tuple[dict[str, float], dict[str, int]]:
    """Top-1 error rate and size of each set for a loaded model (`striate.models.load_model`),
    in evaluation mode and float32 (its `predict_proba`): the numbers do not depend on the
    hardware's bf16 support. A set whose class names are the model's in another order is
    relabelled by name; other class names are an error."""
    classes = tuple(getattr(model, "classes", ()))
    if not classes or not hasattr(model, "predict_proba"):
        raise ConfigError(
            "measure_errors takes a loaded model (striate.models.load_model) that knows its "
            "classes and input preparation"
        )
    errors, sizes = {}, {}
    for name, ds in sets.items():
        if len(ds) == 0:
            raise ConfigError(f"doctor: the {name} set is empty; give one with images")
        labels = ds.labels
        if tuple(ds.classes) != classes:
            if sorted(ds.classes) != sorted(classes):
                raise ConfigError(
                    f"doctor: the {name} set's classes ({', '.join(ds.classes[:5])}…) are not "
                    f"the model's ({', '.join(classes[:5])}…); give data of the same classes"
                )
            index = torch.as_tensor([classes.index(c) for c in ds.classes])
            labels = index[labels]
        pred = model.predict_proba(ds.images, batch_size).argmax(1)
        wrong = int((pred != labels.cpu()).sum())
        errors[name], sizes[name] = wrong / len(ds), len(ds)
    return errors, sizes
