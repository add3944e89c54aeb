"""Translated cluttered MNIST (Jaderberg et al. 2015, sec. 4.1; the data of Mnih et al. 2014's
recurrent attention model): each digit at a random position in a 60×60 canvas, with
`distractors` 6×6 patches cut at random from random other digits and dropped at random
positions; overlapping ink keeps the brighter pixel. Built in one batched scatter, seeded.
"""

from __future__ import annotations

import torch

from striate.checks import integer, non_negative_int
from striate.errors import ConfigError

__all__ = ["cluttered"]


def cluttered(
    images: torch.Tensor,
    seed: int = 0,
    canvas: int = 60,
    distractors: int = 6,
    patch: int = 6,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """uint8 N×1×canvas×canvas cluttered images of the uint8 N×1×h×w digits, and the draws:
    ``position`` (N×2, the digit's top-left x, y), ``sources`` (N×K source digits),
    ``crops`` (N×K×2 top-left x, y in the source), ``places`` (N×K×2, in the canvas)."""
    owner = "cluttered"
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.dtype != torch.uint8:
        raise ConfigError(f"{owner}: expected uint8 images N×C×H×W, got {type(images).__name__}")
    n, c, h, w = images.shape
    canvas = integer(owner, "canvas", canvas, low=max(h, w))
    k = non_negative_int(owner, "distractors", distractors)
    patch = integer(owner, "patch", patch, low=1, high=min(h, w))
    g = torch.Generator().manual_seed(seed)
    position = torch.stack(
        [
            torch.randint(0, canvas - w + 1, (n,), generator=g),
            torch.randint(0, canvas - h + 1, (n,), generator=g),
        ],
        1,
    )
    sources = torch.randint(0, max(n, 1), (n, k), generator=g)
    crops = torch.randint(0, min(h, w) - patch + 1, (n, k, 2), generator=g)
    places = torch.randint(0, canvas - patch + 1, (n, k, 2), generator=g)

    out = torch.zeros(n, c, canvas * canvas, dtype=torch.uint8)
    # the digit: canvas index of each of its pixels
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    where = (
        (position[:, 1, None] + ys.reshape(1, -1)) * canvas
        + position[:, 0, None]
        + xs.reshape(1, -1)
    )
    out.scatter_reduce_(2, where[:, None].expand(n, c, -1), images.reshape(n, c, -1), "amax")
    if k and n:
        py, px = torch.meshgrid(torch.arange(patch), torch.arange(patch), indexing="ij")
        py, px = py.reshape(1, 1, -1), px.reshape(1, 1, -1)
        src_y, src_x = crops[..., 1:2] + py, crops[..., 0:1] + px  # N×K×p²
        pixels = images[sources[..., None], :, src_y, src_x]  # N×K×p²×C
        dst = (places[..., 1:2] + py) * canvas + places[..., 0:1] + px
        pixels = pixels.permute(0, 3, 1, 2).reshape(n, c, -1)
        out.scatter_reduce_(2, dst.reshape(n, 1, -1).expand(n, c, -1), pixels, "amax")
    params = {"position": position, "sources": sources, "crops": crops, "places": places}
    return out.view(n, c, canvas, canvas), params
