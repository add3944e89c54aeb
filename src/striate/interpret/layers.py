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
from torch import nn

from striate.checks import did_you_mean
from striate.errors import ConfigError

__all__ = ["capture", "conv_layers", "find_layer", "last_conv", "resolve_targets"]


def _names(model: nn.Module) -> dict[str, nn.Module]:
    named = dict(model.named_modules())
    inner = getattr(model, "net", None)
    if isinstance(inner, nn.Module):  # ImageClassifier: its network's own names too
        named.update({k: m for k, m in inner.named_modules() if k and k not in named})
    return named


def find_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """The module called `layer` in `model` (or `layer` itself when it is a module of `model`)."""
    named = _names(model)
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in named.values()):
            raise ConfigError("the layer given is not a module of this model")
        return layer
    if isinstance(layer, str) and layer and layer in named:
        return named[layer]
    choices = [k for k in named if k]
    raise ConfigError(
        f"the model has no layer {layer!r}{did_you_mean(layer, choices)}; its layers are named "
        f"as model.named_modules() names them ({', '.join(choices[:3])}, …); "
        f"`striate models show NAME` lists them"
    )


def conv_layers(model: nn.Module) -> list[str]:
    """The names of the model's 2-D convolutions, in the order they were registered."""
    return [k for k, m in _names(model).items() if isinstance(m, nn.Conv2d)]


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
def capture(model: nn.Module, layer: str | nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record `layer`'s output in the list yielded, once per forward pass made inside the block."""
    module = find_layer(model, layer)
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        yield seen
    finally:
        handle.remove()


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
