"""Training recipes: named sets of `TrainConfig` settings that reproduce a published training.

    config = recipe_config("cifar10-fast", data="cifar10-jpeg.zip")   # overrides on top
    callbacks = model_callbacks(model)          # what the model needs (whitening for cifar_fast)

``"cifar10-fast"`` is airbench94 (Jordan 2024, arXiv:2404.00498; ``airbench94.py`` of
github.com/KellerJordan/cifar10-airbench: 94.0% on CIFAR-10 in 9.9 epochs) in striate's terms:
the "cifar_fast" net, batch 1024, Nesterov SGD with momentum 0.85, label smoothing 0.2,
alternating flips (``altflip``) and 2-pixel translations, a triangular lr schedule, Lookahead
weight averaging (every 5 steps, decay ``0.95⁵·(t/T)³``: the `Lookahead` callback) and TTA over
mirror images and 1-pixel translations (``tta="flip,translate"``), trained on all 50,000
training images. What striate
does differently:

- airbench's "translate 2" is reflect padding by 2 and a random crop: striate's ``crop:2``
  (``translate`` shifts in zeros).
- TTA averages the views' probabilities; airbench averages their logits.
- The 64× learning rate of the batch-norm shifts is built into the model (``bn_bias_scale``);
  they and the other 1-D parameters get no weight decay (airbench decays them).
- The whitening layer's bias trains for the first 3 epochs only: `PatchWhitening`, which also
  computes the whitening from the training images when training starts.

``"cifar10-muon"`` is airbench94_muon (``airbench94_muon.py`` of the same repository: 94.01 %
in 8 epochs, 2.59 s on an A100 against airbench94's 3.83 s): the same net, batch 2000, the
`Muon` optimiser on the 3×3 filters (lr 0.24, momentum 0.6, 3 Newton–Schulz steps, each filter
bank renormalised before its step) and Nesterov SGD (momentum 0.85) on the rest, a linear decay
to 0, no Lookahead, the same augmentation, label smoothing and TTA. In striate's terms:

- airbench's SGD lrs are per example of a summed loss: ×2000 for the batch mean (the biases'
  0.053 is 106); its decay ``wd/lr`` is then ÷2000 (3.77e-5), the same ``lr·λ`` per step.
- Its head trains at 0.67/0.053 = 12.6× the biases' lr, with weights of std 1 and outputs ÷256.
  Here the head is used as ``s·W`` with ``s = √12.6`` (``logit_scale = s/256``,
  ``head_std = 1/s``), which makes the one SGD lr move it as airbench's does (``s²`` times as
  fast; see `striate.models.fastnet`); the batch-norm shifts train at the biases' lr
  (``bn_bias_scale = 1``).
- Every parameter SGD trains decays by that ``lr·λ``, biases and norm shifts too
  (``aux_weight_decay``); the filters not at all (Muon renormalises them), as in airbench.
- Newton–Schulz runs in bfloat16 where the device computes it natively, in float32 elsewhere
  (airbench: bfloat16 always).
- The whitening bias trains for 3 epochs at the run's lr (airbench lowers its lr to 0 over them).
- TTA averages probabilities (airbench: logits).

``"cifar10-quick"`` is ``"cifar10-muon"`` with progressive resizing (`striate.data.progressive`):
its first 2 epochs train on random 28×28 crops of the (translated, flipped) 32×32 images, which
cost 0.77× the pixels (0.88× the time of a whole-image epoch on a 2-core CPU in bf16), and the
other 6 on whole images. Three epochs of 24×24 crops (``progressive:3:0.75``) save more time but
ended 0.35 points lower over six seeds on two CPUs; see BENCHMARKS.md.
"""

from __future__ import annotations

import copy
import difflib
import math
from typing import Any

import torch
from torch import nn

from striate.checks import is_int, is_number
from striate.engine.callbacks import Callback
from striate.errors import ConfigError
from striate.models.fastnet import FastNet, whiten_init
from striate.train.config import TrainConfig, merge

__all__ = ["RECIPES", "PatchWhitening", "decoupled_sgd", "model_callbacks", "recipe_config"]


def decoupled_sgd(
    lr: float, weight_decay: float, momentum: float, batch_size: int
) -> tuple[float, float]:
    """airbench's decoupled ``(lr, weight_decay)`` as torch SGD's on a batch-mean loss.

    airbench gives lr and wd "per 1024 examples" and divides both by ``1024·(1 + 1/(1-μ))``
    (its estimate of how much momentum enlarges the steps, so that μ can be tuned alone). Its
    torch lr ``lr/(1024·(1 + 1/(1-μ)))`` applies to the loss *summed* over the batch, and its
    torch decay ``λ`` (added as ``λ·p`` to the gradient) makes each step shrink the weights by
    ``wd·B/(1024·(1 + 1/(1-μ)))``. striate's loss is the batch *mean*, B times smaller: the
    same updates need a B times larger lr and a B times smaller λ (the shrinkage ``lr·λ`` is
    unchanged):

        lr_torch = lr · B / (1024·(1 + 1/(1-μ)))        (11.5·1024/7850.7 = 1.5 for airbench94)
        λ_torch  = wd / lr                               (0.0153/11.5 = 1.33e-3)
    """
    if not is_number(lr) or lr <= 0:
        raise ConfigError(f"decoupled_sgd: lr must be a positive number, got {lr!r}")
    if not is_number(weight_decay) or weight_decay < 0:
        raise ConfigError(f"decoupled_sgd: weight_decay must be >= 0, got {weight_decay!r}")
    if not is_number(momentum) or not 0 <= momentum < 1:
        raise ConfigError(f"decoupled_sgd: momentum must lie in [0, 1), got {momentum!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ConfigError(f"decoupled_sgd: batch_size must be a positive int, got {batch_size!r}")
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    return lr * batch_size / kilostep_scale, weight_decay / lr


# airbench94's hyper-parameters, as written in airbench94.py
_AIRBENCH_BATCH = 1024
_AIRBENCH_LR = 11.5  # per 1024 examples
_AIRBENCH_WD = 0.0153  # per 1024 examples, decoupled from the lr
_AIRBENCH_MOMENTUM = 0.85
_FAST_LR, _FAST_WD = decoupled_sgd(_AIRBENCH_LR, _AIRBENCH_WD, _AIRBENCH_MOMENTUM, _AIRBENCH_BATCH)

# airbench's lr schedule: linear from 0.2 up to 1 at 23% of the steps, then down to 0.07. As a
# one-cycle schedule (momentum left alone): start 1/div = 0.2; the fall to 1/div and the final
# phase to 1/final_div = 0.07 continue one straight line when the fall lasts
# (1 - 0.23)·(1 - 0.2)/(1 - 0.07) of the run.
_PEAK, _START, _END = 0.23, 0.2, 0.07
_FAST_SCHEDULE = {
    "div": 1 / _START,
    "final_div": 1 / _END,
    "pct_start": _PEAK,
    "pct_down": (1 - _PEAK) * (1 - _START) / (1 - _END),
    "max_momentum": None,
    "min_momentum": None,
}

# airbench94_muon's hyper-parameters, as written in airbench94_muon.py (its SGD lrs are per
# example of a summed loss; its weight decay 2e-6 per example is divided by each group's lr)
_MUON_BATCH = 2000
_MUON_BIAS_LR = 0.053 * _MUON_BATCH  # per batch of a mean loss
_MUON_HEAD_SCALE = math.sqrt(0.67 / 0.053)  # the head's lr is 12.6x the biases'
_MUON_DECAY = 2e-6 * _MUON_BATCH / _MUON_BIAS_LR

RECIPES: dict[str, dict[str, Any]] = {
    "cifar10-fast": {
        "data": "cifar10",
        "model": "cifar_fast",
        "epochs": 10,  # airbench: 9.9
        "batch_size": _AIRBENCH_BATCH,
        "opt": "nesterov",
        "nesterov": True,
        "momentum": _AIRBENCH_MOMENTUM,
        "lr": _FAST_LR,
        "weight_decay": _FAST_WD,
        "schedule": "onecycle",
        "schedule_options": _FAST_SCHEDULE,
        "label_smoothing": 0.2,
        "augment": "altflip,crop:2",
        "lookahead": 0.95,
        "tta": "flip,translate",
        "precision": "auto",
        "channels_last": True,
        "val_size": 0.0,  # airbench trains on all 50,000 images and reports test accuracy
    },
    "cifar10-muon": {
        "data": "cifar10",
        "model": "cifar_fast",
        "model_options": {
            "bn_bias_scale": 1.0,
            "logit_scale": _MUON_HEAD_SCALE / 256,
            "head_std": 1 / _MUON_HEAD_SCALE,
        },
        "epochs": 8,
        "batch_size": _MUON_BATCH,
        "opt": "muon",
        "lr": 0.24,
        "momentum": 0.6,
        "opt_options": {
            "aux_lr": _MUON_BIAS_LR,
            "aux_momentum": 0.85,
            "ns_steps": 3,
            "ns_precision": "auto",
            "normalize": True,
            "aux_weight_decay": _MUON_DECAY,
        },
        "weight_decay": 0.0,
        "schedule": "linear",
        "schedule_options": {"end_factor": 0.0},
        "label_smoothing": 0.2,
        "augment": "altflip,crop:2",
        "tta": "flip,translate",
        "precision": "auto",
        "channels_last": True,
        "val_size": 0.0,
    },
}
# cifar10-muon with its first 2 of 8 epochs on random 28×28 crops (progressive resizing)
RECIPES["cifar10-quick"] = {
    **copy.deepcopy(RECIPES["cifar10-muon"]),
    "augment": "altflip,crop:2,progressive:2:0.875",
}


def recipe_config(name: str, **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of recipe ``name`` with ``overrides`` on top (None values skipped).

    A recipe's SGD lr is per batch of its batch size: a ``batch_size`` override without an
    ``lr`` scales it in proportion (airbench's decoupled lr is per example; Goyal et al. 2017,
    arXiv:1706.02677), so that the recipe keeps working at another batch size. Under Muon that
    is the SGD part's ``aux_lr``: Muon's orthogonalised steps do not grow with the gradient.
    """
    if not isinstance(name, str) or name not in RECIPES:
        close = difflib.get_close_matches(str(name), list(RECIPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown recipe {name!r}{hint}; the recipes are: {', '.join(sorted(RECIPES))}"
        )
    values = copy.deepcopy(RECIPES[name])
    batch = overrides.get("batch_size")
    # other batch sizes are left for the config to reject with its own message
    if overrides.get("lr") is None and is_int(batch) and batch > 0:
        sgd = values["opt_options"] if values["opt"] == "muon" else values
        key = "aux_lr" if values["opt"] == "muon" else "lr"
        sgd[key] = sgd[key] * batch / values["batch_size"]
    return TrainConfig.from_dict(merge(values, overrides))


class PatchWhitening(Callback):
    """airbench's whitening layer: set it from training images when training starts
    (`whiten_init`), and train its bias for the first ``bias_epochs`` epochs only.

    The images are ``images`` drawn at random (seeded by the Trainer's seed) from the training
    loader's ImageSet, made float and normalised as the loader does, without augmentation.
    """

    def __init__(self, images: int = 5000, bias_epochs: int = 3, eps: float = 5e-4) -> None:
        for name, v, low in (("images", images, 1), ("bias_epochs", bias_epochs, 0)):
            if not is_int(v) or v < low:
                raise ConfigError(f"PatchWhitening: {name} must be an int >= {low}, got {v!r}")
        if not is_number(eps) or eps <= 0:
            raise ConfigError(f"PatchWhitening: eps must be a positive number, got {eps!r}")
        self.images, self.bias_epochs, self.eps = images, bias_epochs, float(eps)

    def on_fit_start(self, trainer: Any) -> None:
        model = trainer.model
        if not isinstance(model, FastNet):
            raise ConfigError(
                f"PatchWhitening works on the 'cifar_fast' model (FastNet), got "
                f"{type(model).__name__}"
            )
        if trainer.step > 0:
            return  # resumed: the checkpoint holds the whitening (the layer is never trained)
        whiten_init(model, self._sample(trainer), eps=self.eps)
        average = trainer.eval_model  # the EMA copy was taken before this hook ran
        if average is not model:
            average.whiten.load_state_dict(model.whiten.state_dict())

    def on_epoch_start(self, trainer: Any) -> None:
        # a parameter without gradient is skipped by torch's optimisers (momentum and decay too)
        trainer.model.whiten.bias.requires_grad_(trainer.epoch < self.bias_epochs)

    def _sample(self, trainer: Any) -> torch.Tensor:
        loader = trainer.train_loader
        data = getattr(loader, "data", None)
        if data is None or not hasattr(data, "images"):
            raise ConfigError(
                "PatchWhitening needs an in-memory training loader (BatchLoader) to draw "
                "images from; with another loader call striate.models.fastnet.whiten_init("
                "model, images) before training and leave this callback out"
            )
        g = torch.Generator().manual_seed(trainer.seed if trainer.seed is not None else 0)
        pick = torch.randperm(len(data.images), generator=g)[: self.images]
        x = data.images[pick].float().div_(255).to(trainer.device)
        normalize = getattr(loader, "normalize", None)
        return normalize(x) if normalize is not None else x


def model_callbacks(model: nn.Module) -> list[Callback]:
    """The callbacks a model needs to train as designed: `PatchWhitening` for a `FastNet`."""
    return [PatchWhitening()] if isinstance(model, FastNet) else []
