"""DCGAN's generator and discriminator (Radford, Metz & Chintala 2016), sized for 28×28 (MNIST,
Fashion-MNIST) and 32×32 (CIFAR-10) images with 1 or 3 channels.

The paper's guidelines (section 3): strided convolutions instead of pooling (fractionally strided
in G); batch norm in both networks except G's output layer and D's input layer; no fully
connected hidden layers; ReLU in G with Tanh at the output (images in [-1, 1]); LeakyReLU with
slope 0.2 in D; weights drawn from N(0, 0.02); Adam with lr 2e-4 and β₁ 0.5 (`ADAM`).

    G (32×32): z → 4×4×4w → 8×8×2w → 16×16×w → 32×32×C        (kernels 4, strides 1 then 2)
    G (28×28): z → 7×7×2w → 14×14×w → 28×28×C                  (kernel 7, then 4 stride 2)
    D mirrors G with strided convolutions and ends in one 4×4 (7×7) convolution to a logit.

The discriminator returns logits (no sigmoid): the losses in `gan.py` are written on logits.
"""

from __future__ import annotations

import torch
from torch import nn

from striate.checks import one_of, positive_int
from striate.errors import InputError
from striate.generative.gan import ADAM_BETAS, ADAM_LR

SIZES = (28, 32)
CHANNELS = (1, 3)
ADAM = {"lr": ADAM_LR, "betas": ADAM_BETAS}
"""The paper's optimiser settings for both networks (Trainer: opt="adam", lr=2e-4, momentum=0.5)."""


def _plan(size: int, width: int) -> tuple[int, list[int]]:
    """The first feature map's side and the widths from there to the last hidden layer."""
    if size == 32:
        return 4, [4 * width, 2 * width, width]
    return 7, [2 * width, width]


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: convolution weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02)
    and shifts 0 (as the PyTorch DCGAN example, since the paper leaves batch norm unsaid)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """N × latent_dim noise → N × channels × size × size images in [-1, 1]."""

    def __init__(
        self, latent_dim: int = 100, channels: int = 1, size: int = 28, width: int = 64
    ) -> None:
        super().__init__()
        self.latent_dim = positive_int("DCGANGenerator", "latent_dim", latent_dim)
        self.channels = one_of("DCGANGenerator", "channels", channels, CHANNELS)
        self.size = one_of("DCGANGenerator", "size", size, SIZES)
        width = positive_int("DCGANGenerator", "width", width)
        side, widths = _plan(size, width)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], side, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [
                nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.reshape(len(z), self.latent_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """N × channels × size × size images → N logits of "real"."""

    def __init__(self, channels: int = 1, size: int = 28, width: int = 64) -> None:
        super().__init__()
        self.channels = one_of("DCGANDiscriminator", "channels", channels, CHANNELS)
        self.size = one_of("DCGANDiscriminator", "size", size, SIZES)
        width = positive_int("DCGANDiscriminator", "width", width)
        side, widths = _plan(size, width)
        widths = widths[::-1]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1),  # no batch norm on D's input layer
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for a, b in zip(widths, widths[1:], strict=False):
            layers += [
                nn.Conv2d(a, b, 4, 2, 1, bias=False),
                nn.BatchNorm2d(b),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, side, 1, 0))
        self.net = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.channels, self.size, self.size):
            raise InputError(
                f"DCGANDiscriminator: expected images shaped N×{self.channels}×{self.size}×"
                f"{self.size}, got {tuple(x.shape)}; build the networks for this dataset's "
                "channels and size"
            )
        return self.net(x).reshape(len(x))
