"""Test-time augmentation: average a model's predictions over fixed views of each image.

    views = parse_tta("flip,translate")       # True and "flip" mean mirror images only
    log_p = tta_log_probs(model, x, views)     # log of the weighted mean of the probabilities

The views and weights are those of airbench (Jordan 2024, arXiv:2404.00498, ``infer`` in
``airbench94.py``): ``flip`` averages each image with its mirror image; ``translate:N`` (N = 1 by
default) gives half the weight to the image and half to two copies shifted by N pixels, one
up-left and one down-right, with reflected borders; ``flip,translate`` mirrors all three, so six
views weighted 1/4, 1/4 and 1/8 four times. Predictions are averaged as probabilities, the way
an ensemble averages its members (airbench averages logits; the two rank classes alike in
almost every case).

``tencrop:S1/S2/…`` is the lectures' multi-scale test protocol (002 lecture 7; Krizhevsky et al.
2012, Simonyan & Zisserman 2015): at each scale the image is resized (bilinear) so that its short
side is S, and the four corner and the centre crops of the model's input size are taken with their
mirror images: ten views per scale, equally weighted. ``tencrop`` alone is one scale an eighth
larger than the image (36 for 32×32 CIFAR images, 252 for 224); ``+N`` is a scale that keeps the
image's size and reflect-pads it by N pixels instead (``tencrop:+4`` at 32 px: the crops of a
network trained with 4-pixel random crops). Its cost is 10 forward passes per
scale: ``tencrop:224/256/384/480/640`` at 224 px runs the model 50 times per image, where ``flip``
runs it twice.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from striate.data.augment_spec import resolve_auto
from striate.errors import ConfigError

__all__ = ["View", "parse_tta", "tta_log_probs", "untrained_views"]

View = tuple[float, Callable[[torch.Tensor], torch.Tensor]]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _mirror(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _shift(pixels: int, sign: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def shift(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if pixels >= min(h, w):
            raise ConfigError(
                f"tta translate:{pixels} needs images larger than {pixels} pixels, got {h}×{w}"
            )
        padded = F.pad(x, (pixels,) * 4, mode="reflect")
        start = pixels + sign * pixels  # 0: the view shifted down-right; 2N: up-left
        return padded[..., start : start + h, start : start + w]

    return shift


def _crop(scale: int | str | None, corner: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The view: resized so the short side is `scale` (None: an eighth larger than the image;
    "+N": not resized but reflect-padded by N pixels), then cut to the image's own size at
    `corner` (tl, tr, bl, br or centre)."""

    def crop(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if isinstance(scale, str):  # "+N": the same scale, shifted by N pixels
            pad = int(scale[1:])
            if pad >= min(h, w):
                raise ConfigError(f"tta tencrop:{scale} needs images larger than {pad} pixels")
            big = F.pad(x, (pad,) * 4, mode="reflect")
            top = {"t": 0, "b": 2 * pad, "c": pad}[corner[0]]
            left = {"l": 0, "r": 2 * pad, "e": pad}[corner[1]]
            return big[..., top : top + h, left : left + w]
        s = scale if scale is not None else min(h, w) + max(1, min(h, w) // 8)
        if s < min(h, w):
            raise ConfigError(
                f"tta tencrop:{s} is smaller than the {h}×{w} images: each scale must be at "
                f"least their short side, {min(h, w)}"
            )
        size = (s, round(w * s / h)) if h <= w else (round(h * s / w), s)
        big = x if size == (h, w) else F.interpolate(x, size, mode="bilinear", align_corners=False)
        top = {"t": 0, "b": size[0] - h, "c": (size[0] - h) // 2}[corner[0]]
        left = {"l": 0, "r": size[1] - w, "e": (size[1] - w) // 2}[corner[1]]
        return big[..., top : top + h, left : left + w]

    return crop


CORNERS = ("tl", "tr", "bl", "br", "ce")  # the four corners and the centre


def _tencrop(arg: str) -> tuple[View, ...]:
    scales: list[int | str | None] = [None]
    if arg:
        parts = arg.split("/")
        ok = len(set(parts)) == len(parts) and all(
            p.lstrip("+").isdigit() and int(p.lstrip("+")) >= (0 if p.startswith("+") else 1)
            for p in parts
        )
        if not ok:
            raise ConfigError(
                f"tta tencrop:S1/S2/... takes distinct image sizes in pixels (tencrop:224/256/384)"
                f" or paddings at the same scale (tencrop:+4), not {arg!r}"
            )
        scales = [p if p.startswith("+") else int(p) for p in parts]
    crops = [_crop(s, c) for s in scales for c in CORNERS]
    weight = 1 / (2 * len(crops))
    return tuple(
        [(weight, f) for f in crops] + [(weight, lambda x, f=f: _mirror(f(x))) for f in crops]
    )


def parse_tta(spec: bool | str | None) -> tuple[View, ...]:
    """The weighted views of a TTA spec: False/None/"none" (the image alone), True/"flip",
    "translate[:N]", "flip,translate[:N]" or "tencrop[:S1/S2/...]"."""
    if spec is None or spec is False or spec == "none":
        return ((1.0, _identity),)
    if spec is True:
        spec = "flip"
    if not isinstance(spec, str):
        raise ConfigError(f"tta must be true/false or a spec like 'flip,translate', got {spec!r}")
    name, _, arg = spec.strip().partition(":")
    if name == "tencrop":
        return _tencrop(arg)
    flip, pixels = False, 0
    for part in (p.strip() for p in spec.split(",")):
        name, _, arg = part.partition(":")
        if name == "flip" and not arg and not flip:
            flip = True
        elif name == "translate" and not pixels:
            try:
                pixels = int(arg) if arg else 1
            except ValueError:
                pixels = 0
            if pixels < 1:
                raise ConfigError(f"tta translate:N takes a number of pixels >= 1, not {arg!r}")
        else:
            raise ConfigError(
                f"bad tta part {part!r} in {spec!r}: use none, flip, translate[:N], "
                "flip,translate[:N] (each at most once) or tencrop[:S1/S2/...] alone"
            )
    views: list[View] = [(1.0, _identity)]
    if pixels:
        views = [(0.5, _identity), (0.25, _shift(pixels, -1)), (0.25, _shift(pixels, 1))]
    if flip:
        views = [(w / 2, f) for w, f in views] + [
            (w / 2, lambda x, f=f: _mirror(f(x))) for w, f in views
        ]
    return tuple(views)


def tta_log_probs(
    model: nn.Module, x: torch.Tensor, views: tuple[View, ...], *, logits: bool = False
) -> torch.Tensor:
    """log Σ wᵢ softmax(model(viewᵢ(x))), or Σ wᵢ model(viewᵢ(x)) with ``logits=True`` (for
    margin losses, whose scores are not log-probabilities). One view returns the model's output
    unchanged."""
    if len(views) == 1:
        return model(views[0][1](x)).float()
    outs = [model(view(x)).float() for _, view in views]
    weights = torch.tensor([w for w, _ in views], device=outs[0].device)
    if logits:
        return torch.einsum("v,vnc->nc", weights, torch.stack(outs))
    log_p = torch.stack([o.log_softmax(1) for o in outs]) + weights.log()[:, None, None]
    return torch.logsumexp(log_p, 0)


# the augmentations that show a model each test-time view during training
_SEEN_BY = {
    "flip": ("flip", "altflip"),
    "translate": ("crop", "translate", "affine"),
    "tencrop": ("crop", "translate", "affine", "scale"),
}


def untrained_views(
    tta: bool | str | None, augment: str | None, shape: tuple[int, int, int]
) -> list[str]:
    """Warnings for the test-time augmentation views of `tta` that the training augmentation
    `augment` never showed the model (mirror images of digits, say, are other symbols; such a view
    usually lowers accuracy). `augment` None: unknown, nothing to say."""
    if augment is None or len(parse_tta(tta)) == 1:
        return []
    trained = {
        item.strip().partition(":")[0] for item in resolve_auto(augment, shape[0]).split(",")
    }
    asked = {part.strip().partition(":")[0] for part in ("flip" if tta is True else tta).split(",")}
    if "tencrop" in asked:
        asked = {"flip", "tencrop"}
    shown = {"flip": "mirrored", "translate": "shifted", "tencrop": "shifted or rescaled"}
    return [
        f"--tta {view}: the model was not trained with {shown[view]} images (augment "
        f"{augment!r}), so this view may lower its accuracy"
        for view in ("flip", "translate", "tencrop")
        if view in asked and not trained & set(_SEEN_BY[view])
    ]
