"""What every detector shares: one call for training and detection.

In training mode `model(x, targets)` returns the dict of the detector's named losses
(`loss_names`) for `targets` = (boxes B×M×4, labels B×M with −1 padding and −2 crowd); in
evaluation mode `model(x)` returns `detect(x)`, the per-image detections."""

from __future__ import annotations

import torch
from torch import nn

from striate.errors import InputError


class Detector(nn.Module):
    """Base of the detectors: subclasses give `name`, `loss_names`, `losses` and `detect`."""

    name = "detector"
    loss_names: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor] | None = None):
        if self.training:
            if targets is None:
                raise InputError(
                    f"{self.name}: in training mode the model needs targets (boxes, labels); "
                    f"call model.eval() to detect"
                )
            return self.losses(x, targets)
        return self.detect(x)
