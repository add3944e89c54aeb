"""airbench94's network: the small residual-free ConvNet of the fastest CIFAR-10 trainings.

Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (2024, arXiv:2404.00498), file
``airbench94.py`` of github.com/KellerJordan/cifar10-airbench. For a 3×32×32 input::

    whiten: conv 2×2, no padding, 3 → 24, bias, weight frozen   (24×31×31)   then GELU
    3 × ConvGroup(w): conv3×3 → maxpool 2 → BN → GELU → conv3×3 → BN → GELU,  w = 64, 256, 256
                                                               (64×15×15, 256×7×7, 256×3×3)
    global max pool → linear 256 → classes, no bias → × 1/9

Details kept from airbench94:

- The first layer is a fixed patch-whitening filter bank (`whiten_init`): the eigenvectors of
  the 2×2 patch covariance of training images, scaled by ``1/sqrt(λ + 5e-4)``, and their
  negatives (so the GELU after it passes both signs). Its weight is never trained; airbench
  trains its bias for the first 3 epochs only (`striate.train.recipes.PatchWhitening`).
- 3×3 convolutions have no bias and start as identity maps on their first ``in_channels``
  filters (``dirac_``; "an implicit residual"), the others with PyTorch's default init.
- Batch norm: ``eps=1e-12``, momentum 0.4 in PyTorch's convention (airbench writes 0.6 for the
  weight of the old running statistics), scale frozen at 1, only the shift trained.
- The output is scaled by 1/9 (``scaling_factor``), which with label smoothing keeps the
  initial logits small. ``head_std`` rescales the head's initial weights to that standard
  deviation (airbench94_muon's head: std 1 and outputs divided by 256).

What striate expresses differently: airbench trains the batch-norm shifts at 64× the learning
rate of the other weights (``bias_scaler``), in its own optimiser group. Here the shift is
stored divided by ``bn_bias_scale`` = 8 and multiplied back in the forward pass: under SGD a
parameter used as ``s·p`` moves ``s²`` times as fast (its gradient is ``s`` times larger, and
the step is applied ``s`` times over), so the default trains the shifts at 8² = 64× the
learning rate with any optimiser group layout; the arithmetic is exact for SGD with momentum,
with or without Nesterov (under Adam the factor is ``s``, not ``s²``). airbench also decays the
shifts; striate's parameter groups exempt 1-D parameters from weight decay.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import int_sequence, positive_int, positive_number
from striate.errors import ConfigError
from striate.models.registry import CIFAR, check_io, register_variant

__all__ = ["FastNet", "ScaledShiftBatchNorm", "cifar_fast", "whiten_init"]


class ScaledShiftBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d with the scale frozen at 1 and the shift used as ``bias_scale · bias``.

    The larger ``bias_scale``, the faster SGD moves the shift (``bias_scale²`` times); see the
    module docstring.
    """

    def __init__(
        self, num_features: int, eps: float, momentum: float, bias_scale: float = 1.0
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.bias_scale = float(bias_scale)
        self.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise with batch statistics (training) or running statistics, then shift."""
        if self.training:
            self.num_batches_tracked.add_(1)
        return F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias * self.bias_scale,
            self.training,
            self.momentum,
            self.eps,
        )


def _conv3x3(c_in: int, c_out: int) -> nn.Conv2d:
    """A 3×3 'same' convolution without bias whose first ``c_in`` filters start as identities."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:c_in])
    return conv


class ConvGroup(nn.Module):
    """conv3×3 → maxpool 2 → BN → GELU → conv3×3 → BN → GELU (airbench's ConvGroup)."""

    def __init__(
        self, c_in: int, c_out: int, bn_momentum: float, bn_eps: float, bn_bias_scale: float
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = ScaledShiftBatchNorm(c_out, bn_eps, bn_momentum, bn_bias_scale)
        self.conv2 = _conv3x3(c_out, c_out)
        self.norm2 = ScaledShiftBatchNorm(c_out, bn_eps, bn_momentum, bn_bias_scale)
        self.activ = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    """airbench94's network: frozen patch whitening, three ConvGroups, max pool, scaled linear."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        widths: Sequence[int] = (64, 256, 256),
        whiten_kernel: int = 2,
        bn_momentum: float = 0.4,
        bn_eps: float = 1e-12,
        bn_bias_scale: float = 8.0,
        logit_scale: float = 1 / 9,
        head_std: float | None = None,
    ) -> None:
        super().__init__()
        owner = "FastNet"
        (c, h, w), num_classes = check_io(in_shape, num_classes, owner)
        widths = int_sequence(owner, "widths", widths, min_len=1)
        k = positive_int(owner, "whiten_kernel", whiten_kernel)
        if not isinstance(bn_momentum, numbers.Real) or not 0 < bn_momentum <= 1:
            raise ConfigError(
                f"{owner}: bn_momentum is PyTorch's weight of the new batch statistics and must "
                f"lie in (0, 1] (airbench's 0.4), got {bn_momentum!r}"
            )
        bn_eps = positive_number(owner, "bn_eps", bn_eps)
        bn_bias_scale = positive_number(owner, "bn_bias_scale", bn_bias_scale)
        logit_scale = positive_number(owner, "logit_scale", logit_scale)
        if head_std is not None:
            head_std = positive_number(owner, "head_std", head_std)
        # each group halves the size (rounding down), after the k×k unpadded whitening conv
        need = k - 1 + 2 ** len(widths)
        if min(h, w) < need:
            raise ConfigError(
                f"{owner}: a {k}×{k} whitening layer and {len(widths)} pooled groups need "
                f"images of at least {need}×{need}, got {h}×{w}; use fewer widths or larger "
                f"images"
            )

        self.whiten = nn.Conv2d(c, 2 * c * k * k, k, padding=0, bias=True)
        with torch.no_grad():
            self.whiten.bias.zero_()
        self.whiten.weight.requires_grad_(False)  # set by whiten_init, never trained
        self.activ = nn.GELU()
        groups, width = [], 2 * c * k * k
        for out in widths:
            groups.append(ConvGroup(width, out, float(bn_momentum), bn_eps, bn_bias_scale))
            width = out
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)  # airbench's MaxPool2d(3) on its 3×3 maps
        self.head = nn.Linear(width, num_classes, bias=False)
        if head_std is not None:  # airbench94_muon: PyTorch's init rescaled to std 1
            with torch.no_grad():
                self.head.weight.mul_(head_std / self.head.weight.std())
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), N×num_classes, for a batch N×C×H×W."""
        x = self.groups(self.activ(self.whiten(x)))
        return self.head(torch.flatten(self.pool(x), 1)) * self.logit_scale


def _patch_moments(images: torch.Tensor, k: int, chunk: int = 512) -> tuple[torch.Tensor, int]:
    """``Σ p pᵀ`` over every k×k patch p (flattened C·k·k, in conv-weight order), and the count."""
    d = images.shape[1] * k * k
    total = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    count = 0
    for part in images.split(chunk):
        # N×C×H'×W'×k×k → one row per patch, ordered (c, ky, kx) like a conv weight
        p = part.float().unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5)
        p = p.reshape(-1, d).double()
        total += p.T @ p
        count += p.shape[0]
    return total, count


@torch.no_grad()
def whiten_init(model: nn.Module, images: torch.Tensor, eps: float = 5e-4) -> nn.Module:
    """Set the whitening layer of ``model`` from ``images`` (N×C×H×W, as the model sees them).

    With ``Σ = E[p pᵀ]`` the second moment of the images' k×k patches (airbench uses 5,000
    normalised training images, whose mean is about zero) and ``Σ = V diag(λ) Vᵀ``, the filters
    are the eigenvectors by decreasing eigenvalue, each divided by ``sqrt(λ + eps)``, followed by
    their negatives; the bias is zeroed. The first half of the outputs then has second moment
    ``diag(λ / (λ + eps))``, about the identity: the patches are PCA-whitened, as in airbench
    (arXiv:2404.00498). ``model`` is a `FastNet` or its whitening conv layer.
    """
    layer = model.whiten if isinstance(model, FastNet) else model
    if not isinstance(layer, nn.Conv2d):
        raise ConfigError(
            f"whiten_init needs a FastNet (model 'cifar_fast') or its nn.Conv2d whitening "
            f"layer, got {type(model).__name__}"
        )
    c, (kh, kw) = layer.in_channels, layer.kernel_size
    d = c * kh * kw
    if kh != kw or layer.out_channels != 2 * d or layer.groups != 1 or layer.padding != (0, 0):
        raise ConfigError(
            f"whiten_init: the layer must be a square k×k conv without padding with 2·C·k·k "
            f"outputs (here {2 * d}), got {layer}"
        )
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != c:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ConfigError(
            f"whiten_init: images must be a float tensor N×{c}×H×W (normalised as the model "
            f"sees them), got {shape}"
        )
    if not images.is_floating_point():
        raise ConfigError(
            f"whiten_init: images must be floats normalised as the model sees them, got "
            f"{images.dtype}; convert (x.float() / 255) and normalise first"
        )
    if min(images.shape[2:]) < kh:
        raise ConfigError(
            f"whiten_init: images of {tuple(images.shape[2:])} are smaller than the {kh}×{kh} "
            f"patches"
        )
    if not isinstance(eps, numbers.Real) or not (math.isfinite(eps) and eps > 0):
        raise ConfigError(
            f"whiten_init: eps must be a small positive number (airbench: 5e-4), got {eps!r}"
        )
    total, count = _patch_moments(images, kh)
    if count < d:
        raise ConfigError(
            f"whiten_init: {count} patches cannot estimate a {d}×{d} covariance; give more images"
        )
    if not torch.isfinite(total).all():
        raise ConfigError("whiten_init: the images contain NaN or infinite values")
    eigenvalues, eigenvectors = torch.linalg.eigh(total / count)  # ascending
    eigenvalues, eigenvectors = eigenvalues.flip(0).clamp_min(0), eigenvectors.flip(1)
    filters = (eigenvectors.T / torch.sqrt(eigenvalues + eps)[:, None]).reshape(d, c, kh, kw)
    weight = torch.cat([filters, -filters])
    layer.weight.copy_(weight.to(layer.weight.dtype))
    if layer.bias is not None:
        layer.bias.zero_()
    return model


cifar_fast = register_variant(
    "cifar_fast",
    FastNet,
    "airbench94's fast CIFAR-10 net: patch whitening, 3 conv groups (64-256-256), 2.0M params.",
    **CIFAR,
)
