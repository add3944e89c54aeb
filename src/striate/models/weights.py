"""Weight files: state dicts read from any file a user has, loaded into a model with every key
checked, and the named pretrained weights that ship in packages.

`read_state_dict` takes safetensors, a striate run/model folder or checkpoint, or a torch state
dict (read with ``weights_only=True``: nothing is unpickled but tensors). `load_weights` loads one
into a model and names every missing, unexpected or mis-shaped key. A file that holds only a
network's feature extractor (``features.*`` of a torchvision VGG, without its classifier) is a
supported case of `apply_weights`: the parts the file has nothing for keep their initialisation
and a warning names them. A safetensors file may record the input normalisation it expects in
its metadata (``mean``/``std``, JSON lists on the 0–1 scale); it is kept as the model's
``normalization``.

Named weights (``models.create("efficientnet_lite0", weights="imagenet")``) are registered by the
architecture's family file with `register_weights`: where the file is (a package that may be
missing: its loader says which extra installs it), the class names, the normalisation and the
centre crop the weights were evaluated with.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from striate.errors import ConfigError, StriateError, StriateWarning
from striate.registry import Registry
from striate.state_file import load_state

__all__ = [
    "WEIGHTS",
    "PretrainedWeights",
    "apply_weights",
    "file_normalization",
    "imagenet_classes",
    "load_weights",
    "named_weights",
    "model_folder",
    "read_state_dict",
    "register_weights",
]


@dataclass(frozen=True)
class PretrainedWeights:
    """Where a named weight set is and how its network expects to be fed."""

    path: Callable[[], str]  # finds the file (raises a ConfigError naming the extra if absent)
    classes: str | tuple[str, ...] | None = None  # "imagenet" for the 1000 ImageNet names
    mean: tuple[float, ...] | None = None  # on the 0–1 scale
    std: tuple[float, ...] | None = None
    crop: float | None = None  # centre crop of the short side the weights were evaluated with
    summary: str = ""


WEIGHTS: Registry[PretrainedWeights] = Registry("pretrained weights")


def register_weights(architecture: str, tag: str, weights: PretrainedWeights) -> None:
    """Make ``models.create(architecture, weights=tag)`` load `weights`."""
    WEIGHTS.add(f"{architecture}.{tag}", weights, weights.summary)


def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the usual index order (0 tench … 999 toilet tissue)."""
    text = resources.files("striate.models").joinpath("data/imagenet_classes.txt").read_text()
    return tuple(line for line in text.splitlines() if line)


def named_weights(architecture: str, tag: Any) -> PretrainedWeights | None:
    """The weights registered as `tag` for `architecture`, or None (then `tag` is a file)."""
    key = f"{architecture.replace('-', '_')}.{tag}"
    return WEIGHTS.get(key) if isinstance(tag, str) and key in WEIGHTS else None


def tags(architecture: str) -> list[str]:
    """The named weights registered for `architecture` ("imagenet", ...)."""
    return [n.split(".", 1)[1] for n in WEIGHTS.names() if n.split(".", 1)[0] == architecture]


def apply_weights(model: nn.Module, architecture: str, weights: str | os.PathLike) -> None:
    """Load named weights (a tag of `tags(architecture)`) or a weight file into `model`, and set
    ``model.classes``, ``model.normalization`` and ``model.crop`` from what the weights record."""
    named = named_weights(architecture, weights)
    if named is not None:
        load_weights(model, named.path(), source=f"the {weights} weights of {architecture}")
        classes = imagenet_classes() if named.classes == "imagenet" else named.classes
        norm = None if named.mean is None else {"mean": list(named.mean), "std": list(named.std)}
        model.classes, model.normalization, model.crop = classes, norm, named.crop
        return
    path = Path(weights)
    if not path.exists():
        known = tags(architecture)
        which = f"its named weights are {', '.join(known)}" if known else "it has no named weights"
        raise ConfigError(
            f"{architecture}: weights {str(weights)!r} are neither a file nor named weights "
            f"({which}); give a .safetensors file or a torch state dict"
        )
    state = read_state_dict(path)
    left = _parts_without_weights(model, state)
    load_weights(model, state, skip=[f"{p}." for p in left], source=str(path))
    if left:
        warnings.warn(
            f"{path} holds no weights for {', '.join(left)} of {architecture}: "
            f"{'they keep their' if len(left) > 1 else 'it keeps its'} initialisation",
            StriateWarning,
            stacklevel=3,
        )
    model.classes, model.normalization, model.crop = None, file_normalization(path), None


def _parts_without_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Top-level children of `model` with parameters of which `state` has not one key (the
    classifier of a features-only file), when the file covers the rest."""
    empty = []
    for name, child in model.named_children():
        keys = [f"{name}.{k}" for k in child.state_dict()]
        if keys and not any(k in state for k in keys):
            empty.append(name)
    return empty if len(empty) < len(list(model.named_children())) else []


def file_normalization(path: str | os.PathLike) -> dict[str, list[float]] | None:
    """The ``mean``/``std`` a safetensors file records in its metadata, or None."""
    if Path(path).suffix != ".safetensors":
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "mean" not in meta or "std" not in meta:
            return None
        norm = {k: [float(v) for v in json.loads(meta[k])] for k in ("mean", "std")}
    except (OSError, SafetensorError, ValueError, TypeError) as e:
        raise StriateError(f"{path}: unreadable mean/std in its metadata ({e})") from e
    if len(norm["mean"]) != len(norm["std"]) or not all(s > 0 for s in norm["std"]):
        raise StriateError(f"{path}: its metadata's mean/std do not fit ({norm})")
    return norm


def model_folder(path: str | os.PathLike, made_by: str = "striate train") -> Path:
    """The folder holding model.json: given itself, its model.json, or a run folder (of the
    command `made_by`, which the advice names when it holds no model)."""
    p = Path(path)
    if p.is_file() and p.name == "model.json":
        p = p.parent
    if (p / "model").is_dir() and not (p / "model.json").is_file():
        p = p / "model"
    if not (p / "model.json").is_file():
        raise StriateError(_why_no_model(Path(path), made_by))
    return p


def _why_no_model(run: Path, made_by: str) -> str:
    """What a run folder without a model says about itself: a failed or unfinished run."""
    try:
        failed = json.loads((run / "failed.json").read_text())
        return (
            f"{run} has no model: its training failed at step {failed['step'] + 1} "
            f"({str(failed['error']).splitlines()[0]}); see {run / 'failed.json'}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if (run / "checkpoints" / "last.safetensors").is_file():
        return (
            f"{run} has no model yet: its training stopped before the end; continue it with "
            f"{made_by} --resume {run}"
        )
    return (
        f"no model at {run}: give a run folder made by {made_by}, its model/ folder or a model.json"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Weights from a file: safetensors, a striate run/model folder or checkpoint, or a torch
    state dict (read with `weights_only=True`, so no code is unpickled). A "module." prefix
    (DataParallel) and a {"state_dict": ...} / {"model": ...} wrapper are taken off."""
    p = Path(path)
    if p.is_dir():
        try:
            p = model_folder(p) / "weights.safetensors"
        except StriateError as e:
            raise StriateError(f"no weights in {path}: give a weights file or a run folder") from e
    if not p.is_file():
        raise StriateError(f"weights file {p} does not exist")
    try:
        if p.suffix == ".safetensors":
            with safe_open(str(p), framework="pt") as f:
                is_state = "striate_state" in (f.metadata() or {})
            # a training checkpoint: its model part
            weights = load_state(p)["model"] if is_state else load_file(str(p))
        else:
            weights = torch.load(p, map_location="cpu", weights_only=True)
    except (OSError, SafetensorError, RuntimeError, ValueError, EOFError, pickle.PickleError) as e:
        raise StriateError(
            f"cannot read weights from {p} ({type(e).__name__}: {e}); give a .safetensors file "
            f"or a torch state dict saved with torch.save(model.state_dict(), ...)"
        ) from e
    for key in ("state_dict", "model"):
        if isinstance(weights, dict) and isinstance(weights.get(key), dict):
            weights = weights[key]
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()
    ):
        raise StriateError(f"{p} does not hold a state dict (names → tensors)")
    if weights and all(k.startswith("module.") for k in weights):
        weights = {k.removeprefix("module."): v for k, v in weights.items()}
    return weights


def load_weights(
    model: nn.Module,
    path: str | os.PathLike | dict[str, torch.Tensor],
    *,
    skip: Sequence[str] = (),
    source: str | None = None,
) -> list[str]:
    """Load the weights in `path` (or a state dict) into `model`, every key checked: missing,
    unexpected or mis-shaped keys are an error that lists them. Keys starting with a prefix in
    `skip` (a head that is replaced) are left as the model has them. Returns the keys left out."""
    weights = path if isinstance(path, dict) else read_state_dict(path)
    source = source or ("the weights" if isinstance(path, dict) else str(path))
    expected = model.state_dict()
    skipped = [k for k in expected if any(k.startswith(s) for s in skip)]
    weights = {k: v for k, v in weights.items() if not any(k.startswith(s) for s in skip)}
    wanted = {k: v for k, v in expected.items() if k not in skipped}
    missing = [k for k in wanted if k not in weights]
    unexpected = [k for k in weights if k not in wanted]
    shapes = [
        f"{k} {tuple(weights[k].shape)} for {tuple(v.shape)}"
        for k, v in wanted.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if keys:
                more = f" and {len(keys) - 8} more" if len(keys) > 8 else ""
                parts.append(f"{label}: {', '.join(keys[:8])}{more}")
        raise StriateError(
            f"{source} does not fit this model ({'; '.join(parts)}); use weights saved from the "
            f"same architecture (and --finetune to replace a head with another number of classes)"
        )
    model.load_state_dict(weights, strict=False)
    return skipped
