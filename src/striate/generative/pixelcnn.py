"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016, "Pixel Recurrent Neural Networks",
§3.4): an autoregressive image model p(x) = Π_i p(x_i | x_<i) over pixels in raster order and,
within a pixel, over colours R → G → B, made causal by masking convolution weights.

A type-"A" mask (first layer) hides the centre pixel's own and later colour groups; type "B"
(every later layer) lets a group see itself. Feature maps are split into contiguous colour
groups (§3.4, Figure 2). Grey images have one group. The blocks are the paper's residual
1×1 → 3×3 → 1×1 blocks (Figure 5); the outputs are 256-way softmaxes per colour (§5.3) or, for
binarised images (`levels=2`), one Bernoulli logit per pixel (§5.1, binarised MNIST).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import integer, one_of, positive_int
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats
from striate.errors import ConfigError, InputError

__all__ = ["MaskedConv2d", "PixelCNN", "PixelModelling", "causal_mask"]


def _groups(n: int, colors: int) -> torch.Tensor:
    """The colour group of each of `n` channels: contiguous blocks, group j·colors // n."""
    return torch.arange(n) * colors // n


def causal_mask(
    out_channels: int, in_channels: int, kernel_size: int, mask_type: str, colors: int = 1
) -> torch.Tensor:
    """The 0/1 weight mask (out, in, k, k): taps above the centre row and left of the centre in
    its row are open; the centre tap is open from input group g to output group g' when g < g'
    (type A) or g ≤ g' (type B); everything right of or below the centre is closed."""
    k = kernel_size
    mask = torch.zeros(out_channels, in_channels, k, k)
    c = k // 2
    mask[:, :, :c, :] = 1
    mask[:, :, c, :c] = 1
    g_out, g_in = _groups(out_channels, colors)[:, None], _groups(in_channels, colors)[None, :]
    centre = g_out > g_in if mask_type == "A" else g_out >= g_in
    mask[:, :, c, c] = centre.float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded odd-sized convolution whose weight is multiplied by a causal mask in every
    forward, so gradient steps (which may move masked weights) cannot leak the future."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str = "B",
        colors: int = 1,
        bias: bool = True,
    ) -> None:
        one_of("MaskedConv2d", "mask_type", mask_type, ("A", "B"))
        k = int(positive_int("MaskedConv2d", "kernel_size", kernel_size))  # type: ignore[arg-type]
        if k % 2 == 0:
            raise ConfigError(
                f"MaskedConv2d: kernel_size must be odd (the mask is centred), got {k}; use {k + 1}"
            )
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if positive_int("MaskedConv2d", name, n) < colors:  # type: ignore[operator]
                raise ConfigError(
                    f"MaskedConv2d: {name} ({n}) must be at least colors ({colors}) so every "
                    f"colour group has a channel; use more channels"
                )
        super().__init__(in_channels, out_channels, k, padding=k // 2, bias=bias)
        self.mask_type, self.colors = mask_type, colors
        self.register_buffer(
            "mask",
            causal_mask(out_channels, in_channels, k, mask_type, colors),
            persistent=False,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, colors={self.colors}"


class _Residual(nn.Module):
    """The paper's residual block (Figure 5): ReLU → 1×1 (2h→h) → ReLU → 3×3 (h→h) → ReLU → 1×1
    (h→2h), all type-B masked, added to the input."""

    def __init__(self, width: int, colors: int) -> None:
        super().__init__()
        h = width // 2
        self.body = nn.Sequential(
            nn.ReLU(),
            MaskedConv2d(width, h, 1, "B", colors),
            nn.ReLU(),
            MaskedConv2d(h, h, 3, "B", colors),
            nn.ReLU(),
            MaskedConv2d(h, width, 1, "B", colors),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PixelCNN(nn.Module):
    """PixelCNN over images in [0, 1] (N×C×H×W, C = 1 or 3), quantised to `levels` values.

    `forward` returns logits: N×levels×C×H×W (a softmax per pixel and colour) or, for
    `levels=2`, N×C×H×W Bernoulli logits. `width` is the paper's 2h feature maps."""

    def __init__(
        self, channels: int = 1, levels: int = 256, width: int = 64, blocks: int = 5
    ) -> None:
        super().__init__()
        self.channels = one_of("PixelCNN", "channels", channels, (1, 3))
        self.levels = int(integer("PixelCNN", "levels", levels, low=2))  # type: ignore[arg-type]
        width = int(positive_int("PixelCNN", "width", width))  # type: ignore[arg-type]
        if width % (2 * channels):
            raise ConfigError(
                f"PixelCNN: width ({width}) must be a multiple of 2·channels ({2 * channels}) so "
                f"the blocks' h = width/2 maps split into colour groups; use {2 * channels * 16}"
            )
        blocks = int(positive_int("PixelCNN", "blocks", blocks))  # type: ignore[arg-type]
        self.binary = self.levels == 2
        out = channels if self.binary else channels * self.levels
        self.net = nn.Sequential(
            MaskedConv2d(channels, width, 7, "A", channels),
            *(_Residual(width, channels) for _ in range(blocks)),
            nn.ReLU(),
            MaskedConv2d(width, width, 1, "B", channels),
            nn.ReLU(),
            MaskedConv2d(width, out, 1, "B", channels),
        )

    def check_input(self, x: torch.Tensor) -> None:
        """Raise an InputError unless `x` is a batch of N×C×H×W images with the model's C."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise InputError(
                f"PixelCNN: images must be N×{self.channels}×H×W, got "
                f"{'×'.join(map(str, x.shape))}; pass image batches with {self.channels} channel(s)"
            )

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → integer levels 0 … levels−1 (levels=2: binarised at 0.5)."""
        return (x.float().clamp(0, 1) * (self.levels - 1)).round().long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        q = self.quantize(x)
        logits = self.net(q.float() * (2 / (self.levels - 1)) - 1)  # input centred in [−1, 1]
        if self.binary:
            return logits
        n, _, h, w = logits.shape  # channels are contiguous colour groups: (C, levels)
        return logits.view(n, self.channels, self.levels, h, w).transpose(1, 2)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """−log p(x) per image in nats (N,): the summed cross-entropy (or BCE) of every pixel and
        colour given those before it."""
        return self.losses(self(x), x).flatten(1).sum(1)

    def losses(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """−log p(x_i | x_<i) of every pixel and colour (N×C×H×W, fp32) given `forward`'s logits."""
        logits, q = logits.float(), self.quantize(x)
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits, q.float(), reduction="none")
        return F.cross_entropy(logits, q, reduction="none")

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """nll / (D · ln 2) per image, D = C·H·W (the paper's bits/dim)."""
        return self.nll(x) / (x[0].numel() * math.log(2))

    @torch.no_grad()
    def sample(
        self,
        n: int,
        shape: tuple[int, int],
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
    ) -> torch.Tensor:
        """`n` images (n×C×H×W in [0, 1]) of `shape` = (H, W), drawn pixel by pixel in raster order
        and colour by colour; each step runs the whole batch on the rows so far (the masks make
        rows below irrelevant). `temperature` divides the logits."""
        n = int(positive_int("PixelCNN.sample", "n", n))  # type: ignore[arg-type]
        if temperature <= 0:
            raise ConfigError(
                f"PixelCNN.sample: temperature must be > 0, got {temperature}; use 1.0"
            )
        h, w = (int(positive_int("PixelCNN.sample", "shape", s)) for s in shape)  # type: ignore[arg-type]
        device = next(self.parameters()).device
        x = torch.zeros(n, self.channels, h, w, device=device)
        for i in range(h):
            for j in range(w):
                for c in range(self.channels):
                    logits = self(x[:, :, : i + 1]).float() / temperature
                    if self.binary:
                        p = torch.sigmoid(logits[:, c, i, j])
                        v = torch.bernoulli(p, generator=generator)
                    else:
                        probs = F.softmax(logits[:, :, c, i, j], dim=1)
                        v = torch.multinomial(probs, 1, generator=generator)[:, 0].float()
                    x[:, c, i, j] = v / (self.levels - 1)
        return x


class PixelModelling(Task):
    """Train a `PixelCNN` by maximum likelihood: the loss is the mean NLL per dimension in nats;
    also reports bits per dimension (loss / ln 2). Images come from the loader in [0, 1]."""

    name = "pixelcnn"
    running_stats = ("loss", "bits_per_dim", "n")
    metrics = ("loss", "bits_per_dim")
    monitor = "val_loss"

    def setup(self, model: nn.Module, trainer: Any) -> None:
        inner = getattr(model, "module", model)
        if not isinstance(inner, PixelCNN):
            raise ConfigError(
                f"PixelModelling: the model must be a PixelCNN, got {type(inner).__name__}; "
                "build one with striate.generative.pixelcnn.PixelCNN"
            )

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x = batch[0]
        per = getattr(model, "module", model).losses(model(x), x)
        per_dim = per.flatten(1).mean(1)  # nats per dimension, per image
        loss = per_dim.mean()
        d = per_dim.detach()
        return Step(loss, stack_stats(d.sum(), d.sum() / math.log(2), len(x)), per_dim)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """Bits per dimension of each image (N,)."""
        return getattr(model, "module", model).bits_per_dim(x).float()


TASKS.add("pixelcnn", PixelModelling)
