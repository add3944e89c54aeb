"""Features of named layers, the eyes of every synthesis method.

VGG layers have the names of Gatys et al. and Johnson et al. (``conv4_2``, ``relu1_1``, ``pool3``:
block and position inside the block), mapped to torchvision's ``features.N``. Any other zoo model
works with its module names (``layer3.1.conv2``). A `FeatureExtractor` takes 0–1 images, applies
the normalisation the weights were trained with, runs the network only as deep as the deepest
layer asked for, and returns each layer's output by name. Gatys et al. (2016, §2) replace VGG's
max-pooling by average pooling ("slightly more appealing results"): ``pooling="avg"``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from striate.checks import did_you_mean
from striate.errors import ConfigError, InputError
from striate.interpret.layers import find_layer
from striate.models.vgg import VGG, VGG_CFGS
from striate.models.weights import file_normalization, load_weights, read_state_dict

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FeatureExtractor",
    "default_vgg_weights",
    "load_vgg",
    "vgg_features",
    "vgg_layer_names",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's VGG files record none: theirs
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ("max", "avg")


def vgg_layer_names(features: nn.Sequential) -> dict[str, str]:
    """``conv1_1``/``bn1_1``/``relu1_1`` … ``pool5`` → ``features.N`` for a VGG's feature stack."""
    names: dict[str, str] = {}
    block, conv = 1, 0
    for i, m in enumerate(features):
        if isinstance(m, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = f"features.{i}"
        elif isinstance(m, nn.BatchNorm2d):
            names[f"bn{block}_{conv}"] = f"features.{i}"
        elif isinstance(m, nn.ReLU):
            names[f"relu{block}_{conv}"] = f"features.{i}"
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Identity)):
            names[f"pool{block}"] = f"features.{i}"
            block, conv = block + 1, 0
    return names


def default_vgg_weights() -> Path:
    """The VGG-16 file used when none is given: $STRIATE_VGG_WEIGHTS, else
    ``weights/vgg16-hed.safetensors`` under $STRIATE_SHARED_DATA or ``../shared/data``."""
    if os.environ.get("STRIATE_VGG_WEIGHTS"):
        return Path(os.environ["STRIATE_VGG_WEIGHTS"])
    root = Path(os.environ.get("STRIATE_SHARED_DATA", Path("..") / "shared" / "data"))
    path = root / "weights" / "vgg16-hed.safetensors"
    if not path.is_file():
        raise ConfigError(
            f"no VGG weights given and none at {path}: pass a torchvision vgg16/vgg19 state dict "
            f"or vgg16-hed.safetensors (--weights FILE), or set STRIATE_VGG_WEIGHTS"
        )
    return path


def _architecture(state: dict[str, torch.Tensor], source: str) -> tuple[str, bool, int]:
    """(cfg, batchnorm, number of convolutions present) of the VGG a features state dict is of."""
    convs = sorted(
        int(k.split(".")[1])
        for k, v in state.items()
        if k.startswith("features.") and k.endswith(".weight") and v.dim() == 4
    )
    if not convs:
        raise ConfigError(
            f"{source} holds no VGG convolutions (features.N.weight): give the weights of a "
            f"torchvision vgg16/vgg19 (or vgg16-hed.safetensors)"
        )
    batchnorm = any(k.endswith("running_mean") for k in state if k.startswith("features."))
    for cfg in ("D", "E", "B", "A"):
        layers = [m for v in VGG_CFGS[cfg] for m in (["M"] if v == "M" else ["C", "B", "R"])]
        if not batchnorm:
            layers = [m for m in layers if m != "B"]
        index = [i for i, m in enumerate(layers) if m == "C"]
        if index[: len(convs)] == convs:
            return cfg, batchnorm, len(convs)
    raise ConfigError(
        f"{source}: its convolutions sit at features.{convs} which match no VGG configuration"
    )


def load_vgg(
    weights: str | os.PathLike | None = None, *, pooling: str = "max"
) -> tuple[nn.Sequential, dict[str, list[float]]]:
    """The feature stack of the VGG in `weights` (cut after its last convolution's ReLU when the
    file holds only the first blocks) and its input normalisation (the file's metadata, else
    ImageNet's). The depth (11/13/16/19, with or without batch norm) is read from the file."""
    path = default_vgg_weights() if weights is None else Path(weights)
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    state = read_state_dict(path)
    state = {k: v for k, v in state.items() if k.startswith("features.")}
    cfg, batchnorm, n_convs = _architecture(state, str(path))
    features = VGG(cfg, num_classes=2, batchnorm=batchnorm, classifier_width=2).features
    conv_at = [i for i, m in enumerate(features) if isinstance(m, nn.Conv2d)]
    end = len(features) if n_convs == len(conv_at) else conv_at[n_convs] - 1
    features = features[:end]
    load_weights(
        features, {k.removeprefix("features."): v for k, v in state.items()}, source=str(path)
    )
    if pooling == "avg":
        for i, m in enumerate(features):
            if isinstance(m, nn.MaxPool2d):
                features[i] = nn.AvgPool2d(m.kernel_size, m.stride)
    norm = file_normalization(path) or {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}
    return features.eval().requires_grad_(False), norm


class FeatureExtractor(nn.Module):
    """The outputs of `layers` of `model` for 0–1 images: ``extractor(x)`` → {layer: N×C×H×W}.

    `model` is a VGG feature stack (layers by VGG names or ``features.N``), or any network (layers
    by module name; it runs whole, its outputs captured by hooks and copied so that in-place
    operations after them change nothing). `mean`/`std` normalise the input first. Parameters are
    frozen; the model is in eval mode.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(layers, str) or not layers:
            raise ConfigError("layers must be a non-empty list of layer names")
        self.layers = list(dict.fromkeys(layers))
        self.model = model.eval().requires_grad_(False)
        if isinstance(model, nn.Sequential):
            self.model = copy.deepcopy(model).eval().requires_grad_(False)
            for i, m in enumerate(self.model):
                if isinstance(m, nn.ReLU) and m.inplace:
                    self.model[i] = nn.ReLU()
        self._names = vgg_layer_names(self.model) if isinstance(self.model, nn.Sequential) else {}
        self._modules_by_layer = {name: self._module(name) for name in self.layers}
        m = torch.tensor(mean if mean is not None else [0.0] * 3, dtype=torch.float32)
        s = torch.tensor(std if std is not None else [1.0] * len(m), dtype=torch.float32)
        self.register_buffer("mean", m.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", s.view(1, -1, 1, 1), persistent=False)

    def _module(self, name: str) -> nn.Module:
        if name in self._names:
            name = self._names[name]
        if isinstance(self.model, nn.Sequential):
            index = {f"features.{i}": m for i, m in enumerate(self.model)}
            index.update({str(i): m for i, m in enumerate(self.model)})
            if name in index:
                return index[name]
            known = list(self._names) or list(index)
            last = list(self._names)[-1] if self._names else f"features.{len(self.model) - 1}"
            raise ConfigError(
                f"no layer {name!r} in these VGG weights (they go up to {last})"
                f"{did_you_mean(name, known)}; layers are named conv1_1, relu1_1, … pool5"
            )
        return find_layer(self.model, name)

    def layer_names(self) -> list[str]:
        """The names this extractor accepts (VGG names for a VGG, else module names)."""
        if self._names:
            return list(self._names)
        return [k for k, _ in self.model.named_modules() if k]

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images)
            raise InputError(f"features need RGB images N×3×H×W in 0–1, got {got}")
        x = (images - self.mean) / self.std
        wanted = {id(m): name for name, m in self._modules_by_layer.items()}
        out: dict[str, torch.Tensor] = {}
        if isinstance(self.model, nn.Sequential):
            for m in self.model:
                x = m(x)
                if id(m) in wanted:
                    out[wanted[id(m)]] = x
                    if len(out) == len(wanted):
                        break
            return {name: out[name] for name in self.layers}
        return self._hooked(x, wanted)

    def _hooked(self, x: torch.Tensor, wanted: dict[int, str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}

        class _Done(Exception):
            pass

        def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            out[wanted[id(module)]] = output.clone()
            if len(out) == len(wanted):
                raise _Done

        handles = [m.register_forward_hook(hook) for m in self._modules_by_layer.values()]
        try:
            self.model(x)
        except _Done:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [name for name in self.layers if name not in out]
        if missing:
            raise ConfigError(f"layers {', '.join(missing)} were not called in the forward pass")
        return {name: out[name] for name in self.layers}


def vgg_features(
    layers: Sequence[str], weights: str | os.PathLike | None = None, *, pooling: str = "max"
) -> FeatureExtractor:
    """A `FeatureExtractor` of `layers` of the VGG in `weights` (default `default_vgg_weights()`),
    normalising as the file records."""
    features, norm = load_vgg(weights, pooling=pooling)
    return FeatureExtractor(features, layers, mean=norm["mean"], std=norm["std"])
