"""Instance normalisation and conditional instance normalisation, from their formulas.

Instance norm (Ulyanov et al. 2016) normalises each image's channel over its H×W positions:
y = γ_c (x − μ_nc) / √(σ²_nc + ε) + β_c, with μ, σ² the mean and biased variance over H×W. It
replaces batch norm in the fast style-transfer network (the image's own contrast is removed, which
the lecture's slides show improves the results).

Conditional instance norm (Dumoulin, Shlens & Kudlur 2017, §2.1, eq. 5) keeps one (γ_s, β_s) per
style s, an S×C table, and normalises with the row of the style asked for; a network with it
renders S styles. Blending styles after training (§4, "convex combination") mixes the rows:
γ = Σ_s w_s γ_s, β = Σ_s w_s β_s, with w ≥ 0 summing to 1.
"""

from __future__ import annotations

import torch
from torch import nn

from striate.checks import positive_int, positive_number
from striate.errors import InputError

__all__ = ["ConditionalInstanceNorm2d", "InstanceNorm2d", "instance_norm", "style_weights"]

Style = int | torch.Tensor | None


def instance_norm(
    x: torch.Tensor,
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Each image's channels normalised over H×W (biased variance), then scaled by `gamma` and
    shifted by `beta` (C, or N×C for a scale per image)."""
    var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
    y = (x - mean) * torch.rsqrt(var + eps)
    if gamma is not None:
        y = y * gamma.reshape(-1 if gamma.dim() == 2 else 1, x.shape[1], 1, 1)
    if beta is not None:
        y = y + beta.reshape(-1 if beta.dim() == 2 else 1, x.shape[1], 1, 1)
    return y


def _check_input(owner: str, x: torch.Tensor, channels: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{owner}: input must be N×{channels}×H×W, got {got}")


class InstanceNorm2d(nn.Module):
    """Instance normalisation with a learned per-channel γ, β (`affine`); see the module note.
    Equals ``torch.nn.InstanceNorm2d(channels, eps, affine=affine)``."""

    def __init__(self, channels: int, affine: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = positive_int("InstanceNorm2d", "channels", channels)
        self.eps = positive_number("InstanceNorm2d", "eps", eps)
        self.affine = bool(affine)
        if self.affine:
            self.weight = nn.Parameter(torch.ones(channels))
            self.bias = nn.Parameter(torch.zeros(channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("InstanceNorm2d", x, self.channels)
        return instance_norm(x, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, affine={self.affine}"


def style_weights(style: Style, styles: int, n: int) -> torch.Tensor | int:
    """`style` checked against `styles`: an int index, a LongTensor of `n` indices, or an n×S
    (or S) float tensor of mixing weights, made non-negative rows summing to 1. None means
    style 0 of a one-style network."""
    owner = "style"
    if style is None:
        if styles != 1:
            raise InputError(
                f"{owner}: this network renders {styles} styles; say which (an index 0–"
                f"{styles - 1}) or give mixing weights"
            )
        return 0
    if isinstance(style, bool) or not isinstance(style, (int, torch.Tensor)):
        raise InputError(
            f"{owner}: give an int index, a tensor of indices or a tensor of mixing weights, "
            f"got {type(style).__name__}"
        )
    if isinstance(style, int):
        if not 0 <= style < styles:
            raise InputError(f"{owner}: index must be in 0–{styles - 1}, got {style}")
        return style
    if not style.is_floating_point():
        if style.dim() != 1 or len(style) != n:
            raise InputError(
                f"{owner}: indices must be a 1-D tensor of {n} (one per image), "
                f"got shape {tuple(style.shape)}"
            )
        if len(style) and (int(style.min()) < 0 or int(style.max()) >= styles):
            raise InputError(
                f"{owner}: indices must be in 0–{styles - 1}, got "
                f"{int(style.min())}–{int(style.max())}"
            )
        return style.long()
    w = style.reshape(1, -1) if style.dim() == 1 else style
    if w.dim() != 2 or w.shape[1] != styles or len(w) not in (1, n):
        raise InputError(
            f"{owner}: mixing weights must be {n}×{styles} (or {styles} for every image), "
            f"got shape {tuple(style.shape)}"
        )
    total = w.sum(1, keepdim=True)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or bool((total <= 0).any()):
        raise InputError(
            f"{owner}: mixing weights must be finite, non-negative and not all zero, "
            f"got {w.tolist() if w.numel() <= 16 else 'other values'}"
        )
    return (w / total).expand(n, styles)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one (γ_s, β_s) per style (`weight`, `bias`: S×C); see the module note.

    ``forward(x, style)``: `style` is an int (every image that style), a LongTensor of N indices,
    or N×S (or S) float mixing weights, normalised to sum 1, that blend the styles' γ and β."""

    def __init__(self, channels: int, styles: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = positive_int("ConditionalInstanceNorm2d", "channels", channels)
        self.styles = positive_int("ConditionalInstanceNorm2d", "styles", styles)
        self.eps = positive_number("ConditionalInstanceNorm2d", "eps", eps)
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, style: Style = None) -> torch.Tensor:
        _check_input("ConditionalInstanceNorm2d", x, self.channels)
        return self.normalize(x, style_weights(style, self.styles, len(x)))

    def normalize(self, x: torch.Tensor, style: torch.Tensor | int) -> torch.Tensor:
        """`forward` for a `style` already checked by `style_weights` (a network checks once)."""
        if isinstance(style, int) or not style.is_floating_point():
            gamma, beta = self.weight[style], self.bias[style]
        else:
            w = style.to(self.weight.dtype)
            gamma, beta = w @ self.weight, w @ self.bias
        return instance_norm(x, gamma, beta, self.eps)

    def extra_repr(self) -> str:
        return f"{self.channels}, styles={self.styles}, eps={self.eps}"
