"""Deep painterly harmonization (Luan, Paris, Shechtman, Bala 2018, arXiv:1804.03189): an object
pasted into a painting is repainted in the painting's style, in two passes of pixel optimisation,
as ../shared/reference/001_*.md ("Deep Painterly Harmonization", S. Gugger) and the authors' code
(luanfujun/deep-painterly-harmonization: neural_gram.lua, neural_paint.lua) do it.

Both passes change only the pixels inside the dilated mask M and compare features through each
layer's mask m_l (M carried through the network as the authors do: a 3×3 mean after each
convolution, resizing at each pooling). Gram matrices of masked features are divided by C·Σm_l
(a mask with n positions gives a sum of n terms; dividing the painting's and the image's by their
own counts is the post's √(n₂/n₁) rescaling). The content loss is the mean squared difference of
the masked relu4_1 features with the pasted image's.

Pass 1 (neural_gram.lua): for each of relu3_1, relu4_1, relu5_1, every masked position takes the
painting's feature whose 3×3 patch is nearest in cosine similarity (`match_patches`); the loss is
5·L_content + 100·mean_l ‖G_l(x) − G_l(matched painting)‖². neural_gram.lua also adds a TV term
(-tv_weight 1e-3 on 0–255 pixels), which the post leaves out; with the VGG-16 HED features here
it outweighs the style term about sixfold and blurs the object flat, so it is left out too (pass
1 then leaves coloured speckles, which pass 2 removes).

Pass 2 (neural_paint.lua), from the pasted image again (reconstructing from pass 1's result is
worse, the post shows) but matching on pass 1's result: one mapping on relu4_1, made spatially
consistent over 5×5 neighbourhoods (`consistent_matches`), carried to relu1_1…relu3_1
(`upsample_mapping`), each painting feature counted once (`used_positions`); the loss is
L_content + w_s·L_style (relu1_1…relu4_1) + w_h·L_hist (relu1_1, relu4_1, 256 bins) + w_tv·L_tv
with the authors' code's weights (the paper prints others): w_s = τ, w_tv = τ·10/(1 + e^(10⁴·mtv −
25)), w_h = (10 − w_tv/τ)·τ, mtv the median of the painting's (dx² + dy²)/2 (0–1 pixels, the
painting at 700 px as the authors run it: mtv grows as the image shrinks). The
post writes w_h = (10 − w_tv)·τ with τ already in w_tv; the code subtracts the unscaled one. The
authors normalise each loss module's gradient (content at relu4_1, style at each of its four layers,
histogram at each of its two, TV on the image) to unit length at every step, which is no loss's
gradient; here each module is divided once by that norm at pass 1's result, so the weights weigh
the modules as the authors' do at the start and L-BFGS still minimises one function.

The result is blended into the painting through the Gaussian-blurred tight mask b:
final = b·output + (1 − b)·painting (after each pass).

The paper runs 1000 L-BFGS iterations per pass at 700 px on a GPU. The defaults here (256 px,
80 + 80 iterations, where the losses have levelled off) took 1–3.5 minutes on two CPU cores for
the examples of striate.synthesis.examples (up to 10 minutes while the cores were shared).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import boolean, did_you_mean, non_negative_int, number, positive_int
from striate.errors import ConfigError, InputError
from striate.interpret.layers import gaussian_blur
from striate.synthesis.features import (
    FeatureExtractor,
    default_vgg_weights,
    load_vgg,
    vgg_layer_names,
)
from striate.synthesis.histogram import feature_histogram, histogram_loss
from striate.synthesis.images import resize_to
from striate.synthesis.losses import gram_matrix
from striate.synthesis.optimize import optimize_image
from striate.synthesis.patch_match import (
    consistent_matches,
    match_patches,
    upsample_mapping,
    used_positions,
)

__all__ = [
    "CONTENT_LAYER",
    "HISTOGRAM_LAYERS",
    "PASS1_LAYERS",
    "PASS2_LAYERS",
    "QUALITY_LAYERS",
    "REFERENCE_LAYER",
    "Harmonized",
    "harmonize",
    "layer_masks",
    "pass2_weights",
    "style_distance",
]

OWNER = "harmonize"
CONTENT_LAYER = "relu4_1"
PASS1_LAYERS = ("relu3_1", "relu4_1", "relu5_1")
PASS2_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
REFERENCE_LAYER = "relu4_1"
HISTOGRAM_LAYERS = ("relu1_1", "relu4_1")
QUALITY_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
VGG_NAME = re.compile(r"(conv|bn|relu)[1-5]_[1-4]|pool[1-5]")
NOISE_SIZE = 700  # the authors' image_size, where mtv's constants were set
MASK_EPS = 0.1  # a layer's mask counts a position from this value (the authors' EPS)


@dataclass
class Harmonized:
    """The painting and naive paste at the working size, pass 1 blended into the painting, pass
    2's raw output, the final (pass 2 blended), the dilated mask the passes changed (1×1×H×W),
    and `quality`: `style_distance` of the naive paste, pass 1 and the final image (lower is
    better), per layer in `quality_layers`. After Ctrl-C, `interrupted` is set and the missing
    stages are None (final is the last image there was)."""

    painting: torch.Tensor
    naive: torch.Tensor
    pass1: torch.Tensor
    pass2: torch.Tensor | None
    final: torch.Tensor
    dilated_mask: torch.Tensor
    quality: dict[str, float] = field(default_factory=dict)
    quality_layers: dict[str, dict[str, float]] = field(default_factory=dict)
    interrupted: bool = False
    weights: dict[str, float] = field(default_factory=dict)


def _image(name: str, x: torch.Tensor) -> torch.Tensor:
    if isinstance(x, torch.Tensor) and x.dim() == 3:
        x = x[None]
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[:2] != (1, 3):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{OWNER}: {name} must be an RGB image 1×3×H×W in 0–1, got {got}")
    return x.detach().float().contiguous()  # read_image's are channels-last views


def _mask(x: torch.Tensor) -> torch.Tensor:
    """1×1×H×W in 0–1 from H×W, 1×H×W, C×H×W or 1×C×H×W (channels averaged)."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3, 4):
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{OWNER}: mask must be H×W or 1×C×H×W, got {got}")
    x = x.detach().float()
    x = x.reshape(1, 1, *x.shape) if x.dim() == 2 else x if x.dim() == 4 else x[None]
    return x.mean(1, keepdim=True)


def _dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return mask
    return F.max_pool2d(mask, 2 * radius + 1, 1, radius)


def layer_masks(
    mask: torch.Tensor, model: nn.Sequential, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """`mask` (1×1×H×W) at each VGG layer's resolution, carried through `model` as the authors
    do: a 3×3 mean (zero-padded) after each convolution, bilinear resizing to each pooling's
    output size."""
    names = vgg_layer_names(model)
    wanted = {int(names[layer].split(".")[1]): layer for layer in layers}
    out: dict[str, torch.Tensor] = {}
    m = mask
    for i, module in enumerate(model):
        if isinstance(module, nn.Conv2d):
            m = F.avg_pool2d(m, 3, 1, 1)
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            size = module(torch.zeros(1, 1, *m.shape[-2:], device=m.device, dtype=m.dtype)).shape[
                -2:
            ]
            m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)
        if i in wanted:
            out[wanted[i]] = m
            if len(out) == len(wanted):
                break
    return {layer: out[layer] for layer in layers}


def _masked_gram(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    c = features.shape[1]
    return gram_matrix(features * mask, "none")[0] / (c * mask.sum().clamp_min(1e-8))


def _gram_of(values: torch.Tensor) -> torch.Tensor:
    """Gram of the C×n feature columns `values` / (C·n)."""
    return values @ values.T / (values.shape[0] * max(values.shape[1], 1))


def pass2_weights(painting: torch.Tensor, tau: float) -> dict[str, float]:
    """The authors' pass-2 weights from the painting (0–1, 1×3×H×W) and the stylisation level τ
    (neural_paint.lua, params_wikiart_genre): content 1, style τ, histogram (10 − t)·τ, TV t·τ
    with t = 10/(1 + exp(10⁴·mtv − 25)) and mtv the median over pixels and channels of
    ((x_{i,j} − x_{i,j+1})² + (x_{i,j} − x_{i+1,j})²)/2."""
    x = painting[0].double()
    dx = x[:, :-1, :-1] - x[:, :-1, 1:]
    dy = x[:, :-1, :-1] - x[:, 1:, :-1]
    mtv = float(((dx.square() + dy.square()) / 2).median())
    t = 10.0 / (1.0 + math.exp(min(1e4 * mtv - 25.0, 700.0)))
    return {"content": 1.0, "style": tau, "histogram": (10.0 - t) * tau, "tv": t * tau, "mtv": mtv}


def _vgg(weights: str | os.PathLike | None, layers: Sequence[str]):
    unknown = [layer for layer in layers if not VGG_NAME.fullmatch(str(layer))]
    if unknown:
        known = [f"{k}{b}_{i}" for k in ("conv", "relu") for b in range(1, 6) for i in range(1, 5)]
        raise ConfigError(
            f"{OWNER}: no VGG layer {unknown[0]!r}{did_you_mean(str(unknown[0]), known)}; "
            f"layers are named conv1_1, relu1_1, … pool5"
        )
    path = default_vgg_weights() if weights is None else weights
    features, norm = load_vgg(path)
    names = vgg_layer_names(features)
    missing = [layer for layer in layers if layer not in names]
    if missing:
        last = list(names)[-1] if names else "nothing"
        raise ConfigError(
            f"{OWNER}: the VGG weights in {path} have no {', '.join(missing)} (they go up to "
            f"{last}); give a whole vgg16/vgg19 file (--weights FILE)"
        )
    return features, norm


def _extractor(features: nn.Sequential, norm: dict, layers: Sequence[str]) -> FeatureExtractor:
    return FeatureExtractor(features, list(layers), mean=norm["mean"], std=norm["std"])


def _region(mask: torch.Tensor) -> torch.Tensor:
    return (mask[0, 0] > MASK_EPS).cpu()


def style_distance(
    image: torch.Tensor,
    painting: torch.Tensor,
    mask: torch.Tensor,
    layers: Sequence[str] = QUALITY_LAYERS,
    *,
    dilated: torch.Tensor | None = None,
    weights: str | os.PathLike | None = None,
    extractor: FeatureExtractor | None = None,
    per_layer: bool = False,
) -> float | dict[str, float]:
    """How far the style of the pasted region of `image` is from the painting around it: per
    layer, ‖G_in − G_out‖²_F / ‖G_out‖²_F with G_in the Gram matrix of `image`'s features inside
    `mask` and G_out that of `painting`'s features outside `dilated` (default: `mask` dilated by
    1/32 of the image's longer side; a position is outside when less than half of it is
    covered), each divided by C·(its positions); the mean over `layers` (relative, so each layer
    weighs alike), leaving out a layer too coarse to have a position outside. Lower is better; 0
    when the region has the painting's feature statistics. `per_layer`: {layer: distance}
    instead of the mean."""
    owner = "style_distance"
    image, painting = _image("image", image), _image("painting", painting)
    mask = (_mask(mask) > 0.5).float().cpu()
    if image.shape != painting.shape or mask.shape[-2:] != image.shape[-2:]:
        raise InputError(
            f"{owner}: image {tuple(image.shape[-2:])}, painting {tuple(painting.shape[-2:])} and "
            f"mask {tuple(mask.shape[-2:])} must have the same size"
        )
    if not bool(mask.any()):
        raise InputError(f"{owner}: the mask is empty; give a mask with the pasted region set")
    if dilated is None:
        dilated = _dilate(mask, max(1, max(mask.shape[-2:]) // 32))
    else:
        dilated = (_mask(dilated) > 0.5).float().cpu()
    if extractor is None:
        features, norm = _vgg(weights, layers)
        extractor = _extractor(features, norm, layers)
    with torch.no_grad():
        both = extractor(torch.cat([image, painting]).to(extractor.mean.device))
    distances = {}
    for layer in layers:
        f = both[layer].double().cpu()
        h, w = f.shape[-2:]
        inside = F.interpolate(mask, size=(h, w), mode="area")[0, 0]
        inside = inside >= min(0.5, float(inside.max()))
        outside = F.interpolate(dilated, size=(h, w), mode="area")[0, 0] < 0.5
        if not bool(outside.any()):
            continue  # the layer is too coarse to see the painting around the paste
        c = f.shape[1]
        g_in = _gram_of(f[0].reshape(c, -1)[:, inside.reshape(-1)])
        g_out = _gram_of(f[1].reshape(c, -1)[:, outside.reshape(-1)])
        d = (g_in - g_out).square().sum() / g_out.square().sum().clamp_min(1e-30)
        distances[layer] = float(d)
    if not distances:
        raise InputError(
            f"{owner}: nothing of the painting is left outside the dilated mask at "
            f"{', '.join(layers)}; use a smaller mask or a larger image"
        )
    return distances if per_layer else sum(distances.values()) / len(distances)


def harmonize(
    painting: torch.Tensor,
    pasted: torch.Tensor,
    mask: torch.Tensor,
    *,
    weights: str | os.PathLike | None = None,
    size: int | None = 256,
    steps_pass1: int = 80,
    steps_pass2: int = 80,
    tau: float = 1.0,
    dilate: int | None = None,
    blur: float | None = None,
    progress: bool = True,
    every: int = 0,
    on_snapshot: Callable[[str, int, torch.Tensor], None] | None = None,
) -> Harmonized:
    """Harmonize the object `pasted` into `painting` (both 1×3×H×W in 0–1, the same size) where
    `mask` (H×W or 1×1×H×W, the pasted object > 0.5) is set; see the module's note.

    `size`: the longer side to work at (None: as given). `dilate`: the pixels the mask grows by
    for the region the passes change (default size/32). `blur`: σ of the blend's Gaussian
    (default 3 px at 700, scaled). `tau`: the painting's stylisation level for pass 2's weights
    (the paper estimates it with a network trained on WikiArt; the authors' estimates,
    data/wikiart_output.txt, run from 1 for Realism, Baroque or Renaissance through about 5 for
    Impressionism to 10 for Expressionism or Cubism). `on_snapshot(stage, step, image)` receives
    the blended image of "pass1" or "pass2" every `every` steps. 0 steps skip that pass."""
    painting, pasted = _image("painting", painting), _image("pasted", pasted)
    device = painting.device
    pasted, mask = pasted.to(device), _mask(mask).to(device)
    if painting.shape != pasted.shape:
        raise InputError(
            f"{OWNER}: the painting is {tuple(painting.shape[-2:])} but the pasted image "
            f"{tuple(pasted.shape[-2:])}; they must be the same picture, with and without the paste"
        )
    if mask.shape[-2:] != painting.shape[-2:]:
        raise InputError(
            f"{OWNER}: the mask is {tuple(mask.shape[-2:])} but the images "
            f"{tuple(painting.shape[-2:])}; give the mask of the pasted image, at its size"
        )
    if not bool((mask > 0.5).any()):
        raise InputError(f"{OWNER}: the mask is empty; set the pasted object's pixels (> 0.5)")
    if size is not None:
        size = positive_int(OWNER, "size", size)
    steps_pass1 = non_negative_int(OWNER, "steps_pass1", steps_pass1)
    steps_pass2 = non_negative_int(OWNER, "steps_pass2", steps_pass2)
    tau = number(OWNER, "tau", tau, low=0)
    progress = boolean(OWNER, "progress", progress)
    every = non_negative_int(OWNER, "every", every)
    w = pass2_weights(resize_to(painting, NOISE_SIZE), tau)
    if size is not None:
        painting, pasted = resize_to(painting, size), resize_to(pasted, size)
        mask = F.interpolate(mask, size=painting.shape[-2:], mode="bilinear", align_corners=False)
    tight = (mask > 0.5).float()
    if not bool(tight.any()):
        raise InputError(f"{OWNER}: the mask's object vanishes at size {size}; use a larger size")
    longest = max(painting.shape[-2:])
    dilate = max(1, longest // 32) if dilate is None else non_negative_int(OWNER, "dilate", dilate)
    blur = 3.0 * longest / 700 if blur is None else number(OWNER, "blur", blur, low=0)
    dilated = _dilate(tight, dilate)
    soft = gaussian_blur(tight, max(blur, 1e-3)) if blur > 0 else tight

    features, norm = _vgg(weights, QUALITY_LAYERS)
    ex1 = _extractor(features, norm, PASS1_LAYERS).to(device)
    ex2 = _extractor(features, norm, PASS2_LAYERS).to(device)
    quality_ex = _extractor(features, norm, QUALITY_LAYERS).to(device)
    masks = layer_masks(dilated, ex1.model, sorted(set(PASS1_LAYERS) | set(PASS2_LAYERS)))

    def composite(x: torch.Tensor) -> torch.Tensor:
        return pasted * (1 - dilated) + x * dilated

    def blend(x: torch.Tensor) -> torch.Tensor:
        return (soft * composite(x) + (1 - soft) * painting).clamp(0, 1)

    def snapshots(stage: str):
        if on_snapshot is None:
            return None
        return lambda step, x: on_snapshot(stage, step, blend(x))

    result = Harmonized(painting, pasted, pasted, None, pasted, dilated)
    if steps_pass1:
        run = optimize_image(
            pasted,
            _pass1_terms(ex1, painting, pasted, masks, composite),
            steps=steps_pass1,
            label="harmonize pass 1",
            progress=progress,
            every=every,
            on_snapshot=snapshots("pass1"),
        )
        result.pass1 = result.final = blend(run.image)
        result.interrupted = run.interrupted
    if steps_pass2 and not result.interrupted:
        try:
            terms = _pass2_terms(ex2, painting, pasted, result.pass1, masks, dilated, composite, w)
        except KeyboardInterrupt:  # while matching: keep pass 1
            result.interrupted = True
    if steps_pass2 and not result.interrupted:
        run = optimize_image(
            pasted,
            terms,
            steps=steps_pass2,
            label="harmonize pass 2",
            progress=progress,
            every=every,
            on_snapshot=snapshots("pass2"),
        )
        result.pass2 = composite(run.image)
        result.final = blend(run.image)
        result.interrupted = run.interrupted
        result.weights = {k: float(v) for k, v in w.items()}
    stages = {"naive": pasted, "pass1": result.pass1}
    if result.pass2 is not None:
        stages["pass2"] = result.final
    for stage, image in stages.items():
        result.quality_layers[stage] = style_distance(
            image, painting, tight, dilated=dilated, extractor=quality_ex, per_layer=True
        )
        values = result.quality_layers[stage].values()
        result.quality[stage] = sum(values) / len(values)
    return result


def _pass1_terms(ex, painting, pasted, masks, composite):
    with torch.no_grad():
        fc, fs = ex(pasted), ex(painting)
    targets = {}
    for layer in PASS1_LAYERS:
        c, h, w = fc[layer].shape[1:]
        mapping = match_patches(
            fc[layer][0].cpu(), fs[layer][0].cpu(), 3, mask=_region(masks[layer])
        )
        matched = fs[layer][0].reshape(c, -1)[:, mapping.reshape(-1).to(fs[layer].device)]
        targets[layer] = _masked_gram(matched.reshape(1, c, h, w), masks[layer])
    m = masks[CONTENT_LAYER]
    content = fc[CONTENT_LAYER] * m

    def terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
        xc = composite(x)
        f = ex(xc)
        style = sum(F.mse_loss(_masked_gram(f[k], masks[k]), targets[k]) for k in PASS1_LAYERS)
        return {
            "content": 5 * F.mse_loss(f[CONTENT_LAYER] * m, content),
            "style": 100 * style / len(PASS1_LAYERS),
        }

    return terms


def _pass2_terms(ex, painting, pasted, pass1, masks, dilated, composite, w):
    with torch.no_grad():
        fc, fs, f1 = ex(pasted), ex(painting), ex(pass1)
    ref = REFERENCE_LAYER
    ref_hw = tuple(fs[ref].shape[-2:])
    region = _region(masks[ref])
    search = F.max_pool2d(region[None, None].float(), 5, 1, 2)[0, 0] > 0
    mapping = match_patches(f1[ref][0].cpu(), fs[ref][0].cpu(), 3, mask=search)
    mapping = consistent_matches(mapping, fs[ref][0].cpu(), 5, mask=region)
    grams, hists = {}, {}
    for layer in PASS2_LAYERS:
        c, h, wd = fs[layer].shape[1:]
        m = mapping if layer == ref else upsample_mapping(mapping, ref_hw, (h, wd), (h, wd))
        used = used_positions(m, (h, wd), mask=_region(masks[layer]))
        values = fs[layer][0].reshape(c, -1)[:, used.reshape(-1).to(fs[layer].device)]
        grams[layer] = _gram_of(values)
        if layer in HISTOGRAM_LAYERS:
            hists[layer] = feature_histogram(fs[layer][0], 256, mask=used.to(fs[layer].device))
    m4 = masks[CONTENT_LAYER]
    content = fc[CONTENT_LAYER] * m4

    def parts(f: dict[str, torch.Tensor], xc: torch.Tensor) -> dict[tuple[str, str], torch.Tensor]:
        """Each loss module of neural_paint.lua: (term, the tensor it differentiates) → value."""
        out = {("content", CONTENT_LAYER): F.mse_loss(f[CONTENT_LAYER] * m4, content)}
        for k in PASS2_LAYERS:
            out["style", k] = F.mse_loss(_masked_gram(f[k], masks[k]), grams[k])
        for k in HISTOGRAM_LAYERS:
            loss = histogram_loss(f[k], hists[k], mask=masks[k] > MASK_EPS, reduction="sum")
            out["histogram", k] = loss / f[k].numel()
        out["tv", "image"] = _region_tv(xc, dilated)
        return out

    scale = _gradient_scales(ex, parts, composite(pass1))

    def terms(x: torch.Tensor) -> dict[str, torch.Tensor]:
        xc = composite(x)
        total: dict[str, torch.Tensor] = {}
        for (term, at), v in parts(ex(xc), xc).items():
            total[term] = total.get(term, 0) + w[term] * scale[term, at] * v
        return total

    return terms


def _region_tv(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ of squared neighbour differences (the post's L_tv) over the pairs that touch `mask`; the
    others are fixed pixels of the painting."""
    across = (x[..., :, 1:] - x[..., :, :-1]).square() * torch.maximum(
        mask[..., :, 1:], mask[..., :, :-1]
    )
    down = (x[..., 1:, :] - x[..., :-1, :]).square() * torch.maximum(
        mask[..., 1:, :], mask[..., :-1, :]
    )
    return across.sum() + down.sum()


def _gradient_scales(ex, parts, at: torch.Tensor) -> dict[tuple[str, str], float]:
    """1/‖∂ module/∂ its layer's features‖ (or its image's) at `at`, for each loss module (1
    where that gradient is zero): the authors' per-module gradient normalisation, fixed once."""
    x = at.detach().clone().requires_grad_(True)
    f = ex(x)
    scales = {}
    for (term, layer), v in parts(f, x).items():
        wrt = x if layer == "image" else f[layer]
        (g,) = torch.autograd.grad(v, wrt, retain_graph=True, allow_unused=True)
        norm = 0.0 if g is None else float(g.norm())
        scales[term, layer] = 1.0 / norm if norm > 0 and math.isfinite(norm) else 1.0
    return scales
