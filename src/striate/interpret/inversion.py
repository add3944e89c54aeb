"""Feature inversion: an image whose features at a layer match a given image's.

Mahendran & Vedaldi, "Understanding Deep Image Representations by Inverting Them", CVPR 2015:

    x* = argmin_x ‖Φ(x) − Φ₀‖² / ‖Φ₀‖² + λ_α ‖x‖_α^α + λ_V R_V^β(x)

with the total-variation regulariser R_V^β(x) = Σ_{i,j} ((x_{i,j+1} − x_{i,j})² + (x_{i+1,j} −
x_{i,j})²)^{β/2}. The lecture 13 slide has R_V^β as the paper does, but its loss ‖Φ(x) − Φ₀‖²
drops the paper's normalisation by ‖Φ₀‖² (which makes one weight serve every layer) and its
regulariser omits the α-norm term. The paper also scales its regularisers by the image size and
pixel range; here both are summed over x − centre in units of the pixel range and divided by the
number of pixel values per image, so the weights do not depend on the image size. (The paper
optimises with momentum gradient descent; Adam and L-BFGS are offered here.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import integer, number, one_of, positive_int
from striate.errors import InputError
from striate.interpret.ascent import (
    AUTO,
    forward_to,
    input_space,
)
from striate.interpret.layers import check_inputs, evaluating, find_layer, placement
from striate.progress import progress_bar

__all__ = ["invert_features", "total_variation"]

OPTIMIZERS = ("adam", "lbfgs")
DEFAULT_LR = {"adam": 0.05, "lbfgs": 1.0}  # Adam: pixel change per step; L-BFGS: its step scale


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """R_V^β of each image of `x` (N×C×H×W → N; C×H×W → a scalar), summed over the channels.

    Past the last row and column the differences are zero (the edge pixel repeated), so every
    pixel has a term; with β = 2 that is the sum of all squared neighbour differences. A term whose
    differences are both zero has gradient zero for every β (the subgradient at a kink).
    """
    owner = "total_variation"
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4) or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{owner}: x must be a float tensor N×C×H×W or C×H×W, got {got}")
    beta = number(owner, "beta", beta, low=0, low_open=True)
    across = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1))  # x_{i,j+1} − x_{i,j}
    down = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))  # x_{i+1,j} − x_{i,j}
    s = across.square() + down.square()
    if beta != 2:
        nonzero = s > 0
        s = torch.where(nonzero, torch.where(nonzero, s, 1).pow(beta / 2), 0)
    return s.flatten(-3).sum(-1)


def invert_features(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | nn.Module,
    *,
    steps: int = 200,
    lr: float | None = None,
    optimizer: str = "adam",
    alpha: float = 6.0,
    alpha_weight: float = 1e-5,
    tv_weight: float = 0.05,
    beta: float = 2.0,
    init: torch.Tensor | None = None,
    pixel_range: Any = AUTO,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """Images (N×C×H×W, like `image`) whose `layer` features match `image`'s, by minimising
    Mahendran & Vedaldi's objective for `steps` iterations of ``"adam"`` (the pixels kept in the
    pixel range after each step) or ``"lbfgs"`` (strong-Wolfe line search, clipped at the end);
    `lr` is by default 0.05 for Adam (in input units) and 1 for L-BFGS.

    The search starts from `init`, or from the model's centre plus a little noise drawn from
    `seed`. One layer per call; the forward pass stops at `layer`.
    """
    owner = "invert_features"
    image = check_inputs(owner, image, "image")
    steps = positive_int(owner, "steps", steps)
    optimizer = one_of(owner, "optimizer", optimizer, OPTIMIZERS)
    lr = number(owner, "lr", DEFAULT_LR[optimizer] if lr is None else lr, low=0, low_open=True)
    alpha = number(owner, "alpha", alpha, low=1)
    alpha_weight = number(owner, "alpha_weight", alpha_weight, low=0)
    tv_weight = number(owner, "tv_weight", tv_weight, low=0)
    beta = number(owner, "beta", beta, low=0, low_open=True)
    seed = integer(owner, "seed", seed, low=0)
    find_layer(model, layer)
    space = input_space(model, pixel_range, owner)
    device, dtype = placement(model)
    x0 = image.detach().to(device, dtype)
    if init is None:
        x = space.start(x0.shape, torch.Generator().manual_seed(seed))
    else:
        x = check_inputs(owner, init, "init").detach().to(device, dtype).clone()
        if x.shape != x0.shape:
            raise InputError(
                f"{owner}: init must have the image's shape {tuple(x0.shape)}, got {tuple(x.shape)}"
            )
    pixels = x0[0].numel()

    with evaluating(model), torch.enable_grad():
        with torch.no_grad():
            target = forward_to(model, layer, x0)
        dims = tuple(range(1, target.dim()))
        norm = target.square().sum(dims).clamp_min(torch.finfo(dtype).tiny)
        x.requires_grad_(True)

        def objective() -> torch.Tensor:
            features = forward_to(model, layer, x)
            d = (x - space.centre) / space.span
            return (
                (features - target).square().sum(dims) / norm
                + alpha_weight * d.abs().pow(alpha).flatten(1).sum(1) / pixels
                + tv_weight * total_variation(d, beta) / pixels
            ).sum()

        if optimizer == "adam":
            adam = torch.optim.Adam([x], lr=lr)
            with progress_bar(owner, steps, "steps", enabled=progress) as advance:
                for _ in range(steps):
                    x.grad = torch.autograd.grad(objective(), x)[0]
                    adam.step()
                    with torch.no_grad():
                        x.copy_(space.clamp(x))
                    advance(1)
        else:  # one call: L-BFGS keeps its curvature pairs and line search within it
            evaluations = steps * 5 // 4  # torch's default max_eval
            lbfgs = torch.optim.LBFGS(
                [x],
                lr=lr,
                max_iter=steps,
                max_eval=evaluations,
                tolerance_grad=0,
                tolerance_change=0,
                line_search_fn="strong_wolfe",
            )
            with progress_bar(owner, evaluations, "evaluations", enabled=progress) as advance:

                def closure() -> torch.Tensor:
                    loss = objective()
                    x.grad = torch.autograd.grad(loss, x)[0]
                    advance(1)
                    return loss

                lbfgs.step(closure)
    return space.clamp(x.detach())
