"""Model files: `weights.safetensors` plus `model.json` (architecture, classes, normalisation).

`load_model(path)` rebuilds the network from the registry and gives back an `ImageClassifier`
that takes images as they come (uint8 or 0–1 floats, any size, grey or colour), normalises and
resizes them as the network expects, and answers with class probabilities. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from striate import __version__
from striate._atomic import write_json
from striate.checks import did_you_mean
from striate.errors import StriateError
from striate.models.registry import canonical_name, create, from_spec
from striate.models.weights import (  # noqa: F401  (here for existing imports)
    WEIGHTS,
    load_weights,
    model_folder,
    read_state_dict,
)
from striate.state_file import save_weights

FORMAT = "striate-model/1"


class ImageClassifier(nn.Module):
    """A trained network with what it needs to be used: class names, input shape, normalisation.

    `forward` takes a float batch on the 0–1 scale in the network's input shape and returns
    logits; `predict_proba` and `predict` take images as they come. With ``crop`` (a fraction,
    e.g. 0.875 for ImageNet weights) `prepare` first cuts the central square of that fraction of
    the short side, as the weights were evaluated (an image already at the network's input size
    is taken as prepared); without it the image is resized as it is.
    """

    def __init__(
        self,
        net: nn.Module,
        classes: Sequence[str],
        in_shape: Sequence[int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        crop: float | None = None,
    ) -> None:
        super().__init__()
        self.net, self.classes, self.in_shape = net, tuple(classes), tuple(in_shape)
        self.crop = crop
        c = self.in_shape[0]
        mean = torch.zeros(c) if mean is None else torch.as_tensor(mean, dtype=torch.float32)
        std = torch.ones(c) if std is None else torch.as_tensor(std, dtype=torch.float32)
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.reshape(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def prepare(self, images: Any) -> torch.Tensor:
        """Images (a uint8 or 0–1 float tensor/array N×C×H×W, or a list of H×W×C / H×W arrays
        of any sizes) as a float 0–1 batch of the network's input shape."""
        c, h, w = self.in_shape
        if isinstance(images, (list, tuple)):
            return torch.cat([self.prepare(_as_chw(im)[None]) for im in images])
        x = torch.as_tensor(np.array(images) if not isinstance(images, torch.Tensor) else images)
        if x.dim() == 3:
            x = x[None]
        if x.dim() != 4 or x.shape[1] not in (1, 3, 4):
            raise StriateError(
                f"expected images N×C×H×W with 1, 3 or 4 channels, got shape {tuple(x.shape)}"
            )
        x = x.to(self.mean.device)
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
        x = x[:, :3]  # alpha is dropped
        if x.shape[1] == 3 and c == 1:  # ITU-R 601 luma, as PIL's convert("L")
            x = (x * x.new_tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
        elif x.shape[1] == 1 and c == 3:
            x = x.expand(-1, 3, -1, -1)
        if self.crop is not None and x.shape[-2:] != (h, w):  # at the input size: prepared
            side = max(1, round(min(x.shape[-2:]) * self.crop))
            top, left = (x.shape[-2] - side) // 2, (x.shape[-1] - side) // 2
            x = x[..., top : top + side, left : left + side]
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return x.clamp(0, 1)

    @torch.no_grad()
    def predict_proba(self, images: Any, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities, N×len(classes), float32 on the CPU (prepared `batch_size` images
        at a time, so a large set is never converted to float at once)."""
        self.eval()
        many = isinstance(images, (list, tuple)) or getattr(images, "ndim", 0) == 4
        chunks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        return torch.cat(
            [self(self.prepare(c)).float().softmax(1).cpu() for c in (chunks if many else [images])]
        )

    def predict(self, images: Any, k: int = 1) -> list[list[tuple[str, float]]]:
        """The top-k (class name, probability) pairs of each image."""
        probs = self.predict_proba(images)
        top = probs.topk(min(k, probs.shape[1]), dim=1)
        return [
            [(self.classes[i], float(p)) for p, i in zip(ps, idx, strict=True)]
            for ps, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True)
        ]


def _as_chw(image: Any) -> torch.Tensor:
    t = torch.as_tensor(np.array(image) if not isinstance(image, torch.Tensor) else image)
    if t.dim() == 2:
        return t[None]
    if t.dim() == 3 and t.shape[-1] in (1, 3, 4) and t.shape[0] not in (1, 3, 4):
        return t.permute(2, 0, 1)
    return t


def save_model(
    folder: str | os.PathLike,
    net: nn.Module,
    *,
    classes: Sequence[str],
    in_shape: Sequence[int],
    normalization: dict[str, list[float]] | None = None,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write `weights.safetensors` and `model.json` into `folder` (atomically, each)."""
    spec = getattr(net, "spec", None)
    if spec is None:
        raise StriateError(
            "only models built by striate.models.create can be saved as a model file "
            "(their architecture is recorded in model.spec)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.safetensors", net.state_dict())
    info = {
        "format": FORMAT,
        "striate_version": __version__,
        "architecture": spec,
        "classes": list(classes),
        "in_shape": list(in_shape),
        "normalization": normalization,
        "metrics": metrics or {},
    }
    write_json(folder / "model.json", info)
    return folder


def read_model_info(
    path: str | os.PathLike, *, task: str | None = None, made_by: str = "striate train"
) -> tuple[Path, dict[str, Any]]:
    """The model folder in `path` (a run folder, its model folder or model.json) and its
    model.json, checked: a striate model file and, given `task`, a model of that task (an image
    classifier's model.json names none). A StriateError says what is wrong and what to do."""
    folder = model_folder(path, made_by)
    try:
        info = json.loads((folder / "model.json").read_text())
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise StriateError(
            f"{folder} does not hold a readable striate model: its model.json is damaged ({e}); "
            f"train the run again"
        ) from e
    if info.get("format") != FORMAT:
        raise StriateError(
            f"{folder} does not hold a readable striate model (format {info.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    if task is not None and info.get("task") != task:
        theirs = info.get("task") or "image classification"
        raise StriateError(
            f"{path} is not a {task.replace('_', ' ')} run (its model's task is {theirs}); give "
            f"a run folder made by {made_by}"
        )
    return folder, info


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImageClassifier:
    """The trained model in `path` (a run folder, its model folder or model.json), ready to use."""
    folder, info = read_model_info(path)
    try:
        net = from_spec(info["architecture"])
        weights = load_file(str(folder / "weights.safetensors"))
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as e:
        raise StriateError(f"{folder} does not hold a readable striate model ({e})") from e
    missing, unexpected = _mismatch(net.state_dict(), weights)
    if missing or unexpected:
        raise StriateError(
            f"{folder / 'weights.safetensors'} does not match the architecture in model.json: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    net.load_state_dict(weights)
    norm = info.get("normalization") or {}
    model = ImageClassifier(
        net, info["classes"], info["in_shape"], norm.get("mean"), norm.get("std")
    )
    model.metrics = info.get("metrics", {})
    return model.to(device).eval()


def pretrained(
    name: str, weights: str = "imagenet", device: str | torch.device = "cpu"
) -> ImageClassifier:
    """A network with named pretrained weights, ready to use on images as they come:
    ``pretrained("efficientnet_lite0").predict(photo)`` → [[("espresso", 0.95)]]."""
    if f"{canonical_name(name)}.{weights}" not in WEIGHTS:
        named = ", ".join(n.replace(".", " (") + ")" for n in WEIGHTS.names())
        raise StriateError(
            f"no {weights} weights for {name!r}{did_you_mean(f'{name}.{weights}', WEIGHTS)}; "
            f"the pretrained networks are {named}"
        )
    net = create(name, weights=weights)
    if not net.classes:
        raise StriateError(f"the {weights} weights of {name} do not classify: they have no classes")
    norm = net.normalization or {}
    model = ImageClassifier(
        net, net.classes, net.spec["in_shape"], norm.get("mean"), norm.get("std"), net.crop
    )
    model.name = f"{canonical_name(name)} ({weights})"
    return model.to(device).eval()


def _mismatch(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]):
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    missing += [k for k in expected if k in got and expected[k].shape != got[k].shape]
    return missing, unexpected
