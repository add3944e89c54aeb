"""The model-level views of lecture 13: first-layer filters, activation maps, maximally activating
patches and nearest neighbours in feature space.

- **Filters** (Krizhevsky et al. 2012, Fig. 3): a convolution's weights O×I×k×k drawn as tiles,
  each filter min–max scaled to 0–1 on its own; colour when I = 3, else one grey tile per input
  channel (the lecture's "layer 2 weights 20×16×7×7").
- **Activations** (Yosinski et al. 2015, arXiv:1506.06579): a layer's output maps, each channel
  drawn as a grey image.
- **Maximally activating patches** (Girshick et al. 2014, arXiv:1311.2524, Fig. 4; Zeiler &
  Fergus 2014, arXiv:1311.2901; the slides credit Springenberg et al. 2015, whose Fig. 5 draws
  them): the input windows that drive one channel hardest over a set of images, each cut to
  the unit's receptive field (`striate.interpret.receptive_field`: size, jump and start, traced
  through padding). Windows that run past the image are padded with ``fill`` (zeros) so that
  every patch is r×r and the unit sits at the same place in each.
- **Nearest neighbours** (Krizhevsky et al. 2012, Fig. 4): the images closest to a query in
  feature space (the lecture's FC7 features, L2) beside those closest in pixel space.

The slides' AlexNet conv5 "128×13×13" is one GPU's half of the 256 channels of Krizhevsky et
al.'s network (torchvision's single-GPU AlexNet has 256).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from striate.checks import integer, non_negative_int, number, one_of, positive_int
from striate.errors import ConfigError, InputError
from striate.interpret.figures import image_grid, show_grid
from striate.interpret.layers import (
    capture,
    check_inputs,
    conv_layers,
    evaluating,
    find_layer,
    layer_output,
    placement,
)
from striate.interpret.receptive_field import Field, receptive_field

__all__ = [
    "Neighbours",
    "TopPatches",
    "activations",
    "activations_figure",
    "filters",
    "filters_figure",
    "nearest_neighbours",
    "neighbours_figure",
    "patches_figure",
    "top_patches",
]


# --------------------------------------------------------------------------- filters


def _conv(model: nn.Module, layer: str | nn.Module | None) -> tuple[str, torch.Tensor]:
    """The name and O×I×k×k weight of `layer` (the first Conv2d when None)."""
    if layer is None:
        convs = conv_layers(model)
        if not convs:
            raise ConfigError(
                f"filters: this model ({type(model).__name__}) has no Conv2d; give layer= a "
                f"module whose weight is O×I×k×k"
            )
        layer = convs[0]
    module = find_layer(model, layer)
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ConfigError(
            f"filters: layer {layer!r} ({type(module).__name__}) has no O×I×k×k weight; pick a "
            f"Conv2d (the model's are {', '.join(conv_layers(model)[:4]) or 'none'})"
        )
    name = layer if isinstance(layer, str) else type(layer).__name__
    return name, weight.detach()


def filters(model: nn.Module, layer: str | nn.Module | None = None) -> torch.Tensor:
    """A convolution's weights as display tiles in 0–1: O×3×k×k when it takes 3 channels, else
    (O·I)×1×k×k (filter by filter, its input channels in order); each filter is scaled by its own
    minimum and maximum, ``(w − min) / (max − min)`` (a constant filter gives 0.5).

    ``layer`` defaults to the model's first 2-D convolution. For a model that normalises its
    input inside (`ImageClassifier`), the weights apply to the normalised image.
    """
    w = _conv(model, layer)[1].to("cpu", torch.float32)
    low = w.amin(dim=(1, 2, 3), keepdim=True)
    span = w.amax(dim=(1, 2, 3), keepdim=True) - low
    tiles = torch.where(span > 0, (w - low) / span.clamp_min(1e-30), torch.full_like(w, 0.5))
    o, i, kh, kw = tiles.shape
    return tiles if i == 3 else tiles.reshape(o * i, 1, kh, kw)


def filters_figure(
    model: nn.Module, layer: str | nn.Module | None = None, nrow: int | None = None
) -> Figure:
    """The tiles of `filters` in a grid: 8 per row in colour, one filter per row in grey."""
    name, weight = _conv(model, layer)
    tiles = filters(model, layer)
    o, i, kh, kw = weight.shape
    nrow = nrow or (8 if i == 3 else i)
    return show_grid(tiles, nrow=nrow, padding=1, title=f"filters of {name} ({o}×{i}×{kh}×{kw})")


# --------------------------------------------------------------------------- activations


def activations(
    model: nn.Module, inputs: torch.Tensor, layer: str | nn.Module, batch_size: int | None = None
) -> torch.Tensor:
    """`layer`'s output for `inputs` (N×C×H×W maps for a convolution; N×D for a flattened one,
    features for `nearest_neighbours` and `embedding`), detached, on the inputs' device. A
    module called more than once in a pass (a shared ReLU) gives its last call's output.

    Eval mode and no gradients; ``batch_size`` runs the inputs in chunks of that size.
    """
    inputs = check_inputs("activations", inputs, "inputs")
    find_layer(model, layer)
    n = inputs.shape[0]
    size = n if batch_size is None else positive_int("activations", "batch_size", batch_size)
    device = placement(model)[0]
    parts = []
    with evaluating(model), torch.no_grad(), capture(model, layer) as seen:
        for start in range(0, n, size):
            seen.clear()
            model(inputs[start : start + size].to(device))
            parts.append(layer_output(seen, layer, "activations").detach().to(inputs.device))
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def activations_figure(
    maps: torch.Tensor,
    index: int = 0,
    channels: int | None = 64,
    nrow: int | None = None,
    scale: str = "channel",
    title: str | None = None,
) -> Figure:
    """One image's channels (the first `channels`, all with None) as grey tiles.

    ``scale="channel"`` stretches each map to 0–1 on its own (a weak channel still shows its
    pattern); ``"shared"`` uses one range for all (how strong each channel is).
    """
    if not isinstance(maps, torch.Tensor) or maps.dim() != 4:
        raise InputError(
            f"activations_figure: maps must be N×C×H×W (activations of a convolution), got "
            f"{tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__}"
        )
    index = integer("activations_figure", "index", index, low=0, high=maps.shape[0] - 1)
    one_of("activations_figure", "scale", scale, ("channel", "shared"))
    c = maps.shape[1]
    shown = (
        c if channels is None else min(positive_int("activations_figure", "channels", channels), c)
    )
    tiles = maps[index, :shown, None].detach().cpu().float()
    nrow = nrow or math.ceil(math.sqrt(shown))
    h, w = maps.shape[2:]
    title = title or f"{shown} of {c} channels ({h}×{w})"
    grid = image_grid(
        tiles, nrow=nrow, padding=1, normalize=True, scale_each=scale == "channel", pad_value=1.0
    )
    return show_grid(grid, padding=0, title=title)


# --------------------------------------------------------------------------- top patches


class TopPatches(NamedTuple):
    """The k input windows that activate one channel most, strongest first."""

    patches: torch.Tensor  # k×C×r×r: the images' pixels, `fill` outside the image
    index: torch.Tensor  # k: which image
    y: torch.Tensor  # k: the unit's row in the layer's map
    x: torch.Tensor  # k: its column
    values: torch.Tensor  # k: the activations
    boxes: torch.Tensor  # k×4: (top, left, bottom, right) in the image, may run past it
    field: Field


def top_patches(
    model: nn.Module,
    images: torch.Tensor,
    layer: str | nn.Module,
    channel: int,
    k: int = 9,
    batch_size: int = 64,
    distinct: bool = True,
    fill: float = 0.0,
) -> TopPatches:
    """Maximally activating patches: the `k` highest activations of `channel` of `layer` over
    `images`, each cropped to the unit's receptive field.

    With ``distinct`` (the default, as Zeiler & Fergus show them) each image gives at most one
    patch, at its spatial maximum; without, the k highest units over all images and positions
    (overlapping windows of one image can repeat). Runs in chunks of `batch_size` without
    gradients, keeping only the best k so far.
    """
    owner = "top_patches"
    images = check_inputs(owner, images, "images")
    channel = non_negative_int(owner, "channel", channel)
    k = positive_int(owner, "k", k)
    batch_size = positive_int(owner, "batch_size", batch_size)
    fill = number(owner, "fill", fill)
    n = images.shape[0]
    if distinct and k > n:
        raise ConfigError(
            f"top_patches: k={k} patches from distinct images but only {n} images given; "
            f"lower k or pass distinct=False"
        )
    field = receptive_field(model, layer, tuple(images.shape[1:]))
    device = placement(model)[0]
    best_v = torch.empty(0)
    best_i = torch.empty(0, dtype=torch.long)
    with evaluating(model), torch.no_grad(), capture(model, layer) as seen:
        for start in range(0, n, batch_size):
            seen.clear()
            model(images[start : start + batch_size].to(device))
            out = layer_output(seen, layer, owner)
            if channel >= out.shape[1]:
                raise ConfigError(
                    f"top_patches: channel {channel} is out of range: layer {layer!r} has "
                    f"{out.shape[1]} channels (0–{out.shape[1] - 1})"
                )
            a = out[:, channel].detach().float().flatten(1).cpu()  # b×(h·w)
            hw = a.shape[1]
            if distinct:
                v, pos = a.max(dim=1)
                idx = (start + torch.arange(len(a))) * hw + pos
            else:
                v, flat = a.flatten().topk(min(k, a.numel()))
                idx = start * hw + flat
            best_v, order = torch.cat([best_v, v]).topk(min(k, len(best_v) + len(v)))
            best_i = torch.cat([best_i, idx])[order]
    h, w = out.shape[-2:]
    if len(best_v) < k:
        raise ConfigError(f"top_patches: k={k} but the layer has only {len(best_v)} units")
    index, rest = best_i // (h * w), best_i % (h * w)
    y, x = rest // w, rest % w
    boxes = field.box(y, x)
    return TopPatches(_crop(images, index, boxes, fill), index, y, x, best_v, boxes, field)


def _crop(images: torch.Tensor, index: torch.Tensor, boxes: torch.Tensor, fill: float):
    """k windows (top, left, bottom, right) of images[index], `fill` where they leave the image."""
    _, _, h, w = images.shape
    rh, rw = int(boxes[0, 2] - boxes[0, 0]), int(boxes[0, 3] - boxes[0, 1])
    rows = boxes[:, :1] + torch.arange(rh)  # k×rh
    cols = boxes[:, 1:2] + torch.arange(rw)  # k×rw
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    dev = images.device
    picked = images[
        index.to(dev)[:, None, None],
        :,
        rows.clamp(0, h - 1).to(dev)[:, :, None],
        cols.clamp(0, w - 1).to(dev)[:, None, :],
    ]  # k×rh×rw×C: the advanced indices come first
    patches = picked.permute(0, 3, 1, 2)
    return torch.where(inside.to(dev)[:, None], patches, torch.full_like(patches, fill))


def patches_figure(result: TopPatches, nrow: int | None = None, title: str | None = None) -> Figure:
    """The patches of `top_patches` in a grid, strongest first."""
    k = len(result.patches)
    r = "×".join(str(math.ceil(s)) for s in result.field.size)
    return show_grid(
        result.patches.detach().cpu(),
        nrow=nrow or math.ceil(math.sqrt(k)),
        title=title or f"top {k} patches ({r} receptive field)",
    )


# --------------------------------------------------------------------------- nearest neighbours


class Neighbours(NamedTuple):
    """The k nearest bank rows of each query, nearest first."""

    distances: torch.Tensor  # Q×k
    indices: torch.Tensor  # Q×k, rows of the bank


def nearest_neighbours(
    query_features: torch.Tensor,
    bank_features: torch.Tensor,
    k: int = 5,
    metric: str = "l2",
    chunk_size: int = 4096,
) -> Neighbours:
    """The `k` nearest rows of the bank for each query row (features N×D, or images N×C×H×W for
    pixel space: every row is flattened), by Euclidean (``"l2"``) or cosine (``"cosine"``,
    ``1 − cos``) distance.

    The bank is read in chunks of `chunk_size` rows (memory Q×chunk_size), ranked by matrix
    products (``‖q‖² + ‖b‖² − 2q·b``), and the k distances returned are then recomputed directly
    from the differences, so they carry no cancellation error.
    """
    owner = "nearest_neighbours"
    metric = one_of(owner, "metric", metric, ("l2", "cosine"))
    k = positive_int(owner, "k", k)
    chunk_size = positive_int(owner, "chunk_size", chunk_size)
    q = _rows(query_features, "query_features")
    b = _rows(bank_features, "bank_features")
    if q.shape[1] != b.shape[1]:
        raise InputError(
            f"{owner}: the query has {q.shape[1]} features per row and the bank {b.shape[1]}; "
            f"take both from the same layer (or both as pixels of one size)"
        )
    if k > len(b):
        raise ConfigError(f"{owner}: k={k} neighbours but the bank has only {len(b)} rows")
    dtype = torch.promote_types(torch.promote_types(q.dtype, b.dtype), torch.float32)
    q = q.to(dtype)
    if metric == "cosine":
        q = F.normalize(q, dim=1)

    def rows(lo: int, hi: int | None = None, index: torch.Tensor | None = None) -> torch.Tensor:
        """Bank rows on the query's device (moved a chunk at a time), unit length for cosine."""
        part = b[lo:hi] if index is None else b[index.to(b.device)]
        part = part.to(dtype=dtype, device=q.device)
        return F.normalize(part, dim=-1) if metric == "cosine" else part

    q_sq = (q * q).sum(1, keepdim=True)
    best_d = q.new_empty(len(q), 0)
    best_i = torch.empty(len(q), 0, dtype=torch.long, device=q.device)
    for start in range(0, len(b), chunk_size):
        chunk = rows(start, start + chunk_size)
        d = q_sq + (chunk * chunk).sum(1) - 2.0 * q @ chunk.T  # squared L2 (of unit rows: 2−2cos)
        best_d, order = torch.cat([best_d, d], 1).topk(
            min(k, best_d.shape[1] + len(chunk)), 1, largest=False
        )
        idx = torch.arange(start, start + len(chunk), device=q.device).expand(len(q), -1)
        best_i = torch.cat([best_i, idx], 1).gather(1, order)
    exact = (q[:, None, :] - rows(0, index=best_i)).pow(2).sum(-1)  # Q×k, no cancellation
    dist = exact.sqrt() if metric == "l2" else exact / 2.0  # ‖q̂ − b̂‖² = 2 − 2cos
    dist, order = dist.sort(dim=1, stable=True)
    return Neighbours(dist, best_i.gather(1, order))


def _rows(features: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(features) if not isinstance(features, torch.Tensor) else features
    if t.dim() < 2 or t.shape[0] == 0:
        raise InputError(
            f"nearest_neighbours: {name} must be N×D features (or N×C×H×W images), got shape "
            f"{tuple(t.shape)}"
        )
    t = t.detach().flatten(1)
    if t.is_complex() or t.dtype == torch.bool:
        raise InputError(f"nearest_neighbours: {name} must be real numbers, got {t.dtype}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise InputError(f"nearest_neighbours: {name} has NaN or infinite values")
    return t


def neighbours_figure(
    query_images: torch.Tensor,
    bank_images: torch.Tensor,
    indices: torch.Tensor,
    title: str | None = None,
) -> Figure:
    """One row per query: the query image, then its neighbours in the bank, nearest first."""
    q = check_inputs("neighbours_figure", query_images, "query_images")
    b = check_inputs("neighbours_figure", bank_images, "bank_images")
    indices = torch.as_tensor(indices).cpu()
    if indices.dim() != 2 or len(indices) != len(q):
        raise InputError(
            f"neighbours_figure: indices must be Q×k with one row per query ({len(q)}), got "
            f"shape {tuple(indices.shape)}"
        )
    if q.shape[1:] != b.shape[1:]:
        raise InputError(
            f"neighbours_figure: query images {tuple(q.shape[1:])} and bank images "
            f"{tuple(b.shape[1:])} differ in shape"
        )
    rows = torch.cat([q.detach().cpu()[:, None], b.detach().cpu()[indices]], dim=1)
    return show_grid(rows.flatten(0, 1), nrow=rows.shape[1], title=title)
