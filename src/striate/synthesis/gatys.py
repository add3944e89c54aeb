"""Images by optimisation through VGG features: Gatys style transfer and neural texture synthesis.

Style transfer (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural
Networks"): starting from the content (or the style, or noise), optimise the pixels so that the
features of ``relu4_2`` stay the content's and the Gram matrices of ``relu1_1`` … ``relu5_1``
become the style's, with a small total-variation penalty. Several styles are blended on their Gram
matrices; ``style_scale`` resizes the styles first (the style-size sweep of the slides);
``preserve_colour`` transfers on luminance only (Gatys et al. 2016b, see `colour`); ``scales``
optimises coarse to fine, each result upsampled as the next start. The losses are those of
`losses` (Gram matrices divided by C·H·W, mean squared differences), each layer's divided by the
mean square of its target (`relative_layer_weights`: what Gatys' rescaled VGG achieves), so the
weights are ratios of relative errors; the defaults (content 1, style 3, TV 1 per pixel) were
tuned on VGG-16 HED at 128–256 px.

Texture synthesis (Gatys, Ecker & Bethge 2015, "Texture Synthesis Using Convolutional Neural
Networks"): from white noise, match only the Gram matrices of the source, on the ReLUs and the
pooling layers (the paper's best set is conv1_1 and pool1–pool4; with the ReLUs of the five blocks
here, which the style-transfer paper uses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from striate.checks import boolean, number, one_of, positive_int
from striate.errors import ConfigError, InputError
from striate.synthesis.colour import match_luminance, rgb_to_yiq, with_colour_of
from striate.synthesis.features import vgg_features
from striate.synthesis.images import resize_to
from striate.synthesis.losses import (
    blend_grams,
    content_loss,
    gram_matrix,
    style_loss,
    total_variation,
)
from striate.synthesis.optimize import OPTIMIZERS, Optimized, optimize_image

__all__ = [
    "CONTENT_LAYERS",
    "INITS",
    "STYLE_LAYERS",
    "TEXTURE_LAYERS",
    "relative_layer_weights",
    "style_targets",
    "stylize",
    "synthesize_texture",
]

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TEXTURE_LAYERS = (
    "relu1_1", "pool1", "relu2_1", "pool2", "relu3_1", "pool3", "relu4_1", "pool4", "relu5_1"
)  # fmt: skip
INITS = ("content", "style", "noise")
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 3.0
TV_WEIGHT = 1.0

Snapshot = Callable[[int, torch.Tensor], None]


def _image(owner: str, name: str, image: object) -> torch.Tensor:
    """`image` (3×H×W or 1×3×H×W, float, 0–1) as 1×3×H×W."""
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        got = f"{image.dtype} tensor" if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"{owner}: {name} must be a float image tensor 1×3×H×W in 0–1, got {got}")
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise InputError(
            f"{owner}: {name} must be one RGB image, 1×3×H×W or 3×H×W, got {tuple(image.shape)}"
        )
    if not bool(torch.isfinite(x).all()) or float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6:
        raise InputError(
            f"{owner}: {name} must hold values in 0–1 (divide 8-bit images by 255; "
            f"striate.synthesis.images.read_image does)"
        )
    return x.detach()


def _layers(owner: str, name: str, layers: Sequence[str]) -> tuple[str, ...]:
    if isinstance(layers, str) or not layers or not all(isinstance(v, str) for v in layers):
        raise ConfigError(
            f"{owner}: {name} must be a non-empty list of layer names, got {layers!r}"
        )
    return tuple(layers)


def _features(
    owner: str, extractor: Callable, image: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The extractor's features of `image` at `layers`, detached; one line if the image is too
    small for them or the extractor lacks one."""
    try:
        with torch.no_grad():
            out = extractor(image)
    except RuntimeError as e:
        if "size" not in str(e).lower():
            raise
        h, w = image.shape[-2:]
        raise InputError(
            f"{owner}: a {h}×{w} image is too small for layers {', '.join(layers)} "
            f"({str(e).splitlines()[0]}); give larger images or shallower layers"
        ) from e
    missing = [layer for layer in layers if layer not in out]
    if missing:
        raise ConfigError(
            f"{owner}: the feature extractor gives no {', '.join(missing)}; build it with "
            f"these layers (vgg_features(layers))"
        )
    return {layer: out[layer].detach() for layer in layers}


def _hw(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def style_targets(
    styles: Sequence[torch.Tensor],
    extractor: Callable,
    layers: Sequence[str],
    content_size: tuple[int, int],
    *,
    style_scale: float = 1.0,
    style_weights: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """The blended Gram matrices {layer: 1×C×C} of `styles`, each first resized so that its
    longer side is `style_scale` × the longer side of `content_size` (H, W), aspect kept (as
    Johnson's neural-style scales its styles)."""
    owner = "style_targets"
    style_scale = number(owner, "style_scale", style_scale, low=0, low_open=True)
    side = max(1, round(style_scale * max(content_size)))
    grams = []
    for style in styles:
        feats = _features(owner, extractor, resize_to(style, side), layers)
        grams.append({layer: gram_matrix(feats[layer]) for layer in layers})
    return blend_grams(grams, style_weights)


def _scale_sizes(hw: tuple[int, int], scales: int) -> list[tuple[int, int]]:
    """(H, W) halved scales − 1 times, coarsest first."""
    return [
        (max(1, round(hw[0] / 2**k)), max(1, round(hw[1] / 2**k))) for k in reversed(range(scales))
    ]


def _extractor(
    extractor: Callable | None, layers: Sequence[str], weights, device: torch.device
) -> Callable:
    if extractor is not None:
        return extractor
    return vgg_features(list(dict.fromkeys(layers)), weights, pooling="avg").to(device)


def stylize(
    content: torch.Tensor,
    styles: torch.Tensor | Sequence[torch.Tensor],
    *,
    style_weights: Sequence[float] | None = None,
    content_weight: float = CONTENT_WEIGHT,
    style_weight: float = STYLE_WEIGHT,
    tv_weight: float = TV_WEIGHT,
    content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layers: Sequence[str] = STYLE_LAYERS,
    extractor: Callable | None = None,
    weights: str | os.PathLike | None = None,
    optimizer: str = "lbfgs",
    steps: int = 300,
    lr: float | None = None,
    init: str = "content",
    seed: int = 0,
    style_scale: float = 1.0,
    preserve_colour: bool = False,
    scales: int = 1,
    progress: bool = True,
    every: int = 0,
    on_snapshot: Snapshot | None = None,
) -> Optimized:
    """`content` (1×3×H×W, 0–1) painted in the style of `styles` (one image or several, blended
    by `style_weights` on their Gram matrices), by Gatys et al.'s optimisation.

    Loss: content_weight · mean_l MSE(F_l(x), T_l) / mean(T_l²) + style_weight · mean_l
    MSE(G_l(x), A_l) / mean(A_l²) + tv_weight · Σ (squared neighbour differences) / (H·W), with
    T_l the content's features and A_l the style's Gram matrices. `extractor`
    (a `FeatureExtractor` with every layer named) defaults to VGG-16 with average pooling from
    `weights` (default `default_vgg_weights()`). With `scales` k > 1 it optimises `steps` steps
    at H/2^(k−1), …, H, each start the previous result upsampled. On Ctrl-C the image reached so
    far comes back (at the full size) with ``interrupted=True``.
    """
    owner = "stylize"
    content = _image(owner, "content", content)
    styles = [styles] if isinstance(styles, torch.Tensor) else list(styles)
    if not styles:
        raise ConfigError(f"{owner}: give at least one style image")
    styles = [_image(owner, f"style {i + 1}", s) for i, s in enumerate(styles)]
    if style_weights is not None and len(style_weights) != len(styles):
        raise ConfigError(
            f"{owner}: give one style weight per style ({len(styles)}), got {len(style_weights)}"
        )
    content_weight = number(owner, "content_weight", content_weight, low=0)
    style_weight = number(owner, "style_weight", style_weight, low=0)
    tv_weight = number(owner, "tv_weight", tv_weight, low=0)
    content_layers = _layers(owner, "content_layers", content_layers)
    style_layers = _layers(owner, "style_layers", style_layers)
    optimizer = one_of(owner, "optimizer", optimizer, OPTIMIZERS)
    steps = positive_int(owner, "steps", steps)
    init = one_of(owner, "init", init, INITS)
    style_scale = number(owner, "style_scale", style_scale, low=0, low_open=True)
    preserve_colour = boolean(owner, "preserve_colour", preserve_colour)
    scales = positive_int(owner, "scales", scales)

    if preserve_colour:  # Gatys et al. 2016b: luminance only, the style's matched to the content's
        y = rgb_to_yiq(content)[:, :1]
        styles = [match_luminance(rgb_to_yiq(s)[:, :1], y).expand(-1, 3, -1, -1) for s in styles]
        source = y.expand(-1, 3, -1, -1)
    else:
        source = content
    extractor = _extractor(extractor, [*content_layers, *style_layers], weights, content.device)
    sizes = _scale_sizes(_hw(content), scales)

    if init == "content":
        x = resize_to(source, sizes[0])
    elif init == "style":
        x = resize_to(styles[0], sizes[0]).clamp(0, 1)
    else:
        g = torch.Generator().manual_seed(int(seed))
        x = torch.rand((1, 3, *sizes[0]), generator=g).to(content.device)

    history: list[dict[str, float]] = []
    interrupted = False
    for i, hw in enumerate(sizes):
        target = _features(owner, extractor, resize_to(source, hw), content_layers)
        grams = style_targets(
            styles, extractor, style_layers, hw, style_scale=style_scale,
            style_weights=style_weights,
        )  # fmt: skip
        terms = _gatys_terms(extractor, target, grams, content_weight, style_weight, tv_weight)
        offset = len(history)
        colour = resize_to(content, hw)

        def snapshot(step: int, image: torch.Tensor, offset=offset, colour=colour) -> None:
            if on_snapshot is not None:
                on_snapshot(
                    offset + step, with_colour_of(image, colour) if preserve_colour else image
                )

        label = owner if scales == 1 else f"{owner} {hw[0]}×{hw[1]}"
        result = optimize_image(
            x, terms, steps=steps, optimizer=optimizer, lr=lr, label=label,
            progress=progress, every=every, on_snapshot=snapshot,
        )  # fmt: skip
        history += result.history
        x = result.image
        if result.interrupted:
            interrupted = True
            break
        if i + 1 < len(sizes):
            x = _upsample(x, sizes[i + 1])
    x = _upsample(x, _hw(content))
    if preserve_colour:
        x = with_colour_of(x, content)
    return Optimized(x, history, interrupted)


def _power(t: torch.Tensor) -> float:
    return max(float(t.square().mean()), 1e-12)


def relative_layer_weights(grams: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """w_l = 1 / (L · mean(A_l²)): each layer's squared Gram difference relative to the size of
    the style's Gram A_l, so that every layer counts alike whatever its activations' scale.

    Gatys et al. weigh layers equally on a VGG rescaled so that every filter's mean activation
    is 1; on unscaled weights (VGG-16 HED: relu1_1's Gram entries ~10⁴× relu5_1's) equal weights
    leave relu3_1–relu5_1 unmatched (in 40 steps at 96 px they end farther from the style than
    the photograph started). The relative weights have the effect of that rescaling."""
    return {layer: 1 / (len(grams) * _power(a)) for layer, a in grams.items()}


def _upsample(image: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if _hw(image) == hw:
        return image
    return F.interpolate(image, size=hw, mode="bilinear", align_corners=False).clamp(0, 1)


def _gatys_terms(
    extractor: Callable,
    target: Mapping[str, torch.Tensor],
    grams: Mapping[str, torch.Tensor],
    content_weight: float,
    style_weight: float,
    tv_weight: float,
) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
    """loss_terms(x) for `optimize_image`: the weighted content, style and TV losses (terms of
    weight 0 left out)."""

    content_scale = {layer: 1 / (len(target) * _power(t)) for layer, t in target.items()}
    layer_weights = relative_layer_weights(grams)

    def terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = extractor(x)
        out: dict[str, torch.Tensor] = {}
        if content_weight:
            c = sum(content_scale[layer] * content_loss(f[layer], t) for layer, t in target.items())
            out["content"] = content_weight * c
        if style_weight:
            out["style"] = style_weight * style_loss(f, grams, layer_weights)
        if tv_weight:
            out["tv"] = tv_weight * total_variation(x).sum() / (x.shape[-2] * x.shape[-1])
        if not out:
            raise ConfigError("stylize: every loss weight is 0; give a positive one")
        return out

    return terms


def synthesize_texture(
    source: torch.Tensor,
    size: int | tuple[int, int],
    *,
    layers: Sequence[str] = TEXTURE_LAYERS,
    extractor: Callable | None = None,
    weights: str | os.PathLike | None = None,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: float | None = None,
    seed: int = 0,
    progress: bool = True,
    every: int = 0,
    on_snapshot: Snapshot | None = None,
) -> Optimized:
    """A new image of `size` (side, or (H, W)) with the texture of `source` (Gatys et al. 2015):
    noise optimised until its Gram matrices at `layers` are the source's. The loss is mean_l
    MSE(G_l(x), A_l) / mean(A_l²) (see `relative_layer_weights`). The noise is uniform, ±0.05
    around the source's mean colour: full-range white noise leaves a colour speckle that the Gram
    matrices barely see (after 100 steps at 96 px)."""
    owner = "synthesize_texture"
    source = _image(owner, "source", source)
    if isinstance(size, (tuple, list)):
        if len(size) != 2:
            raise ConfigError(f"{owner}: size must be a side or (height, width), got {size!r}")
        hw = (positive_int(owner, "height", size[0]), positive_int(owner, "width", size[1]))
    else:
        side = positive_int(owner, "size", size)
        hw = (side, side)
    layers = _layers(owner, "layers", layers)
    optimizer = one_of(owner, "optimizer", optimizer, OPTIMIZERS)
    steps = positive_int(owner, "steps", steps)
    extractor = _extractor(extractor, layers, weights, source.device)
    feats = _features(owner, extractor, source, layers)
    grams = {layer: gram_matrix(feats[layer]) for layer in layers}
    g = torch.Generator().manual_seed(int(seed))
    noise = torch.rand((1, 3, *hw), generator=g).to(source.device) - 0.5
    x = (source.mean((2, 3), keepdim=True) + 0.1 * noise).clamp(0, 1)
    _features(owner, extractor, x, layers)  # the size is large enough for the layers

    layer_weights = relative_layer_weights(grams)

    def terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"style": style_loss(extractor(x), grams, layer_weights)}

    return optimize_image(
        x, terms, steps=steps, optimizer=optimizer, lr=lr, label="texture",
        progress=progress, every=every, on_snapshot=on_snapshot,
    )  # fmt: skip
