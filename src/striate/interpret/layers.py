"""What every method shares: a layer found by name, its activations captured, the target classes.

Layers are named as ``model.named_modules()`` names them (``features.28``, ``layer4.1.conv2``);
for a model wrapped with its normalisation (`striate.models.io.ImageClassifier`, which is what
`load_model` and `pretrained` return) the wrapped network's names work as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import did_you_mean
from striate.errors import ConfigError, InputError

__all__ = [
    "capture",
    "check_inputs",
    "conv_layers",
    "evaluating",
    "features_at",
    "find_layer",
    "gaussian_blur",
    "last_conv",
    "last_linear",
    "layer_output",
    "placement",
    "resolve_targets",
]


def _names(model: nn.Module) -> dict[str, nn.Module]:
    """Every module by name; for an ImageClassifier its network's own names come first (and the
    wrapper's ``net.``-prefixed ones after, so both are found)."""
    inner = getattr(model, "net", None)
    named = {}
    if isinstance(inner, nn.Module):
        named.update({k: m for k, m in inner.named_modules() if k})
    named.update({k: m for k, m in model.named_modules() if k not in named})
    return named


def _unique(named: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """One name per module (the first)."""
    seen: set[int] = set()
    return {k: m for k, m in named.items() if not (id(m) in seen or seen.add(id(m)))}


def check_inputs(
    owner: str, inputs: Any, name: str = "inputs", *, images: bool = True
) -> torch.Tensor:
    """`inputs` if it is a float tensor N×C×H×W (N×… when not `images`) with N ≥ 1 and finite
    values, detached from any graph; otherwise one InputError line saying how to fix it."""
    ok = (
        isinstance(inputs, torch.Tensor)
        and inputs.is_floating_point()
        and (inputs.dim() == 4 if images else inputs.dim() in (2, 4, 5))
        and inputs.shape[0] > 0
    )
    if not ok:
        got = (
            f"a {inputs.dtype} tensor of shape {tuple(inputs.shape)}"
            if isinstance(inputs, torch.Tensor)
            else type(inputs).__name__
        )
        raise InputError(
            f"{owner}: {name} must be a float tensor N×C×H×W with N ≥ 1 (the model's own input, "
            f"e.g. images on the 0–1 scale for a pretrained model), got {got}; add the batch "
            f"dimension with x[None], convert uint8 images with x.float() / 255"
        )
    if not torch.isfinite(inputs).all():
        raise InputError(f"{owner}: {name} has NaN or infinite values")
    return inputs.detach()


def find_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The module called `layer` in `model` (or `layer` itself when it is a module of `model`)."""
    named = _names(model)
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in named.values()):
            raise ConfigError("the layer given is not a module of this model")
        return layer
    if isinstance(layer, str) and layer and layer in named:
        return named[layer]
    choices = [k for k in _unique(named) if k]
    raise ConfigError(
        f"the model has no layer {layer!r}{did_you_mean(layer, choices)}; its layers are named "
        f"as model.named_modules() names them ({', '.join(choices[:3])}, …); "
        f"`striate models show NAME` lists them"
    )


def conv_layers(model: nn.Module) -> list[str]:
    """The names of the model's 2-D convolutions, in the order they were registered."""
    return [k for k, m in _unique(_names(model)).items() if isinstance(m, nn.Conv2d)]


def last_conv(model: nn.Module, method: str = "this method") -> str:
    """The name of the model's last convolution: Grad-CAM's default layer."""
    convs = conv_layers(model)
    if not convs:
        raise ConfigError(
            f"{method} needs a convolutional layer and this model ({type(model).__name__}) has "
            f"none; give a layer whose output is N×C×H×W with --layer / layer="
        )
    return convs[-1]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode inside the block; every module's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype of the model's first floating parameter or buffer (CPU
    float32 if it has none): where and how inputs are made for it."""
    for t in [*model.parameters(), *model.buffers()]:
        if t.is_floating_point():
            return t.device, t.dtype
    return torch.device("cpu"), torch.float32


@contextmanager
def capture(model: nn.Module, layer: str | nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record `layer`'s output in the list yielded, once per forward pass made inside the block."""
    module = find_layer(model, layer)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


def gaussian_blur(x: torch.Tensor, sigma: float, radius: int | None = None) -> torch.Tensor:
    """Each channel of `x` (N×C×H×W) blurred by a Gaussian of `sigma` pixels: separable, a window
    of 2·radius + 1 taps (radius round(3σ) by default), edges repeated (scipy's
    ``gaussian_filter(mode="nearest")``)."""
    radius = int(3 * sigma + 0.5) if radius is None else radius
    if radius == 0 or sigma == 0:
        return x.clone()
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.device, x.dtype)
    c = x.shape[1]
    rows = kernel.reshape(1, 1, 1, -1).expand(c, 1, 1, -1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), rows, groups=c)
    cols = kernel.reshape(1, 1, -1, 1).expand(c, 1, -1, 1)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), cols, groups=c)


def layer_output(seen: list[Any], layer: Any, owner: str) -> torch.Tensor:
    """The last output `capture` recorded for `layer`, or one line saying why there is none."""
    if not seen:
        raise ConfigError(
            f"{owner}: layer {layer!r} was not called in the forward pass; pick a layer the "
            f"model uses"
        )
    out = seen[-1]
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"{owner}: layer {layer!r} outputs a {type(out).__name__}, not a tensor; pick a "
            f"layer whose output is a tensor (N×C×H×W)"
        )
    return out


def resolve_targets(
    target: Any, outputs: torch.Tensor, classes: Sequence[str] | None = None
) -> torch.Tensor:
    """One class index per row of `outputs` (N×K scores): the predicted class when `target` is
    None; an int, a class name or one per row otherwise; out-of-range classes are an error."""
    n, k = outputs.shape
    if target is None:
        return outputs.detach().argmax(1)
    items = target.tolist() if isinstance(target, torch.Tensor) else target
    if not isinstance(items, (list, tuple)):
        items = [items] * n
    if len(items) != n:
        raise ConfigError(f"target: give one class or one per image ({n}), got {len(items)}")
    indices = []
    for t in items:
        if isinstance(t, str) and classes is not None and t in classes:
            t = list(classes).index(t)
        elif isinstance(t, str) and t.lstrip("-").isdigit():
            t = int(t)
        if isinstance(t, bool) or not isinstance(t, int):
            hint = did_you_mean(t, classes) if classes is not None else ""
            raise ConfigError(f"target: unknown class {t!r}{hint}; give a class index or name")
        if not 0 <= t < k:
            raise ConfigError(
                f"target class {t} is out of range: the model has {k} classes (0–{k - 1})"
            )
        indices.append(t)
    return torch.tensor(indices, device=outputs.device)


def last_linear(model: nn.Module) -> str:
    """The name of the model's last fully connected layer (the classifier)."""
    linear = [k for k, m in _unique(_names(model)).items() if isinstance(m, nn.Linear)]
    if not linear:
        raise ConfigError(
            "the model has no nn.Linear classifier: give the layer to read features at"
        )
    return linear[-1]


@torch.no_grad()
def features_at(
    model: nn.Module, inputs: torch.Tensor, layer: str | nn.Module | None = None,
    batch_size: int = 256,
) -> torch.Tensor:  # fmt: skip
    """One feature vector per input (N×D, float32 on the CPU): `layer`'s output flattened, or by
    default what the last fully connected layer reads (the penultimate features), computed
    `batch_size` inputs at a time in eval mode."""
    module = find_layer(model, layer if layer is not None else last_linear(model))
    seen: list[torch.Tensor] = []
    if layer is None:
        hook = module.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    else:
        hook = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        rows = []
        with evaluating(model):
            for start in range(0, len(inputs), batch_size):
                seen.clear()
                model(inputs[start : start + batch_size])
                rows.append(seen[0].flatten(1).float().cpu())
    finally:
        hook.remove()
    return torch.cat(rows)
