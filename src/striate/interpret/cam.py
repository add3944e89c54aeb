"""Grad-CAM: where in a convolutional layer's map the evidence for a class lies.

Selvaraju et al. (ICCV 2017, eq. 1–2): with A^k the k-th channel of a layer's output and y^c the
class's logit, α_k = (1/Z) Σ_ij ∂y^c/∂A^k_ij (the spatial mean of the gradient) and the map is
ReLU(Σ_k α_k A^k), at the layer's resolution, upsampled bilinearly to the input's for display.
The default layer is the model's last convolution (`layers.last_conv`), as in the paper.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import boolean
from striate.errors import ConfigError
from striate.interpret.gradients import (
    class_scores,
    pick,
    targets_of,
)
from striate.interpret.layers import check_inputs, evaluating, find_layer, last_conv

__all__ = ["grad_cam"]


def grad_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    layer: str | nn.Module | None = None,
    relu: bool = True,
    upsample: bool = True,
) -> torch.Tensor:
    """The Grad-CAM map of the target class, N×1×H×W at the inputs' size (bilinear, as captum's
    ``LayerAttribution.interpolate(…, "bilinear")``), or at the layer's size when not `upsample`
    (captum's ``LayerGradCam``). `layer` is a name as ``model.named_modules()`` gives it (or the
    module); its output must be N×C×h×w. `relu=False` keeps the negative evidence.
    """
    owner = "grad_cam"
    x = check_inputs(owner, inputs)
    relu = boolean(owner, "relu", relu)
    upsample = boolean(owner, "upsample", upsample)
    name = last_conv(model, "Grad-CAM") if layer is None else layer
    module = find_layer(model, name)
    label = name if isinstance(name, str) else type(name).__name__
    seen: list[Any] = []

    def keep(_m: nn.Module, _i: Any, out: Any) -> Any:
        seen.append(out)
        # a copy goes on, so that an in-place op after the layer (ReLU(inplace=True)) cannot
        # change the activations kept here (captum does the same)
        return out.clone() if isinstance(out, torch.Tensor) else None

    handle = module.register_forward_hook(keep)
    try:
        with evaluating(model), torch.enable_grad():
            out = class_scores(owner, model, x.requires_grad_(True))
            t = targets_of(model, target, out)
            acts = _one_map(seen, label)
            (grads,) = torch.autograd.grad(pick(out, t).sum(), acts)
    finally:
        handle.remove()
    alpha = grads.mean((2, 3), keepdim=True)
    cam = (alpha * acts.detach()).sum(1, keepdim=True)
    if relu:
        cam = cam.clamp(min=0)
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam


def _one_map(seen: list[Any], label: str) -> torch.Tensor:
    """The layer's single output, checked to be N×C×h×w and part of the graph."""
    if len(seen) != 1:
        what = "did not run" if not seen else f"ran {len(seen)} times"
        raise ConfigError(
            f"grad_cam: layer {label!r} {what} in the model's forward pass; give a layer that "
            f"runs once per forward pass"
        )
    acts = seen[0]
    if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
        got = tuple(acts.shape) if isinstance(acts, torch.Tensor) else type(acts).__name__
        raise ConfigError(
            f"grad_cam: layer {label!r} must give a feature map N×C×H×W, got {got}; give a "
            f"convolutional layer (striate.interpret.conv_layers lists them)"
        )
    if not acts.requires_grad:
        raise ConfigError(f"grad_cam: layer {label!r}'s output does not depend on the input")
    return acts
