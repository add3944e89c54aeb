"""Images made by gradient ascent on the pixels: what a class or a unit responds to, and DeepDream.

- `class_visualization`: ``argmax_I S_c(I) − λ‖I‖²`` on the unnormalised class score (Simonyan,
  Vedaldi & Zisserman, "Deep Inside Convolutional Networks", ICLR workshop 2014), with the
  regularisers of Yosinski, Clune, Nguyen, Fuchs & Lipson, "Understanding Neural Networks Through
  Deep Visualization", ICML Deep Learning workshop **2015** (arXiv:1506.06579; the lecture 13
  slides date it 2014): periodic Gaussian blur, clipping the pixels of smallest norm and those of
  smallest contribution, and a random jitter undone after each step.
- `unit_visualization`: the same for a channel of a named layer (its mean activation).
- `deep_dream`: the slides' ``make_step`` (Mordvintsev, Olah & Tyka, "Inceptionism: Going Deeper
  into Neural Networks", Google Research blog 2015) run over octaves.

Where the slides differ from the papers: they say "clip pixels with small values" and "clip
pixels with small gradients"; Yosinski et al. clip pixels of small *norm* (over the channels) and
of small *contribution*, |Σ_c x_c ∂f/∂x_c|, the linear estimate of how much the activation would
drop were the pixel set to zero. "Initialise the image to zeros" and DeepDream's clip to
[−mean, 255 − mean] are in Caffe's mean-subtracted 0–255 input: here zero is the model's centre
(an `ImageClassifier`'s normalisation mean; the middle of `pixel_range` otherwise) and the clip is
the model's pixel range (0–1 for an `ImageClassifier`).

Every function puts the model in eval mode for the call and restores it, optimises only the image
(``torch.autograd.grad`` w.r.t. the image: the parameters and their ``.grad`` are untouched), runs
on the model's device, draws its random choices on the CPU from `seed`, and shows progress through
`striate.progress`. The helpers below the public functions are shared with `adversarial` and
`inversion`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import fail, integer, is_number, non_negative_int, number, positive_int
from striate.errors import ConfigError
from striate.interpret.layers import (
    check_inputs,
    evaluating,
    find_layer,
    gaussian_blur,
    placement,
    resolve_targets,
)
from striate.models.io import ImageClassifier
from striate.progress import progress_bar

__all__ = ["class_visualization", "deep_dream", "unit_visualization"]

AUTO = "auto"


def class_visualization(
    model: nn.Module,
    target: int | str | Sequence[int | str],
    *,
    shape: Sequence[int] | None = None,
    steps: int = 200,
    lr: float = 0.01,
    l2: float = 1e-3,
    blur_every: int = 10,
    blur_sigma: float = 0.5,
    jitter: int = 8,
    clip_small_pixels: float = 0.0,
    clip_small_contributions: float = 0.0,
    pixel_range: Any = AUTO,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """An image the model scores as class `target`: gradient ascent on the unnormalised score.

    Returns 1×C×H×W (N×C×H×W for a list of N classes, one image each) in the model's input space.
    `shape` is (C, H, W), by default the model's (`in_shape` or `spec["in_shape"]`). Each step
    moves the pixels by `lr` on average (the gradient divided by its mean absolute value), after a
    random roll of up to `jitter` pixels that is undone after the step; every `blur_every` steps
    the image is blurred (σ = `blur_sigma` pixels); `clip_small_pixels` / `clip_small_contributions`
    are the fractions of pixels of smallest norm / contribution reset to the centre each step.
    `target` is a class index or name (an `ImageClassifier`'s `classes`).
    """
    owner = "class_visualization"
    space = input_space(model, pixel_range, owner)
    c, h, w = _shape(model, shape, owner)
    options = _ascent_options(owner, locals())
    g = _generator(owner, seed)
    if target is None:
        raise ConfigError(f"{owner}: give the target class (an index or a class name)")
    with evaluating(model), torch.enable_grad():
        x = space.start((1, c, h, w), g)
        with torch.no_grad():
            scores = _scores(model(x), owner)
        n = len(target) if isinstance(target, (list, tuple)) else 1
        classes = resolve_targets(target, scores.expand(n, -1), getattr(model, "classes", None))
        x = x.expand(n, -1, -1, -1).clone()

        def objective(xj: torch.Tensor) -> torch.Tensor:
            return model(xj).gather(1, classes[:, None]).sum()

        return _ascend(objective, x, space, g, owner, progress, **options)


def unit_visualization(
    model: nn.Module,
    layer: str | nn.Module,
    channel: int,
    *,
    shape: Sequence[int] | None = None,
    steps: int = 200,
    lr: float = 0.01,
    l2: float = 1e-3,
    blur_every: int = 10,
    blur_sigma: float = 0.5,
    jitter: int = 8,
    clip_small_pixels: float = 0.0,
    clip_small_contributions: float = 0.0,
    pixel_range: Any = AUTO,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """An image that drives channel `channel` of `layer` (its mean over positions) up: the
    options are `class_visualization`'s. The forward pass stops at `layer`, so an image of any
    size the layers up to it accept will do. Returns 1×C×H×W in the model's input space."""
    owner = "unit_visualization"
    space = input_space(model, pixel_range, owner)
    c, h, w = _shape(model, shape, owner)
    options = _ascent_options(owner, locals())
    g = _generator(owner, seed)
    find_layer(model, layer)
    with evaluating(model), torch.enable_grad():
        x = space.start((1, c, h, w), g)
        with torch.no_grad():
            a = forward_to(model, layer, x)
        if a.dim() < 2:
            raise ConfigError(
                f"{owner}: layer {layer!r} gives a {a.dim()}-D output; give a layer "
                f"whose output is N×C×H×W (or N×C)"
            )
        integer(
            owner,
            "channel",
            channel,
            low=0,
            high=a.shape[1] - 1,
            hint=f"layer {layer!r} has {a.shape[1]} channels",
        )

        def objective(xj: torch.Tensor) -> torch.Tensor:
            return forward_to(model, layer, xj)[:, channel].mean()

        return _ascend(objective, x, space, g, owner, progress, **options)


def deep_dream(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | nn.Module,
    *,
    octaves: int = 4,
    octave_scale: float = 1.4,
    steps: int = 10,
    step_size: float = 1.5,
    jitter: int = 32,
    pixel_range: Any = AUTO,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """DeepDream: amplify what `layer` already sees in `image` (N×C×H×W, the model's input).

    Each step (the slides' ``make_step``) rolls the image by up to `jitter` pixels, forwards it to
    `layer`, sets the layer's gradient to its activation (ascent on ‖a‖²/2), moves the pixels by
    the gradient divided by its mean absolute value times `step_size` — in levels of an 8-bit image
    as in the slides (1.5/255 of the pixel range; of one input unit when the range is unbounded) —
    undoes the roll and clips to the pixel range. The image is processed from the smallest of
    `octaves` scales (each `octave_scale` times smaller) up, the detail added at one scale carried
    to the next (the multiscale processing the slides mention but do not show).
    """
    owner = "deep_dream"
    space = input_space(model, pixel_range, owner)
    image = check_inputs(owner, image, "image")
    octaves = positive_int(owner, "octaves", octaves)
    octave_scale = number(owner, "octave_scale", octave_scale, low=1)
    steps = positive_int(owner, "steps", steps)
    step = number(owner, "step_size", step_size, low=0) * space.span / 255
    jitter = non_negative_int(owner, "jitter", jitter)
    g = _generator(owner, seed)
    find_layer(model, layer)
    device, dtype = placement(model)
    bases = [image.detach().to(device, dtype)]
    for _ in range(octaves - 1):
        h, w = bases[-1].shape[-2:]
        size = (max(1, round(h / octave_scale)), max(1, round(w / octave_scale)))
        bases.append(F.interpolate(bases[-1], size=size, mode="bilinear", align_corners=False))
    detail = torch.zeros_like(bases[-1])
    with (
        evaluating(model),
        torch.enable_grad(),
        progress_bar(owner, octaves * steps, "steps", enabled=progress) as advance,
    ):
        for base in reversed(bases):
            if detail.shape != base.shape:
                detail = F.interpolate(
                    detail, size=base.shape[-2:], mode="bilinear", align_corners=False
                )
            x = base + detail
            for _ in range(steps):
                dy, dx = _shift(jitter, g)
                xj = x.roll((dy, dx), (2, 3)).requires_grad_(True)
                a = forward_to(model, layer, xj)
                (grad,) = torch.autograd.grad(a, xj, grad_outputs=a.detach())  # ∇ ‖a‖²/2
                x = space.clamp(x + step * _l1_normalised(grad.roll((-dy, -dx), (2, 3))))
                advance(1)
            detail = x - base
    return x.detach()


# ---------------------------------------------------------------------------------------------
# The ascent loop of class and unit visualisation.


def _ascend(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    space: InputSpace,
    g: torch.Generator,
    label: str,
    progress: bool,
    *,
    steps: int,
    lr: float,
    l2: float,
    blur_every: int,
    blur_sigma: float,
    jitter: int,
    clip_small_pixels: float,
    clip_small_contributions: float,
) -> torch.Tensor:
    """Yosinski et al.'s loop: x ← r(x + lr·∇(f(x) − λ‖x − centre‖²)), jittered."""
    with progress_bar(label, steps, "steps", enabled=progress) as advance:
        for step in range(steps):
            dy, dx = _shift(jitter, g)
            xj = x.roll((dy, dx), (2, 3)).requires_grad_(True)
            gain = objective(xj) - l2 * (xj - space.centre).square().sum()
            (grad,) = torch.autograd.grad(gain, xj)
            grad = grad.roll((-dy, -dx), (2, 3))
            x = x + lr * _l1_normalised(grad)
            if blur_every and (step + 1) % blur_every == 0:
                x = gaussian_blur(x, blur_sigma)
            d = x - space.centre
            if clip_small_pixels:
                x = _reset_smallest(x, d.norm(dim=1, keepdim=True), clip_small_pixels, space)
            if clip_small_contributions:
                contribution = (d * grad).sum(1, keepdim=True).abs()
                x = _reset_smallest(x, contribution, clip_small_contributions, space)
            x = space.clamp(x)
            advance(1)
    return x.detach()


def _ascent_options(owner: str, given: dict[str, Any]) -> dict[str, Any]:
    """The options of `_ascend` picked from the caller's arguments (`locals()`), checked."""
    fraction = {"low": 0, "high": 1, "high_open": True}
    return {
        "steps": positive_int(owner, "steps", given["steps"]),
        "lr": number(owner, "lr", given["lr"], low=0),
        "l2": number(owner, "l2", given["l2"], low=0),
        "blur_every": non_negative_int(owner, "blur_every", given["blur_every"]),
        "blur_sigma": number(owner, "blur_sigma", given["blur_sigma"], low=0, low_open=True),
        "jitter": non_negative_int(owner, "jitter", given["jitter"]),
        **{
            name: number(owner, name, given[name], **fraction)
            for name in ("clip_small_pixels", "clip_small_contributions")
        },
    }


def _shift(jitter: int, g: torch.Generator) -> tuple[int, int]:
    """A random roll (dy, dx), each in [−jitter, jitter], drawn on the CPU."""
    if not jitter:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
    return dy, dx


def _l1_normalised(grad: torch.Tensor) -> torch.Tensor:
    """Each image's gradient divided by its mean absolute value (the slides' g / mean|g|)."""
    scale = grad.abs().mean((1, 2, 3), keepdim=True)
    return grad / scale.clamp_min(torch.finfo(grad.dtype).tiny)


def _reset_smallest(
    x: torch.Tensor, measure: torch.Tensor, fraction: float, space: InputSpace
) -> torch.Tensor:
    """`x` with the `fraction` of each image's pixels of smallest `measure` (N×1×H×W) set to the
    centre."""
    flat = measure.flatten(1)
    k = int(fraction * flat.shape[1])
    if k == 0:
        return x
    threshold = flat.kthvalue(k, dim=1).values.reshape(-1, 1, 1, 1)
    return torch.where(measure <= threshold, space.centre.expand_as(x), x)


# ---------------------------------------------------------------------------------------------
# Shared with adversarial.py and inversion.py: the model's input space, its device, eval mode,
# a forward pass that stops at a layer, argument checks.


@dataclass(frozen=True)
class InputSpace:
    """Where images live for a model: `centre` (1×C×1×1 or a scalar tensor: the zero of the
    papers' mean-subtracted input) and the pixel range `low`–`high` (None: unbounded)."""

    centre: torch.Tensor
    low: float | None
    high: float | None

    @property
    def span(self) -> float:
        """The width of the pixel range (1 when unbounded)."""
        return 1.0 if self.low is None or self.high is None else self.high - self.low

    def clamp(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.low is None else x.clamp(self.low, self.high)

    def start(self, shape: Sequence[int], g: torch.Generator, noise: float = 0.01) -> torch.Tensor:
        """The centre plus Gaussian noise of `noise` × span (drawn on the CPU from `g`)."""
        z = torch.randn(tuple(shape), generator=g, dtype=torch.float64)
        z = z.to(self.centre.device, self.centre.dtype)
        return self.clamp(self.centre + noise * self.span * z)


def input_space(model: nn.Module, pixel_range: Any, owner: str) -> InputSpace:
    """The model's `InputSpace`: an `ImageClassifier` takes 0–1 images and its normalisation mean
    is the centre; any other module is unbounded around 0 unless `pixel_range` = (low, high) is
    given (its middle is then the centre); ``pixel_range=None`` makes any model unbounded."""
    device, dtype = placement(model)
    classifier = isinstance(model, ImageClassifier)
    if isinstance(pixel_range, str) and pixel_range == AUTO:
        pixel_range = (0.0, 1.0) if classifier else None
    if pixel_range is None:
        low = high = None
    else:
        ok = (
            isinstance(pixel_range, (list, tuple))
            and len(pixel_range) == 2
            and all(is_number(v) and math.isfinite(v) for v in pixel_range)
            and pixel_range[0] < pixel_range[1]
        )
        if not ok:
            raise fail(
                owner, "pixel_range", "'auto', None or (low, high) with low < high", pixel_range
            )
        low, high = float(pixel_range[0]), float(pixel_range[1])
    if classifier:
        centre = model.mean.detach().to(device, dtype)
        if low is not None:
            centre = centre.clamp(low, high)
    else:
        centre = torch.tensor(0.0 if low is None else (low + high) / 2, device=device, dtype=dtype)
    return InputSpace(centre, low, high)


class _Reached(Exception):
    """Raised by the hook in `forward_to` to end the forward pass at the layer."""


def forward_to(model: nn.Module, layer: str | nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`layer`'s output for input `x`, the forward pass stopped there (the slides'
    ``net.forward(end=…)``): the layers after it never run, so they need not accept its size."""
    module = find_layer(model, layer)
    seen: list[Any] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        seen.append(out)
        raise _Reached

    handle = module.register_forward_hook(hook)
    try:
        model(x)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not seen:
        raise ConfigError(f"layer {layer!r} is not used in the model's forward pass; pick another")
    if not isinstance(seen[0], torch.Tensor):
        raise ConfigError(
            f"layer {layer!r} gives a {type(seen[0]).__name__}, not a tensor; pick a layer whose "
            f"output is N×C×H×W"
        )
    return seen[0]


def _shape(model: nn.Module, shape: Any, owner: str) -> tuple[int, int, int]:
    if shape is None:
        shape = getattr(model, "in_shape", None)
        if shape is None:
            shape = (getattr(model, "spec", None) or {}).get("in_shape")
        if shape is None:
            raise ConfigError(
                f"{owner}: the model does not say its input shape; give shape=(C, H, W)"
            )
    if (
        isinstance(shape, (str, bytes))
        or not isinstance(shape, Sequence)
        or len(shape) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    ):
        raise fail(owner, "shape", "(C, H, W), three positive integers", shape)
    return int(shape[0]), int(shape[1]), int(shape[2])


def _scores(out: Any, owner: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{owner}: the model must return class scores N×K, got {got}; for a layer's unit use "
            f"unit_visualization"
        )
    return out


def _generator(owner: str, seed: Any) -> torch.Generator:
    return torch.Generator().manual_seed(integer(owner, "seed", seed, low=0))
