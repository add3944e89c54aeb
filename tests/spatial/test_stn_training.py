"""Slow: ST-CNN against the CNN baseline on RTS MNIST (the paper's Table 1 comparison, briefly):
the same data, batches, steps and seed; the spatial transformer must not do worse."""

from __future__ import annotations

import pytest
import torch

from striate import load_dataset, models
from striate.data import BatchLoader
from striate.engine import Trainer
from striate.models import stn as stn_models  # noqa: F401  (registers mnist_cnn, st_cnn)
from striate.spatial.variants import distorted_set


def error_of(name, train, test) -> float:
    torch.manual_seed(0)
    model = models.create(name, num_classes=10, in_shape=tuple(train.images.shape[1:]))
    trainer = Trainer(
        epochs=3, opt="adam", lr=3e-3, schedule="cosine", precision="fp32", device="cpu",
        seed=0, progress=False, tensorboard=False,
    )  # fmt: skip
    trainer.fit(model, BatchLoader(train, 64, device="cpu", seed=0))
    return 1 - trainer.evaluate(model, BatchLoader(test, 500, shuffle=False, device="cpu"))["acc"]


@pytest.mark.slow
def test_st_cnn_is_not_worse_than_the_cnn_on_rts(shared_data):
    train = distorted_set(load_dataset("mnist", "train", root=shared_data)[:3000], "RTS", 1)
    test = distorted_set(load_dataset("mnist", "test", root=shared_data)[:1000], "RTS", 2)
    cnn, st = error_of("mnist_cnn", train, test), error_of("st_cnn", train, test)
    assert st <= cnn + 0.02, (st, cnn)
    assert st < 0.5
