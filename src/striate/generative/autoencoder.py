"""Autoencoders: an encoder squeezes an image into a short code, a decoder rebuilds the image.

    Autoencoder(in_shape=(1, 28, 28), latent=32)               # fully connected (MNIST)
    Autoencoder(in_shape=(3, 32, 32), latent=64, kind="conv")  # strided convolutions

The decoder returns logits, one per pixel: `sigmoid(logits)` is the image in [0, 1]. Keeping the
sigmoid out of the model lets the BCE loss use the stable `binary_cross_entropy_with_logits`
(Goodfellow et al., Deep Learning, §14: an undercomplete autoencoder trained to copy its input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from striate.checks import int_sequence, one_of, positive_int
from striate.errors import ConfigError

KINDS = ("mlp", "conv")


class Autoencoder(nn.Module):
    """Encoder → code of `latent` numbers → decoder (pixel logits); see the module docstring.

    `hidden` are the widths of the hidden layers (mlp) or the channels of the stride-2
    convolutions (conv, which needs a height and width divisible by 2**len(hidden))."""

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        latent: int = 32,
        hidden: Sequence[int] = (256,),
        kind: str = "mlp",
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int_sequence("Autoencoder", "in_shape", in_shape, min_len=3))
        if len(self.in_shape) != 3:
            raise ConfigError(f"Autoencoder: in_shape must be (C, H, W), got {in_shape!r}")
        self.latent = positive_int("Autoencoder", "latent", latent)
        self.kind = one_of("Autoencoder", "kind", kind, KINDS)
        hidden = tuple(int_sequence("Autoencoder", "hidden", hidden, min_len=0))
        c, h, w = self.in_shape
        if kind == "mlp":
            sizes = [c * h * w, *hidden, self.latent]
            self.encoder = nn.Sequential(nn.Flatten(), *_dense(sizes, last_activation=False))
            self.decoder = nn.Sequential(
                *_dense(sizes[::-1], last_activation=False), nn.Unflatten(1, self.in_shape)
            )
            return
        scale = 2 ** len(hidden)
        if not hidden or h % scale or w % scale:
            raise ConfigError(
                f"Autoencoder: kind 'conv' halves the image once per entry of hidden {hidden}: "
                f"height and width must be divisible by {scale}, got {h}×{w}"
            )
        channels = [c, *hidden]
        down: list[nn.Module] = []
        for a, b in zip(channels[:-1], channels[1:], strict=True):
            down += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()]
        code_shape = (channels[-1], h // scale, w // scale)
        flat = code_shape[0] * code_shape[1] * code_shape[2]
        self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(flat, self.latent))
        up: list[nn.Module] = [nn.Linear(self.latent, flat), nn.ReLU(), nn.Unflatten(1, code_shape)]
        rev = channels[::-1]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:], strict=True)):
            up.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1))
            if i < len(rev) - 2:
                up.append(nn.ReLU())
        self.decoder = nn.Sequential(*up)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel logits of the reconstruction, shaped like `x`."""
        return self.decoder(self.encoder(x))


def _dense(sizes: Sequence[int], last_activation: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return layers
