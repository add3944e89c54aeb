"""How faithful an attribution map is to the model: the deletion and insertion curves.

Petsiuk, Das & Saenko (BMVC 2018, "RISE", §4.1): rank the pixels by the map, most salient first.
*Deletion* removes them from the image in that order (replaces them by a baseline: black, or a
blurred copy) and records the softmax probability of the target class after each step; a map that
names the pixels the model relies on makes the probability fall fast, so its area under the curve
is small. *Insertion* starts from the baseline (the paper: a blurred copy of the image) and puts
the pixels back in the same order; a good map makes the probability rise fast, so its area is
large. The area is the trapezoid rule over the fraction of pixels, 0 to 1.

A map N×C×H×W is reduced to one value per pixel by summing |·| over the channels (``reduce=
"sum"``, the default) or taking the channel max of |·| (``"max"``, the saliency figure of Simonyan
et al. 2014); a map N×1×H×W (Grad-CAM's) ranks the pixels by its values as they are, so a signed
one-channel map puts its negative evidence last. Ties keep the raster order (argsort is stable).
The lecture slides (lecture 13) show the maps but no measure of their quality.

Each image's pixels are sorted once; the copies of step k are ``where(rank < count_k, …)``, built
`internal_batch_size` (image, step) rows at a time and evaluated under ``no_grad``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from striate import allocator
from striate.checks import fail, is_number, number, one_of, positive_int
from striate.errors import InputError
from striate.interpret.gradients import (
    as_fill,
    check_batch,
    class_scores,
    pick,
    targets_of,
)
from striate.interpret.layers import check_inputs, evaluating, gaussian_blur

__all__ = ["BASELINES", "REDUCTIONS", "auc", "blur", "deletion_curve", "insertion_curve"]

BASELINES = ("zeros", "blur")
"""The baselines by name; a number or a tensor broadcastable to the inputs works too."""

REDUCTIONS = ("sum", "max")
"""How a map with C channels becomes one value per pixel: Σ_c |a| or max_c |a|."""

BLUR_SIGMA = 5.0
"""σ of the blurred baseline in pixels, with an 11×11 window: the kernel of RISE's code
(``gkern(11, 5)``) for 224×224 images."""


def blur(
    images: torch.Tensor, sigma: float = BLUR_SIGMA, radius: int | None = None
) -> torch.Tensor:
    """A Gaussian blur of each channel of N×C×H×W images (σ in pixels, a window of 2·radius + 1
    taps, radius = ⌈σ⌉ by default), the border extended by its edge pixels (scipy's "nearest")
    so that the blurred image is no darker at the border; RISE's code pads with zeros instead."""
    x = check_inputs("blur", images, "images")
    sigma = number("blur", "sigma", sigma, low=0)
    r = math.ceil(sigma) if radius is None else positive_int("blur", "radius", radius)
    return gaussian_blur(x, sigma, r)


def deletion_curve(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    *,
    steps: int = 20,
    baseline: str | float | torch.Tensor = "zeros",
    reduce: str = "sum",
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fractions, probabilities): the target's softmax probability after the most salient
    fraction of the pixels (0, 1/steps, …, 1) is replaced by `baseline`, N×(steps + 1).

    The first column is the full image's probability, the last the baseline's. `baseline` is
    "zeros" (RISE's choice for deletion), "blur" (`blur` of the inputs), a number or a tensor
    broadcastable to the inputs. `target` as for the attribution methods (None: the class the
    model predicts for the full image). Fractions are the exact fractions of the H·W pixels.
    """
    options = (steps, baseline, reduce, internal_batch_size)
    return _curve("deletion_curve", model, inputs, attributions, target, *options, insert=False)


def insertion_curve(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: torch.Tensor,
    target: Any = None,
    *,
    steps: int = 20,
    baseline: str | float | torch.Tensor = "blur",
    reduce: str = "sum",
    internal_batch_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(fractions, probabilities): the target's softmax probability when the most salient
    fraction of the pixels (0, 1/steps, …, 1) is put into `baseline` (default "blur", RISE's
    choice for insertion), N×(steps + 1): the first column is the baseline's probability, the
    last the full image's. Options as for `deletion_curve`."""
    options = (steps, baseline, reduce, internal_batch_size)
    return _curve("insertion_curve", model, inputs, attributions, target, *options, insert=True)


def auc(fractions: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """The area under each curve by the trapezoid rule over `fractions` (0 to 1), one per row of
    `probabilities` (N×points; a single curve of shape (points,) gives a 0-d tensor)."""
    if not isinstance(fractions, torch.Tensor) or not isinstance(probabilities, torch.Tensor):
        raise InputError("auc: fractions and probabilities must be tensors (as the curves give)")
    if fractions.dim() != 1 or probabilities.shape[-1:] != fractions.shape or len(fractions) < 2:
        raise InputError(
            f"auc: fractions must be 1-D with at least 2 points and probabilities …×points with "
            f"as many, got shapes {tuple(fractions.shape)} and {tuple(probabilities.shape)}"
        )
    return torch.trapezoid(probabilities, fractions.to(probabilities), dim=-1)


# --------------------------------------------------------------------------- the curves


def _curve(
    owner: str,
    model: nn.Module,
    inputs: Any,
    attributions: Any,
    target: Any,
    steps: Any,
    baseline: Any,
    reduce: Any,
    internal_batch_size: Any,
    *,
    insert: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = check_inputs(owner, inputs)
    steps = positive_int(owner, "steps", steps)
    reduce = one_of(owner, "reduce", reduce, REDUCTIONS)
    batch = check_batch(owner, internal_batch_size)
    saliency = _pixel_scores(owner, attributions, x, reduce)
    base = _baseline(owner, baseline, x)
    n, pixels = x.shape[0], x.shape[-2] * x.shape[-1]
    order = saliency.flatten(1).sort(dim=1, descending=True, stable=True).indices
    positions = torch.arange(pixels, device=x.device).expand(n, -1)
    rank = torch.empty_like(order).scatter_(1, order, positions).view(n, *x.shape[-2:])
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * pixels / steps).long()
    counts = counts.to(x.device)
    points = steps + 1
    probs = torch.empty(n * points, dtype=x.dtype, device=x.device)
    with evaluating(model), torch.no_grad(), allocator.reusing_freed_memory(x.device.type == "cpu"):
        t = targets_of(model, target, class_scores(owner, model, x))
        for start in range(0, n * points, batch):  # row r: image r // points, step r % points
            r = torch.arange(start, min(start + batch, n * points), device=x.device)
            i, k = r // points, r % points
            chosen = (rank[i] < counts[k].view(-1, 1, 1))[:, None]  # the most salient pixels
            kept, put = (base[i], x[i]) if insert else (x[i], base[i])
            copies = torch.where(chosen, put, kept)
            probs[r] = pick(class_scores(owner, model, copies).softmax(1), t[i])
    return counts.to(x.dtype) / pixels, probs.view(n, points)


def _pixel_scores(owner: str, attributions: Any, x: torch.Tensor, reduce: str) -> torch.Tensor:
    """The map as one score per pixel, N×H×W (see the module docstring)."""
    if not isinstance(attributions, torch.Tensor):
        raise InputError(
            f"{owner}: attributions must be a tensor N×C×H×W or N×1×H×W, got "
            f"{type(attributions).__name__}"
        )
    n, c, h, w = x.shape
    shape = tuple(attributions.shape)
    if shape not in ((n, c, h, w), (n, 1, h, w)):
        raise InputError(
            f"{owner}: attributions must have the inputs' shape {(n, c, h, w)} or {(n, 1, h, w)}, "
            f"got {shape}; upsample a coarse map to the inputs' size first (e.g. grad_cam's "
            f"upsample=True)"
        )
    a = attributions.detach().to(x.device)
    if not a.is_floating_point():
        a = a.float()
    if a.shape[1] == 1:
        return a[:, 0]
    return a.abs().sum(1) if reduce == "sum" else a.abs().amax(1)


def _baseline(owner: str, baseline: Any, x: torch.Tensor) -> torch.Tensor:
    """The baseline images N×C×H×W: by name, a number or a broadcastable tensor."""
    if isinstance(baseline, str):
        one_of(owner, "baseline", baseline, BASELINES)
        return torch.zeros_like(x) if baseline == "zeros" else blur(x)
    if isinstance(baseline, torch.Tensor) or is_number(baseline):
        return as_fill(owner, "baseline", baseline, x)
    raise fail(owner, "baseline", '"zeros", "blur", a number or a tensor', baseline)
