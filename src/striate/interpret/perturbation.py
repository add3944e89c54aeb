"""Occlusion: how much a class's score drops when a patch of the image is hidden.

Zeiler & Fergus (ECCV 2014, §4.2) slide a grey square over the image and draw the classifier's
probability of the true class for each position of the square (lecture 13: "mask part of the
image before feeding to CNN, check how much predicted probabilities change"). `occlusion_map` is
that coarse grid; `occlusion` spreads the drops back onto the pixels as captum's ``Occlusion``
does: each pixel gets the mean drop over the windows that cover it.

Windows start at 0, s, 2s, … with ⌈(H − h)/s⌉ + 1 positions per axis (captum's count), so every
pixel is covered; the last window may pass the border and is cut there. The occluded copies are
built per chunk of `internal_batch_size` as one masked tensor op (no loop over positions).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from striate import allocator
from striate.checks import boolean, fail, is_int
from striate.errors import ConfigError
from striate.interpret.gradients import (
    as_fill,
    check_batch,
    class_scores,
    pick,
    targets_of,
)
from striate.interpret.layers import check_inputs, evaluating

__all__ = ["occlusion", "occlusion_map"]


def occlusion(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    patch: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    fill: float | torch.Tensor = 0.0,
    probability: bool = False,
    internal_batch_size: int | None = None,
) -> torch.Tensor:
    """Per pixel, the mean drop of the target's score (its logit, or its softmax probability when
    `probability`) over the patch positions that cover the pixel, the same on every channel:
    captum's ``Occlusion.attribute(inputs, sliding_window_shapes=(C, h, w), strides=(C, s, s),
    baselines=fill, target=…)``.

    `patch` and `stride` are pixels (one number or (h, w)); `fill` is the occluder's value (a
    number or a tensor broadcastable to the inputs; on 0–1 images the paper's grey is 0.5). The
    copies are evaluated `internal_batch_size` at a time (default 64).
    """
    x = check_inputs("occlusion", inputs)
    run = _Occluder("occlusion", model, x, target, patch, stride, fill, probability)
    with evaluating(model), torch.no_grad():
        drops = run.base[:, None] - run.scores(check_batch("occlusion", internal_batch_size))
        total = torch.zeros(x.shape[0], *x.shape[2:], dtype=x.dtype, device=x.device)
        for p0 in range(0, run.positions, 256):  # Σ_p drop_p · mask_p, a chunk of masks at a time
            p = torch.arange(p0, min(p0 + 256, run.positions), device=x.device)
            total += torch.einsum("np,phw->nhw", drops[:, p], run.masks(p).to(x.dtype))
    count = run.rows.sum(0)[:, None] * run.cols.sum(0)[None, :]
    return (total / count)[:, None].expand_as(x).clone()


def occlusion_map(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    *,
    patch: int | tuple[int, int] = 16,
    stride: int | tuple[int, int] = 8,
    fill: float | torch.Tensor = 0.0,
    probability: bool = True,
    internal_batch_size: int | None = None,
) -> torch.Tensor:
    """The target's softmax probability (its logit when not `probability`) with the patch at
    each position, N×1×rows×cols: the figure of Zeiler & Fergus (2014, fig. 7d) and the lecture.
    Options as for `occlusion`."""
    x = check_inputs("occlusion_map", inputs)
    run = _Occluder("occlusion_map", model, x, target, patch, stride, fill, probability)
    with evaluating(model), torch.no_grad():
        scores = run.scores(check_batch("occlusion_map", internal_batch_size))
    return scores.view(x.shape[0], 1, len(run.rows), len(run.cols))


class _Occluder:
    """The windows of one occlusion call and the target's score with each one occluded."""

    def __init__(
        self,
        owner: str,
        model: nn.Module,
        x: torch.Tensor,
        target: Any,
        patch: Any,
        stride: Any,
        fill: Any,
        probability: Any,
    ) -> None:
        self.owner, self.model, self.x = owner, model, x
        h, w = x.shape[-2:]
        ph, pw = _pair(owner, "patch", patch)
        sh, sw = _pair(owner, "stride", stride)
        if ph > h or pw > w:
            raise ConfigError(
                f"{owner}: patch must fit in the {h}×{w} image, got {ph}×{pw}; use a smaller patch"
            )
        if (sh > ph and ph < h) or (sw > pw and pw < w):
            raise ConfigError(
                f"{owner}: stride must be at most the patch size ({ph}×{pw}) so that every pixel "
                f"is occluded at least once, got {sh}×{sw}"
            )
        self.rows, self.cols = _windows(h, ph, sh, x.device), _windows(w, pw, sw, x.device)
        self.positions = len(self.rows) * len(self.cols)
        self.fill = as_fill(owner, "fill", fill, x)
        self.probability = boolean(owner, "probability", probability)
        with evaluating(model), torch.no_grad():
            out = class_scores(owner, model, x)
            self.targets = targets_of(model, target, out)
            self.base = self._score(out, self.targets)

    def masks(self, p: torch.Tensor) -> torch.Tensor:
        """The windows at positions `p` (row-major over the grid) as boolean masks P×H×W."""
        n_cols = len(self.cols)
        return self.rows[p // n_cols][:, :, None] & self.cols[p % n_cols][:, None, :]

    def scores(self, batch: int) -> torch.Tensor:
        """The target's score with the window at each position occluded, N×positions."""
        n, positions = self.x.shape[0], self.positions
        out = torch.empty(n * positions, dtype=self.x.dtype, device=self.x.device)
        with allocator.reusing_freed_memory(self.x.device.type == "cpu"):
            for start in range(0, n * positions, batch):  # row r: image r // P, position r % P
                r = torch.arange(start, min(start + batch, n * positions), device=self.x.device)
                i, m = r // positions, self.masks(r % positions)[:, None]
                # one image broadcasts against the masks: no gathered copy of it per window
                x, fill = (self.x, self.fill[:1]) if n == 1 else (self.x[i], self.fill[i])
                occluded = torch.where(m, fill, x)
                scores = class_scores(self.owner, self.model, occluded)
                out[r] = self._score(scores, self.targets[i])
        return out.view(n, positions)

    def _score(self, out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return pick(out.softmax(1) if self.probability else out, t)


def _pair(owner: str, name: str, v: Any) -> tuple[int, int]:
    """A positive int or a pair of them as (h, w)."""
    pair = (v, v) if is_int(v) else v
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(is_int(e) for e in pair)):
        raise fail(owner, name, "a positive integer or a pair (h, w) of them", v)
    if min(pair) < 1:
        raise fail(owner, name, "a positive integer or a pair (h, w) of them", v)
    return int(pair[0]), int(pair[1])


def _windows(size: int, patch: int, stride: int, device: torch.device) -> torch.Tensor:
    """The windows along one axis as boolean masks positions×size (captum's positions)."""
    count = math.ceil((size - patch) / stride) + 1
    starts = torch.arange(count, device=device)[:, None] * stride
    pixels = torch.arange(size, device=device)[None, :]
    return (pixels >= starts) & (pixels < starts + patch)
