"""Shared by the tests of the pixel-optimising methods: a small CNN trained on synthetic images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate import models
from striate.models.io import ImageClassifier

CLASSES = ["red", "green", "horizontal", "vertical"]


def synthetic(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """0–1 images of four classes: a red tint, a green tint, horizontal, vertical stripes."""
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.5 + 0.1 * torch.randn(n, 3, 32, 32, generator=g)
    wave = 0.25 * torch.sin(torch.arange(32) * 1.2 + 6.3 * torch.rand(n, 1, generator=g))
    x[y == 0, 0] += 0.3
    x[y == 1, 1] += 0.3
    x[y == 2] += wave[y == 2].reshape(-1, 1, 32, 1)
    x[y == 3] += wave[y == 3].reshape(-1, 1, 1, 32)
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained() -> ImageClassifier:
    """A small CNN trained to 100% on `synthetic` (40 Adam steps, ~3 s), wrapped to take 0–1."""
    torch.manual_seed(0)
    net = models.create(
        "convnet_small", num_classes=4, in_shape=(3, 32, 32), channels=[8, 16], fc=[32]
    )
    model = ImageClassifier(net, CLASSES, (3, 32, 32), [0.5] * 3, [0.25] * 3)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(40):
        x, y = synthetic(64, g)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = synthetic(128, g)
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean() > 0.95
    return model
