"""Non-parametric texture synthesis (Efros & Leung, "Texture Synthesis by Non-parametric Sampling",
ICCV 1999): the image grows from a seed patch of the source, each new pixel copied from the centre
of a source window that matches its known neighbourhood.

For a pixel with window W (side `window`, known pixels M), the distance to each source window S is
the Gaussian-weighted SSD over the known pixels, normalised by their weight (σ = window / 6.4, as
the paper's pseudocode has it):

    d(S) = Σ G·M·(W − S)² / (C · Σ G·M)        (C channels: d is per channel)

Every window within (1 + ε) of the best, d ≤ d_min·(1 + ε), is a candidate; one is drawn at
random. A draw worse than `max_error` leaves the pixel for later, and a pass that fills nothing
raises `max_error` by 10 % (the paper's MaxErrThreshold, 0.3). Pixels with the most known
neighbours (of their 8) come first, which grows the image in onion rings.

The paper fills one pixel per search. Here every pixel of the current frontier with the most known
neighbours is filled in one batched search (they do not see each other's new values), so the
Python loop runs once per batch, not once per pixel; the search itself is two matrix products over
all source windows, unfolded once: Σ w·(a − b)² = Σ w·a² − 2 Σ (w·a)·b + Σ w·b².

The lecture's slide (lecture 13, "Texture Synthesis: Nearest Neighbor") describes scanline order
and copying *the* nearest neighbour, which is Wei & Levoy 2000; Efros & Leung grow outwards from a
seed and draw at random among the near-best matches, which is what keeps the texture from
repeating one patch verbatim.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from striate.checks import fail, integer, is_int, number
from striate.errors import ConfigError, InputError
from striate.progress import progress_bar

__all__ = ["SourceWindows", "efros_leung"]

OWNER = "efros_leung"
SEED_SIDE = 3  # the paper's 3×3 seed patch
# Distances are computed by expanding the square; float64 rounding leaves ~1e-13 of noise, so an
# exact match (d = 0) must still count as the best with this slack.
TOLERANCE = 1e-9


def gaussian_window(window: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """The window² Gaussian weights of Efros & Leung (σ = window / 6.4), peak 1, flattened."""
    t = torch.arange(window, dtype=dtype, device=device) - (window - 1) / 2
    g = torch.exp(-0.5 * (t / (window / 6.4)) ** 2)
    return (g[:, None] * g[None, :]).reshape(-1)


class SourceWindows:
    """Every window of the source (fully inside it), unfolded once, and the batched search."""

    def __init__(self, source: torch.Tensor, window: int) -> None:
        x = source.to(torch.float64)
        self.window, self.channels = window, x.shape[1]
        cols = F.unfold(x, window)[0].T  # N × (C·window²), channel-major
        self.windows = cols.contiguous()
        self.squares = cols.reshape(len(cols), self.channels, -1).pow(2).sum(1)  # N × window²
        centre = (window * window) // 2
        self.centres = cols.reshape(len(cols), self.channels, -1)[:, :, centre]  # N × C
        self.gauss = gaussian_window(window, device=x.device)

    def distances(self, patches: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """d (B × N) between each of B windows (B × C × window², float64) whose pixels `known`
        (B × window²) holds, and every source window."""
        w = self.gauss * known.to(torch.float64)  # B × window²
        weighted = w[:, None, :] * patches
        ssd = (
            (weighted * patches).sum((1, 2))[:, None]
            - 2 * weighted.reshape(len(patches), -1) @ self.windows.T
            + w @ self.squares.T
        )
        total = w.sum(1, keepdim=True) * self.channels
        return ssd.clamp_min(0) / total

    @staticmethod
    def pick(
        d: torch.Tensor, epsilon: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each row of `d`, a uniformly drawn window among those with d ≤ d_min·(1 + ε):
        (indices, their distances)."""
        best = d.min(1, keepdim=True).values
        candidate = d <= best * (1 + epsilon) + TOLERANCE
        draw = torch.rand(d.shape, generator=generator, dtype=torch.float64).to(d.device)
        chosen = draw.masked_fill(~candidate, -1.0).argmax(1)
        return chosen, d.gather(1, chosen[:, None])[:, 0]


def efros_leung(
    source: torch.Tensor,
    size: int | tuple[int, int],
    *,
    window: int = 11,
    epsilon: float = 0.1,
    max_error: float = 0.3,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """A texture of `size` (side, or (H, W)) grown from `source` (1×C×H×W or C×H×W, 0–1) by
    Efros & Leung's non-parametric sampling: 1×C×H×W in 0–1, on the source's device. The same
    seed gives the same image."""
    image, _ = _grow(source, size, window, epsilon, max_error, seed, progress)
    return image


def _checked(source, size, window, epsilon, max_error) -> tuple[torch.Tensor, tuple[int, int]]:
    window = integer(OWNER, "window", window, low=3, hint="an odd side in pixels")
    if window % 2 == 0:
        raise fail(OWNER, "window", "odd (a window has a centre pixel)", window)
    number(OWNER, "epsilon", epsilon, low=0)
    number(OWNER, "max_error", max_error, low=0, low_open=True)
    if is_int(size):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(is_int(s) and s >= 1 for s in size)
    ):
        raise ConfigError(
            f"{OWNER}: size must be a positive integer or (height, width) of them, got {size!r}"
        )
    if not isinstance(source, torch.Tensor):
        raise InputError(f"{OWNER}: source must be an image tensor, got {type(source).__name__}")
    x = source.detach()
    x = x[None] if x.dim() == 3 else x
    if x.dim() != 4 or x.shape[0] != 1 or not x.is_floating_point():
        raise InputError(
            f"{OWNER}: source must be one float image, 1×C×H×W or C×H×W, got "
            f"{x.dtype} of shape {tuple(source.shape)}"
        )
    if x.shape[-2] < window or x.shape[-1] < window:
        raise InputError(
            f"{OWNER}: the source ({x.shape[-2]}×{x.shape[-1]}) is smaller than the window "
            f"({window}×{window}); use a larger source or a smaller window"
        )
    if not torch.isfinite(x).all():
        raise InputError(f"{OWNER}: the source has NaN or infinite pixels")
    return x, (int(size[0]), int(size[1]))


def _grow(
    source: torch.Tensor,
    size: int | tuple[int, int],
    window: int,
    epsilon: float,
    max_error: float,
    seed: int,
    progress: bool,
    batches: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The image and its known-pixel mask (H×W bool) after `batches` searches (all if None)."""
    x, (h, w) = _checked(source, size, window, epsilon, max_error)
    if not isinstance(seed, numbers.Integral):
        raise fail(OWNER, "seed", "an integer", seed)
    device, c, r = x.device, x.shape[1], window // 2
    windows = SourceWindows(x, window)
    g = torch.Generator().manual_seed(int(seed))
    # The canvas is padded by r on each side with pixels that stay unknown.
    canvas = torch.zeros(c, h + 2 * r, w + 2 * r, dtype=torch.float64, device=device)
    known = torch.zeros(h + 2 * r, w + 2 * r, dtype=torch.bool, device=device)
    sh, sw = min(SEED_SIDE, h), min(SEED_SIDE, w)
    y0 = int(torch.randint(x.shape[-2] - sh + 1, (), generator=g))
    x0 = int(torch.randint(x.shape[-1] - sw + 1, (), generator=g))
    top, left = r + (h - sh) // 2, r + (w - sw) // 2
    canvas[:, top : top + sh, left : left + sw] = x[0, :, y0 : y0 + sh, x0 : x0 + sw].double()
    known[top : top + sh, left : left + sw] = True
    inside = torch.zeros_like(known)
    inside[r : r + h, r : r + w] = True
    offsets = torch.arange(window, device=device) - r
    ring = torch.ones(1, 1, 3, 3, dtype=torch.float64, device=device)
    threshold, done = float(max_error), 0
    with progress_bar("efros-leung", h * w, "px", enabled=progress) as advance:
        advance(sh * sw)
        while not bool(known[inside].all()) and (batches is None or done < batches):
            done += 1
            count = F.conv2d(known[None, None].double(), ring, padding=1)[0, 0]
            frontier = inside & ~known & (count > 0)
            most = count[frontier].max()
            ys, xs = torch.nonzero(frontier & (count == most), as_tuple=True)
            rows = (ys[:, None] + offsets[None, :])[:, :, None].expand(-1, window, window)
            cols = (xs[:, None] + offsets[None, :])[:, None, :].expand(-1, window, window)
            rows, cols = rows.reshape(len(ys), -1), cols.reshape(len(ys), -1)
            patches = canvas[:, rows, cols].permute(1, 0, 2)  # B × C × window²
            chosen, error = windows.pick(windows.distances(patches, known[rows, cols]), epsilon, g)
            accept = error <= threshold
            if not bool(accept.any()):
                threshold *= 1.1
                continue
            ys, xs = ys[accept], xs[accept]
            canvas[:, ys, xs] = windows.centres[chosen[accept]].T
            known[ys, xs] = True
            advance(len(ys))
    image = canvas[None, :, r : r + h, r : r + w].to(x.dtype)
    return image, known[r : r + h, r : r + w]
