"""Reconstruction as a Task: a model rebuilds its input (autoencoders, denoisers).

    Reconstruction("bce")     # binary cross-entropy per pixel (MNIST-like images in [0, 1])
    Reconstruction("mse")     # squared error of sigmoid(logits)

The model returns pixel logits shaped like its input; its input is the batch's images, which the
loader must leave in [0, 1] (no `normalize`). Training reports the running loss and PSNR;
evaluation the loss and the mean PSNR of the images, 10·log10(1 / MSE) per image with pixels in
[0, 1] (as `skimage.metrics.peak_signal_noise_ratio` with data_range 1), averaged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import one_of
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats
from striate.errors import ConfigError

LOSSES = ("bce", "mse")


def psnr(image: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image (the first dimension) against its target,
    for pixels in [0, 1]; `eps` bounds it for an exact copy (100 dB)."""
    mse = (image.float() - target.float()).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(eps))


class Reconstruction(Task):
    """Rebuild the input; see the module docstring."""

    name = "reconstruction"
    running_stats = ("loss", "psnr", "n")
    metrics = ("loss", "psnr")
    monitor = "val_loss"

    def __init__(self, loss: str = "bce") -> None:
        self.loss_name = one_of("Reconstruction", "loss", loss, LOSSES)

    def _loss(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if logits.shape != x.shape:
            raise ConfigError(
                f"Reconstruction: the model must return an output shaped like its input "
                f"{tuple(x.shape)}, got {tuple(logits.shape)}"
            )
        logits = logits.float()
        if self.loss_name == "bce":
            per_pixel = F.binary_cross_entropy_with_logits(logits, x.float(), reduction="none")
        else:
            per_pixel = F.mse_loss(logits.sigmoid(), x.float(), reduction="none")
        return per_pixel.flatten(1).mean(1)

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x = batch[0]
        logits = model(x)
        losses = self._loss(logits, x)  # each image's mean over its pixels
        loss = losses.mean()
        n = len(x)
        quality = psnr(logits.detach().sigmoid(), x).sum()
        return Step(loss, stack_stats(loss.detach().float() * n, quality, n), losses)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """Reconstructed images in [0, 1], shaped like `x`."""
        return model(x).float().sigmoid()


TASKS.add("reconstruction", Reconstruction)
