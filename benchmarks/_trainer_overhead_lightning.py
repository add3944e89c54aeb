"""The PyTorch Lightning side of trainer_overhead.py: the same job as a LightningModule.

Kept apart so that the main script runs (without the Lightning rows) where the `bench` extra is
not installed; importing this module imports Lightning.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.imports import _RICH_AVAILABLE
from torch import nn

VERSION = L.__version__
BAR = "rich" if _RICH_AVAILABLE else "TQDM"  # the bar Lightning picks by default

# "GPU available: False ..." and the model summary go to the log; the table is the output here.
for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class _Classifier(L.LightningModule):
    """`model` trained with cross entropy and SGD; the loss is logged every step (progress bar and
    CSV) and kept as a float, as the Trainer and the hand-written loop keep it."""

    def __init__(self, model: nn.Module, lr: float, momentum: float) -> None:
        super().__init__()
        self.model, self.lr, self.momentum = model, lr, momentum
        self.losses: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(y))
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=self.momentum)


def lightning_fit(
    model: nn.Module,
    loader,
    epochs: int,
    out: Path,
    *,
    lr: float,
    momentum: float,
    device: torch.device,
) -> list[float]:
    """Train `model` in place with `L.Trainer` on `loader`'s batches; the loss of every step.

    The BatchLoader goes to `fit` as it is (Lightning takes any iterable with a length), so the
    batches, their order and their cost are those of the other programs.
    """
    module = _Classifier(model, lr, momentum)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.type == "cuda" else device.type,
        devices=1,
        precision="32-true",
        logger=CSVLogger(out),
        log_every_n_steps=1,  # the Trainer records every step's loss too
        enable_checkpointing=True,
        enable_progress_bar=True,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    with warnings.catch_warnings():
        # "does not have many workers": the batches are already in memory on the device;
        # LeafSpec: Lightning's own use of a torch API that newer torch deprecates.
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, train_dataloaders=loader)
    return module.losses
