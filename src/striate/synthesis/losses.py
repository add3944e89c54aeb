"""The perceptual losses: content, style (Gram matrices), total variation.

Gram matrix of a layer's features F (C channels × M = H·W positions): G = F Fᵀ, the channels'
co-activations summed over positions. Gatys et al. (2016, eq. 3–4) sum, and weight each layer's
squared Gram difference by 1/(4 C² M²); the lecture's slides call G an average. Here
``normalize`` says which: "positions" divides by M (the slides' average, and then Gatys' E_l is
¼·mean((G − A)²)), "size" by C·M (Johnson et al. 2016, the default: layers of different widths
weigh alike), "none" keeps the sum. The style loss of a layer is the mean squared difference of
the Gram matrices; the content loss the mean squared difference of the features.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from striate.errors import ConfigError, InputError
from striate.interpret.inversion import total_variation

__all__ = [
    "GRAM_NORMALIZATIONS",
    "blend_grams",
    "content_loss",
    "gram_matrix",
    "style_loss",
    "total_variation",
]

GRAM_NORMALIZATIONS = ("size", "positions", "none")


def gram_matrix(features: torch.Tensor, normalize: str = "size") -> torch.Tensor:
    """N×C×C Gram matrices of N×C×H×W features (see the module's note for `normalize`)."""
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features)
        raise InputError(f"gram_matrix: features must be N×C×H×W, got {got}")
    if normalize not in GRAM_NORMALIZATIONS:
        raise ConfigError(
            f"gram_matrix: normalize must be one of {', '.join(GRAM_NORMALIZATIONS)}, "
            f"got {normalize!r}"
        )
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    g = f @ f.transpose(1, 2)
    if normalize == "size":
        return g / (c * h * w)
    if normalize == "positions":
        return g / (h * w)
    return g


def blend_grams(
    grams: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float] | None = None
):
    """One style target from several: per layer, Σ_k w_k G_k / Σ_k w_k (equal weights by default).
    Each G_k is 1×C×C (or C×C); layers must be the same in all."""
    if not grams:
        raise ConfigError("blend_grams: give at least one style")
    weights = [1.0] * len(grams) if weights is None else [float(w) for w in weights]
    if len(weights) != len(grams) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(
            f"style weights must be {len(grams)} non-negative numbers with a positive sum, "
            f"got {weights}"
        )
    total = sum(weights)
    return {
        layer: sum(w * g[layer] for w, g in zip(weights, grams, strict=True)) / total
        for layer in grams[0]
    }


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between features and the content's features."""
    return F.mse_loss(features, target.expand_as(features))


def style_loss(
    features: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    layer_weights: Mapping[str, float] | None = None,
    normalize: str = "size",
) -> torch.Tensor:
    """Σ_l w_l · mean((G_l(features) − targets_l)²) over the layers of `targets` (weights 1/L by
    default, as Gatys et al. weigh their five layers)."""
    if layer_weights is None:
        layer_weights = {layer: 1.0 / len(targets) for layer in targets}
    total = 0.0
    for layer, target in targets.items():
        g = gram_matrix(features[layer], normalize)
        total = total + layer_weights[layer] * F.mse_loss(g, target.expand_as(g))
    return total
