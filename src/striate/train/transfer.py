"""Transfer learning: re-using a trained network on a new task (lecture 7's table).

- little data, similar task: train a linear classifier on frozen features (`finetune="head"`, or
  `FeatureExtractor` + a classic linear or kNN classifier);
- more data: fine-tune the last layer groups (`"last:N"`) or all of them (`"all"`), with smaller
  learning rates for earlier groups (`lr_factor`: group k from the head gets lr / factor**k).

A model's *layer groups* are its top-level children that hold parameters (for a ResNet: conv1,
bn1, layer1…layer4, fc), or what its own `layer_groups()` method returns. Its *head* is its last
`nn.Linear` (or 1×1 conv classifier, for SqueezeNet), or the module its `head_name` names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from torch import nn

from striate.data import ImageSet
from striate.device import resolve_device
from striate.engine.callbacks import Callback
from striate.engine.optim import discriminative_groups
from striate.errors import ConfigError


def head_name(model: nn.Module) -> str:
    """The qualified name of the classifier layer that maps features to classes."""
    name = getattr(model, "head_name", None)
    if isinstance(name, str):
        return name
    last = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) or (
            isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and "classifier" in n
        ):
            last = n
    if last is None:
        raise ConfigError(f"{type(model).__name__} has no linear head to replace")
    return last


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def layer_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of each layer group, from the input side to the head; a normalisation
    layer joins the group before it (a ResNet's stem is conv1+bn1, one group)."""
    custom = getattr(model, "layer_groups", None)
    if callable(custom):
        return list(custom())
    groups: list[tuple[str, nn.Module]] = []
    for name, m in model.named_children():
        if not any(True for _ in m.parameters()):
            continue
        if isinstance(m, _NORMS) and groups:
            prev_name, prev = groups[-1]
            members = list(prev) if isinstance(prev, nn.ModuleList) else [prev]
            groups[-1] = (f"{prev_name}+{name}", nn.ModuleList([*members, m]))
        else:
            groups.append((name, m))
    return groups


def parse_finetune(mode: str, n_groups: int) -> int:
    """How many layer groups (from the head) a mode trains: "head" 0 (the head alone),
    "last:N" N, "all" every one."""
    if mode == "all":
        return n_groups
    if mode == "head":
        return 0
    if mode.startswith("last:"):
        try:
            n = int(mode.removeprefix("last:"))
        except ValueError:
            n = 0
        if n >= 1:
            return min(n, n_groups)
    raise ConfigError(
        f"unknown finetune mode {mode!r}: use 'head' (train the classifier on frozen features), "
        f"'last:N' (the last N of the {n_groups} layer groups) or 'all'"
    )


def reset_head(model: nn.Module) -> None:
    """Fresh weights for the head (PyTorch's default initialisation)."""
    model.get_submodule(head_name(model)).reset_parameters()


def finetune_parameters(
    model: nn.Module, mode: str, lr: float, lr_factor: float = 1.0, weight_decay: float = 0.0
) -> tuple[list[dict[str, Any]], list[nn.Module]]:
    """Freeze what `mode` does not train; the parameter groups of the rest (discriminative
    learning rates by `lr_factor`) and the frozen modules (kept in eval mode by FreezeFrozen)."""
    groups = layer_groups(model)
    k = parse_finetune(mode, len(groups))
    head = model.get_submodule(head_name(model))
    trained = [m for _, m in groups[len(groups) - k :]] if k else []
    if not any(head is m or any(head is s for s in m.modules()) for m in trained):
        trained.append(head)
    trained_params = {id(p) for m in trained for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in trained_params)
    # every layer whose own parameters are all frozen, wherever it sits (e.g. beside the head)
    frozen = [
        m
        for m in model.modules()
        if (own := list(m.parameters(recurse=False))) and not any(p.requires_grad for p in own)
    ]
    return discriminative_groups(trained, lr, factor=lr_factor, weight_decay=weight_decay), frozen


class FreezeFrozen(Callback):
    """Keeps frozen layers in eval mode while training, so their batch-norm statistics stay
    those of the pretrained network."""

    def __init__(self, modules: list[nn.Module]) -> None:
        self.modules = modules

    def on_epoch_start(self, trainer) -> None:
        for m in self.modules:
            m.eval()


class FeatureExtractor(TransformerMixin, BaseEstimator):
    """A network without its head as a scikit-learn transformer: images (an ImageSet, or uint8 /
    0–1 float N×C×H×W) to the features its head would see, for a linear or kNN classifier.

    `model` is a network from `models.create` (its input shape is checked; `normalize`, a fitted
    striate Normalizer, is applied to the 0–1 images first) or a trained model from
    `striate.load_model`, which resizes, converts and normalises the images as it was trained to.
    """

    def __init__(
        self, model: nn.Module, normalize: Any = None, batch_size: int = 256, device: str = "auto"
    ) -> None:
        self.model, self.normalize = model, normalize
        self.batch_size, self.device = batch_size, device

    def fit(self, X: Any = None, y: Any = None) -> FeatureExtractor:
        return self

    def _inputs(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of images as the network takes them (0–1, normalised, its shape)."""
        if hasattr(self.model, "prepare") and hasattr(self.model, "net"):  # an ImageClassifier
            return (self.model.prepare(batch) - self.model.mean) / self.model.std
        x = batch.float().div(255) if batch.dtype == torch.uint8 else batch.float()
        return self.normalize(x) if self.normalize is not None else x

    @torch.no_grad()
    def transform(self, X: Any) -> np.ndarray:

        images = X.images if isinstance(X, ImageSet) else torch.as_tensor(np.asarray(X))
        net = getattr(self.model, "net", self.model)
        self._check_shape(images, net)
        device = resolve_device(self.device)
        name = head_name(net)
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        head = getattr(parent, attr) if not attr.isdigit() else parent[int(attr)]
        was_training = self.model.training
        _set(parent, attr, nn.Identity())
        try:
            self.model.to(device).eval()
            out = []
            for batch in images.split(self.batch_size):
                x = self._inputs(batch.to(device))
                out.append(net(x).flatten(1).float().cpu())
        finally:
            _set(parent, attr, head)
            self.model.train(was_training)
        return torch.cat(out).numpy()

    def _check_shape(self, images: torch.Tensor, net: nn.Module) -> None:
        if images.dim() != 4:
            raise ConfigError(
                f"FeatureExtractor: images must be N×C×H×W (or an ImageSet), got shape "
                f"{tuple(images.shape)}"
            )
        if net is not self.model:
            return  # a trained model resizes and converts what it is given
        spec = getattr(net, "spec", None)
        want = tuple(spec["in_shape"]) if isinstance(spec, dict) and "in_shape" in spec else None
        if want is not None and tuple(images.shape[1:]) != want:
            raise ConfigError(
                f"FeatureExtractor: the network takes {'×'.join(map(str, want))} images, got "
                f"{'×'.join(map(str, images.shape[1:]))}: resize the data (load_dataset(..., "
                f"size=...)), build the network for this shape, or give a trained model from "
                f"striate.load_model, which converts the images itself"
            )


def _set(parent: nn.Module, attr: str, module: nn.Module) -> None:
    if attr.isdigit():
        parent[int(attr)] = module
    else:
        setattr(parent, attr, module)
