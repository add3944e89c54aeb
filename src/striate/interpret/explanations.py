"""Several images explained by several attribution methods, as one figure: a row per image (the
image, then each method's map over it), titled with what the network predicted. The run report
shows its highest-loss test images this way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from striate.errors import StriateError
from striate.interpret.figures import attribution_map, overlay, to_hwc
from striate.interpret.layers import conv_layers
from striate.interpret.methods import attribute

__all__ = ["explanations_figure", "usable_methods"]


def usable_methods(model: nn.Module, methods: Sequence[str]) -> list[str]:
    """`methods` less those the model cannot take (Grad-CAM without a convolution)."""
    return [m for m in methods if m != "grad-cam" or conv_layers(model)]


def explanations_figure(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    methods: Sequence[str] = ("saliency", "grad-cam"),
    titles: Sequence[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> Figure:
    """One row per input: the image, then the overlay of each method's map (for `target`, the
    predicted class by default). `options` gives a method's keyword options by name."""
    methods = usable_methods(model, methods)
    if not methods:
        raise StriateError("none of the methods applies to this model")
    maps = {m: attribute(m, model, inputs, target, (options or {}).get(m)) for m in methods}
    n, cols = len(inputs), len(methods) + 1
    fig = Figure(figsize=(1.9 * cols, 1.9 * n + 0.3))
    axes = fig.subplots(n, cols, squeeze=False)
    for i in range(n):
        image = to_hwc(inputs[i])
        panels = [image] + [
            overlay(image, attribution_map(maps[m][i : i + 1])[0], clip=0.99) for m in methods
        ]
        for j, (ax, pixels) in enumerate(zip(axes[i], panels, strict=True)):
            ax.imshow(pixels, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("image" if j == 0 else methods[j - 1], fontsize=9)
        if titles is not None:
            axes[i][0].set_ylabel(titles[i], fontsize=7)
    fig.tight_layout()
    return fig
