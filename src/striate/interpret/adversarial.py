"""Fooling images: small changes to an image that change what the model says.

- `fgsm`: the fast gradient sign method of Goodfellow, Shlens & Szegedy, "Explaining and
  Harnessing Adversarial Examples", ICLR 2015: x + ε·sign(∇ₓ L(x, y)), one step away from the
  true class y; targeted, x − ε·sign(∇ₓ L(x, t)), one step toward class t.
- `fooling_image`: the lecture's fooling image ("pick a class, modify the image to maximise it,
  repeat until the network is fooled") as Kurakin, Goodfellow & Bengio's iterative targeted
  method ("Adversarial Examples in the Physical World", ICLR workshop 2017, arXiv:1607.02533,
  2016): x ← Clip_{x₀,ε}(x + α·sign(∇ₓ log p_t(x))), each image stopped once it is classified
  as t.
- `magnified_difference`: the change made, magnified, as the lecture's figures show it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import boolean, number, one_of, positive_int, positive_number
from striate.errors import ConfigError, InputError, StriateWarning
from striate.interpret.ascent import AUTO, input_space
from striate.interpret.layers import check_inputs, evaluating, placement, resolve_targets
from striate.progress import progress_bar

__all__ = ["fgsm", "fooling_image", "magnified_difference"]

OBJECTIVES = ("log_probability", "score")


def fgsm(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | str | Sequence[int | str] | torch.Tensor | None = None,
    *,
    epsilon: float = 8 / 255,
    targeted: bool = False,
    pixel_range: Any = AUTO,
) -> torch.Tensor:
    """The fast gradient sign method: each pixel of `inputs` (N×C×H×W) moved by `epsilon`.

    Untargeted, `target` is the true class (the model's prediction when None) and the step raises
    its cross-entropy loss; with ``targeted=True`` the step lowers the loss of class `target`.
    The result is clipped to the model's pixel range (0–1 for an `ImageClassifier`).
    """
    owner = "fgsm"
    x0 = check_inputs(owner, inputs, "inputs")
    epsilon = positive_number(owner, "epsilon", epsilon)
    targeted = boolean(owner, "targeted", targeted)
    if targeted and target is None:
        raise ConfigError(f"{owner}: targeted=True needs the target class (target=…)")
    space = input_space(model, pixel_range, owner)
    device, dtype = placement(model)
    x = x0.detach().to(device, dtype)
    with evaluating(model), torch.enable_grad():
        x.requires_grad_(True)
        logits = model(x)
        classes = resolve_targets(target, logits, getattr(model, "classes", None))
        loss = F.cross_entropy(logits, classes, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    sign = -1.0 if targeted else 1.0
    return space.clamp(x.detach() + sign * epsilon * grad.sign())


def fooling_image(
    model: nn.Module,
    inputs: torch.Tensor,
    target: int | str | Sequence[int | str] | torch.Tensor,
    *,
    epsilon: float | None = 8 / 255,
    step_size: float = 1 / 255,
    max_steps: int = 100,
    objective: str = "log_probability",
    pixel_range: Any = AUTO,
    progress: bool = True,
) -> torch.Tensor:
    """`inputs` (N×C×H×W) changed until the model predicts class `target` for each image.

    Each step moves every pixel of the images not yet fooled by `step_size` along the sign of the
    gradient of `objective` — ``"log_probability"`` of the target (Kurakin et al.) or its
    unnormalised ``"score"`` (the lecture) — then keeps the change within `epsilon` of the input
    in every pixel (None: no bound, the lecture's version) and within the pixel range. Warns when
    some images are still not fooled after `max_steps`.
    """
    owner = "fooling_image"
    x0 = check_inputs(owner, inputs, "inputs")
    if target is None:
        raise ConfigError(f"{owner}: give the target class the model should be fooled into")
    epsilon = number(owner, "epsilon", epsilon, low=0, low_open=True, allow_none=True)
    step_size = positive_number(owner, "step_size", step_size)
    max_steps = positive_int(owner, "max_steps", max_steps)
    objective = one_of(owner, "objective", objective, OBJECTIVES)
    space = input_space(model, pixel_range, owner)
    device, dtype = placement(model)
    x0 = x0.detach().to(device, dtype)
    low, high = x0 - (epsilon or math.inf), x0 + (epsilon or math.inf)
    x = x0.clone()
    with (
        evaluating(model),
        torch.enable_grad(),
        progress_bar(owner, max_steps, "steps", enabled=progress) as advance,
    ):
        for _ in range(max_steps):
            x.requires_grad_(True)
            logits = model(x)
            classes = resolve_targets(target, logits, getattr(model, "classes", None))
            fooled = logits.detach().argmax(1) == classes
            if fooled.all():
                break
            out = logits.log_softmax(1) if objective == "log_probability" else logits
            (grad,) = torch.autograd.grad(out.gather(1, classes[:, None]).sum(), x)
            stepped = space.clamp(
                torch.minimum(torch.maximum(x.detach() + step_size * grad.sign(), low), high)
            )
            x = torch.where(fooled.reshape(-1, 1, 1, 1), x.detach(), stepped)
            advance(1)
        else:
            with torch.no_grad():
                fooled = model(x).argmax(1) == classes
    x = x.detach()
    if not fooled.all():
        warnings.warn(
            f"{owner}: {int((~fooled).sum())} of {len(x)} images are still not classified as the "
            f"target after {max_steps} steps; raise max_steps, step_size or epsilon",
            StriateWarning,
            stacklevel=2,
        )
    return x


def magnified_difference(
    inputs: torch.Tensor, adversarial: torch.Tensor, factor: float = 10.0
) -> torch.Tensor:
    """The change from `inputs` to `adversarial` (0–1 images) as an image: 0.5 + factor·δ clipped
    to [0, 1], so mid-grey is no change (the lecture's "10x difference")."""
    owner = "magnified_difference"
    check_inputs(owner, inputs, "inputs")
    check_inputs(owner, adversarial, "adversarial")
    if inputs.shape != adversarial.shape:
        raise InputError(
            f"{owner}: inputs and adversarial must have one shape, got {tuple(inputs.shape)} and "
            f"{tuple(adversarial.shape)}"
        )
    factor = positive_number(owner, "factor", factor)
    delta = adversarial.detach() - inputs.detach().to(adversarial.device, adversarial.dtype)
    return (0.5 + factor * delta).clamp(0, 1)
