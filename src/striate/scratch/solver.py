"""Minibatch training of a scratch `Model` with one of the `optim` optimisers.

    solver = Solver(model, SGD(lr=0.01), batch_size=64, epochs=5, seed=0)
    history = solver.fit(x_train, y_train, x_test, y_test)
    # epoch 1/5: loss 0.3921, val accuracy 93.12 %, lr 0.01 (4.1 s)

Each epoch visits the training set once in an order drawn from `numpy.random.default_rng(seed)`;
the last batch is smaller when the batch size does not divide the set. Schedules set the
optimiser's `lr`: "step" multiplies it by `gamma` every `step_epochs` epochs, "cosine" anneals it
from the initial value to 0 over all the steps of the run (Loshchilov & Hutter 2017, SGDR without
restarts: lr_t = lr_0 · (1 + cos(π t / T)) / 2).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from striate.checks import boolean, integer, one_of, positive_int, probability
from striate.errors import InputError
from striate.scratch.model import Model
from striate.scratch.optim import Optimizer

__all__ = ["SCHEDULES", "Solver"]

SCHEDULES = (None, "step", "cosine")


class Solver:
    """Trains `model` with `optimizer` on minibatches; `fit` returns one dict per epoch and, with
    `verbose`, passes a line per epoch to `log` (default: print, flushed, so it shows in logs and
    pipes too). `val_name` names the held-out set in that line ("val", "test")."""

    def __init__(
        self,
        model: Model,
        optimizer: Optimizer,
        batch_size: int = 64,
        epochs: int = 5,
        schedule: str | None = None,
        seed: int = 0,
        gamma: float = 0.1,
        step_epochs: int | None = None,
        verbose: bool = True,
        val_name: str = "val",
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.batch_size = positive_int("Solver", "batch_size", batch_size)
        self.epochs = positive_int("Solver", "epochs", epochs)
        self.schedule = one_of("Solver", "schedule", schedule, SCHEDULES)
        self.seed = integer("Solver", "seed", seed)
        self.gamma = probability("Solver", "gamma", gamma)
        # "step" by default decays twice in a run, as the usual recipes do
        self.step_epochs = positive_int(
            "Solver", "step_epochs", step_epochs if step_epochs is not None else max(1, epochs // 3)
        )
        self.verbose = boolean("Solver", "verbose", verbose)
        self.val_name = val_name
        self.log = log or (lambda line: print(line, flush=True))
        self.history: list[dict[str, Any]] = []

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> list[dict[str, Any]]:
        """Train for `epochs` epochs; each history entry holds epoch, loss (the mean training loss
        over the epoch's samples), lr, seconds and, given validation data, val_accuracy."""
        if len(x) != len(y) or len(x) == 0:
            raise InputError(
                f"Solver.fit: needs as many labels as samples, at least one, got {len(x)} "
                f"samples and {len(y)} labels"
            )
        if (x_val is None) != (y_val is None):
            raise InputError("Solver.fit: give both x_val and y_val, or neither")
        rng = np.random.default_rng(self.seed)
        base_lr = self.optimizer.lr
        steps_per_epoch = math.ceil(len(x) / self.batch_size)
        total_steps = steps_per_epoch * self.epochs
        self.history = []
        for epoch in range(self.epochs):
            start = time.perf_counter()
            if self.schedule == "step":
                self.optimizer.lr = base_lr * self.gamma ** (epoch // self.step_epochs)
            order = rng.permutation(len(x))
            loss_sum = 0.0
            for b in range(steps_per_epoch):
                if self.schedule == "cosine":
                    t = epoch * steps_per_epoch + b
                    self.optimizer.lr = base_lr * (1 + math.cos(math.pi * t / total_steps)) / 2
                index = order[b * self.batch_size : (b + 1) * self.batch_size]
                loss_sum += self.model.loss(x[index], y[index]) * len(index)
                self.optimizer.step(self.model.params(), self.model.grads())
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "loss": loss_sum / len(x),
                "lr": self.optimizer.lr,
            }
            if x_val is not None:
                record["val_accuracy"] = self.model.accuracy(x_val, y_val)
            record["seconds"] = time.perf_counter() - start
            self.history.append(record)
            if self.verbose:
                self.log(self.describe(record))
        self.optimizer.lr = base_lr  # a second fit starts its schedule afresh
        return self.history

    def describe(self, record: dict[str, Any]) -> str:
        """One line for an epoch's record."""
        line = f"epoch {record['epoch']}/{self.epochs}: loss {record['loss']:.4f}"
        if "val_accuracy" in record:
            line += f", {self.val_name} accuracy {100 * record['val_accuracy']:.2f} %"
        return line + f", lr {record['lr']:.3g} ({record['seconds']:.1f} s)"
