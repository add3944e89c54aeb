"""Model ensembles: average the predicted probabilities of several models, or of the snapshots
one run took at the end of each warm-restart cycle (CS231n lecture 7, "Model Ensembles"; the
snapshots: `striate.train.snapshots`).

    result = evaluate_ensemble(load_snapshots("runs/x"), load_dataset("cifar10", "test"))
    result.members, result.ensemble                      # each {"loss", "acc", "top5"}

Snapshot ensembles (Huang et al. 2017, arXiv:1704.00109, "train 1, get M for free"): SGDR's cosine
cycles (Loshchilov & Hutter 2017, arXiv:1608.03983) bring the weights to a different low-loss
point at the end of each cycle; the models saved there disagree enough that the average of their
probabilities beats each of them. Polyak averaging (one model, averaged weights) is the `EMA`
callback; `EMA(None)` is the uniform average of Polyak & Juditsky (1992).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.data import BatchLoader, ImageSet
from striate.engine.classification import Classification
from striate.engine.metrics import MetricTracker
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, StriateError
from striate.models.io import load_model

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Ensemble(nn.Module):
    """The members' softmax probabilities averaged (weighted by `weights`, default equal).

    `forward` returns the log of the mean probability, log Σ_m w_m softmax(f_m(x)), so that it
    plugs in where logits are expected: its softmax is the averaged distribution, its argmax the
    ensemble's prediction and cross-entropy on it is the ensemble's loss. Every member gets the
    same input; `ImageClassifier` members (from `load_model`) each apply their own normalisation
    to the 0–1 images, so members trained with different statistics mix correctly.
    """

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ConfigError("an ensemble needs at least one model")
        for m in models:
            if not isinstance(m, nn.Module):
                raise ConfigError(f"ensemble members must be torch modules, got {type(m).__name__}")
        self.members = nn.ModuleList(models)
        self.register_buffer("log_weights", _log_weights(weights, len(models)), persistent=False)
        classes = [getattr(m, "classes", None) for m in models]
        self.classes = classes[0] if classes[0] is not None and len(set(classes)) == 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = torch.stack([m(x).float().log_softmax(1) for m in self.members])
        return torch.logsumexp(logp + self.log_weights.reshape(-1, 1, 1), 0)

    @torch.no_grad()
    def predict_proba(self, images: Any, batch_size: int = 256) -> torch.Tensor:
        """Class probabilities of images as they come (members from `load_model` only)."""
        first = self.members[0]
        if not hasattr(first, "prepare"):
            raise ConfigError(
                "predict_proba takes raw images only for members loaded with load_model; call "
                "the ensemble on normalised batches instead"
            )
        self.eval()
        x = first.prepare(images)
        return torch.cat([self(b).softmax(1).cpu() for b in x.split(batch_size)])


def _log_weights(weights: Sequence[float] | None, n: int) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), -math.log(n))
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if w.dim() != 1 or len(w) != n:
        raise ConfigError(f"give one weight per member: {n} members, {len(w)} weights")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ConfigError(
            f"ensemble weights must be non-negative numbers, not all zero; got {w.tolist()}"
        )
    return (w / w.sum()).log().float()


# --------------------------------------------------------------------------- evaluation


@dataclass
class EnsembleResult:
    """Each member's metrics, the ensemble's, and those of the ensemble of the first k members
    (k = 1..M, `prefixes`), all on the same images."""

    names: list[str]
    members: list[dict[str, float]]
    ensemble: dict[str, float]
    prefixes: list[dict[str, float]] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    images: int = 0
    tta: bool | str = False

    @property
    def best_member(self) -> int:
        """Index of the member with the highest accuracy (the lowest loss among equals)."""
        return max(
            range(len(self.members)),
            key=lambda i: (self.members[i]["acc"], -self.members[i]["loss"]),
        )

    @property
    def gain(self) -> float:
        """Ensemble accuracy minus the best member's (a fraction; > 0: the ensemble wins)."""
        return self.ensemble["acc"] - self.members[self.best_member]["acc"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "tta": self.tta,
            "members": [
                {"name": n, "weight": w, **m}
                for n, w, m in zip(self.names, self.weights, self.members, strict=True)
            ],
            "ensemble": self.ensemble,
            "best_member": self.names[self.best_member],
            "gain_over_best_member": self.gain,
            "first_k": [{"k": k, **m} for k, m in enumerate(self.prefixes, start=1)],
        }


def evaluate_ensemble(
    members: Sequence[nn.Module | str | os.PathLike],
    data: ImageSet | Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    names: Sequence[str] | None = None,
    weights: Sequence[float] | None = None,
    tta: bool | str = False,
    batch_size: int = 256,
    topk: Sequence[int] = (1, 5),
    device: str | torch.device = "auto",
) -> EnsembleResult:
    """Loss and accuracy of each member and of their `Ensemble` on `data`.

    `members` are models or paths of saved models (run folders, model folders, model.json).
    `data` is an ImageSet (members must then be `ImageClassifier`s, as `load_model` gives: each
    normalises the images itself, with the statistics it was trained with) or an unshuffled
    loader of batches already prepared for every member. Each member is run once, in fp32; its
    log-probabilities are kept (N×C), so the ensembles of the first k members come for free.
    """

    models, labels = load_members(members, device="cpu")
    names = list(names) if names is not None else labels
    if len(names) != len(models):
        raise ConfigError(f"give one name per member: {len(models)} members, {len(names)} names")
    log_w = _log_weights(weights, len(models))
    trainer = Trainer(
        epochs=1,
        task=Classification(tta=tta, topk=topk),
        device=device,
        progress=False,
        tensorboard=False,
    )
    for m in models:
        m.to(trainer.device)
    if isinstance(data, ImageSet):
        check_compatible(models, names, data)
        if not all(hasattr(m, "prepare") for m in models):
            raise ConfigError(
                "evaluating plain networks on an ImageSet needs their normalisation: give a "
                "loader of normalised batches, or members loaded with load_model"
            )
        data = BatchLoader(
            data, batch_size, shuffle=False, device=trainer.device, normalize=models[0].prepare
        )
    else:
        check_compatible(models, names)

    target: torch.Tensor | None = None
    logps = []
    for name, model in zip(names, models, strict=True):
        outs, ys = [], []
        for x, y in trainer.eval_batches(model, data):
            outs.append(trainer.task.log_probs(model, x, tta).float().log_softmax(1).cpu())
            ys.append(y.cpu())
        if not outs:
            raise ConfigError("the evaluation data yields no batches")
        y = torch.cat(ys)
        if target is None:
            target = y
        elif y.shape != target.shape or not torch.equal(y, target):
            raise ConfigError(
                f"the evaluation data gave other labels when {name} was evaluated: give a "
                f"loader that yields the same batches on every pass (shuffle=False)"
            )
        logps.append(torch.cat(outs))
        if logps[-1].shape != logps[0].shape:
            raise ConfigError(
                f"ensemble members predict different numbers of classes: {names[0]} "
                f"{logps[0].shape[1]}, {name} {logps[-1].shape[1]}"
            )
    stacked = torch.stack(logps)  # M×N×C

    def metrics(logp: torch.Tensor) -> dict[str, float]:
        tracker = MetricTracker(logp.shape[1], topk)
        soft = target.dim() == 2
        loss = -(target * logp).sum(1).mean() if soft else F.nll_loss(logp, target)
        tracker.update(logp, target, loss)
        return tracker.compute()

    prefixes = []
    for k in range(1, len(models) + 1):
        total = torch.logsumexp(log_w[:k], 0)
        if not torch.isfinite(total):  # the first k members all weigh 0
            prefixes.append(dict.fromkeys(prefixes[0] if prefixes else ("loss", "acc"), math.nan))
            continue
        w = log_w[:k] - total  # the first k weights, renormalised
        prefixes.append(metrics(torch.logsumexp(stacked[:k] + w.reshape(-1, 1, 1), 0)))
    return EnsembleResult(
        names=names,
        members=[metrics(lp) for lp in logps],
        ensemble=prefixes[-1],
        prefixes=prefixes,
        weights=log_w.exp().tolist(),
        images=len(target),
        tta=tta,
    )


def load_members(
    members: Sequence[nn.Module | str | os.PathLike], device: str | torch.device = "cpu"
) -> tuple[list[nn.Module], list[str]]:
    """The members as modules (paths loaded with `load_model`) and a name for each."""

    if isinstance(members, (str, os.PathLike, nn.Module)):
        members = [members]
    members = list(members)
    if not members:
        raise ConfigError("an ensemble needs at least one member: give models or run folders")
    models, names = [], []
    for i, m in enumerate(members, start=1):
        if isinstance(m, nn.Module):
            models.append(m)
            names.append(str(getattr(m, "name", None) or f"member {i}"))
            continue
        if not isinstance(m, (str, os.PathLike)):
            raise ConfigError(f"an ensemble member is a model or a path, got {type(m).__name__}")
        try:
            models.append(load_model(m, device=device))
        except StriateError as e:
            raise ConfigError(f"ensemble member {os.fspath(m)} is not a striate model: {e}") from e
        names.append(os.fspath(m))
    return models, names


def check_compatible(
    models: Sequence[nn.Module], names: Sequence[str], data: ImageSet | None = None
) -> None:
    """Members that are `ImageClassifier`s must share class names and input shape (and match
    the data's classes, when given); a ConfigError names the first that differs."""
    first = None
    for name, m in zip(names, models, strict=True):
        info = (getattr(m, "classes", None), getattr(m, "in_shape", None))
        if info == (None, None):
            continue
        if first is None:
            first = (name, *info)
            continue
        if info[0] != first[1]:
            raise ConfigError(
                f"ensemble members predict different classes: {first[0]} has "
                f"{_short(first[1])}, {name} has {_short(info[0])}"
            )
        if info[1] != first[2]:
            raise ConfigError(
                f"ensemble members take different inputs: {first[0]} takes "
                f"{'×'.join(map(str, first[2]))} images, {name} takes {'×'.join(map(str, info[1]))}"
            )
    if data is not None and first is not None and tuple(data.classes) != tuple(first[1]):
        raise ConfigError(
            f"the data has classes {_short(data.classes)}, the members {_short(first[1])}: "
            f"evaluate on data with the members' classes"
        )


def _short(classes: Sequence[str] | None) -> str:
    classes = list(classes or [])
    more = f", ... ({len(classes)} in all)" if len(classes) > 10 else ""
    return "[" + ", ".join(map(str, classes[:10])) + more + "]"


def plot_ensemble(result: EnsembleResult, title: str | None = None) -> Figure:
    """Accuracy of each member (bars) and of the ensemble of the first k members (line)."""
    from matplotlib.figure import Figure

    k = range(1, len(result.members) + 1)
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.subplots()
    member_acc = [100 * m["acc"] for m in result.members]
    ax.bar(k, member_acc, color="C0", alpha=0.6, label="member k alone")
    ax.plot(
        k,
        [100 * p["acc"] for p in result.prefixes],
        "o-",
        color="C3",
        label="ensemble of members 1..k",
    )
    lo = min(member_acc + [100 * p["acc"] for p in result.prefixes])
    hi = max(member_acc + [100 * p["acc"] for p in result.prefixes])
    pad = max(1.0, 0.15 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
    ax.set_xticks(list(k))
    ax.set_xticklabels([_label(n) for n in result.names], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel("member k")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def _label(name: str) -> str:
    p = Path(name)
    return p.name if p.name not in ("model", "model.json", "") else p.parent.name or name


# --------------------------------------------------------------------------- snapshots
