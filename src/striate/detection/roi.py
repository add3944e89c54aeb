"""RoI pooling (Girshick 2015, Fast R-CNN §2.1) and RoIAlign (He et al. 2017, Mask R-CNN §3) with
torchvision.ops' semantics, as tensor operations over all RoIs at once.

`boxes` is K×5 `[batch_index, x1, y1, x2, y2]` or a list of per-image K_i×4 xyxy tensors, in
input-image coordinates; `spatial_scale` maps them onto the feature map (1/stride). The output is
K×C×h×w. Gradients flow to `input`; the boxes are constants (as in torchvision).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from striate.checks import integer, is_int, positive_number
from striate.errors import InputError


def _pair(owner: str, output_size: int | Sequence[int]) -> tuple[int, int]:
    if is_int(output_size):
        output_size = (output_size, output_size)
    if isinstance(output_size, str) or not isinstance(output_size, Sequence):
        output_size = (output_size,)
    if len(output_size) != 2 or not all(is_int(v) and v >= 1 for v in output_size):
        raise InputError(
            f"{owner}: output_size must be a positive int or (height, width), got {output_size!r}"
        )
    return int(output_size[0]), int(output_size[1])


def rois(boxes: torch.Tensor | Sequence[torch.Tensor], owner: str = "rois") -> torch.Tensor:
    """The K×5 `[batch_index, x1, y1, x2, y2]` form of `boxes` (K×5 already, or a list of per-image
    K_i×4 tensors)."""
    if isinstance(boxes, (list, tuple)):
        for i, b in enumerate(boxes):
            if not isinstance(b, torch.Tensor) or b.ndim != 2 or b.shape[1] != 4:
                got = tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__
                raise InputError(f"{owner}: boxes[{i}] must be a K×4 tensor, got {got}")
        if not boxes:
            return torch.zeros(0, 5)
        dtype = torch.promote_types(boxes[0].dtype, torch.float32)
        index = torch.cat([torch.full((len(b), 1), i, dtype=dtype) for i, b in enumerate(boxes)])
        return torch.cat((index.to(boxes[0].device), torch.cat(boxes).to(dtype)), 1)
    if not isinstance(boxes, torch.Tensor) or boxes.ndim != 2 or boxes.shape[1] != 5:
        got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise InputError(
            f"{owner}: boxes must be a K×5 tensor [batch_index, x1, y1, x2, y2] or a list of "
            f"per-image K×4 tensors, got {got}"
        )
    return boxes


def _prepare(
    owner: str, input: torch.Tensor, boxes, output_size
) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    if not isinstance(input, torch.Tensor) or input.ndim != 4 or not input.is_floating_point():
        got = (
            f"{input.dtype} of shape {tuple(input.shape)}"
            if isinstance(input, torch.Tensor)
            else type(input).__name__
        )
        raise InputError(f"{owner}: input must be a floating N×C×H×W tensor, got {got}")
    r = rois(boxes, owner).detach().to(device=input.device, dtype=input.dtype)
    if not bool(torch.isfinite(r).all()):
        k = int((~torch.isfinite(r).all(1)).nonzero()[0])
        raise InputError(f"{owner}: box {k} = {r[k].tolist()} is not finite")
    b = r[:, 0]
    bad = (b != b.round()) | (b < 0) | (b >= len(input))
    if bool(bad.any()):
        k = int(bad.nonzero()[0])
        raise InputError(
            f"{owner}: box {k} has batch index {b[k].item()}, which is not an image of the "
            f"batch of {len(input)}"
        )
    ph, pw = _pair(owner, output_size)
    return r, b.long(), ph, pw


def roi_align(
    input: torch.Tensor,
    boxes: torch.Tensor | Sequence[torch.Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> torch.Tensor:
    """RoIAlign: each of the h×w bins of a RoI is the mean of bilinear samples on a regular
    sampling_ratio × sampling_ratio grid (adaptive when ≤ 0: ceil(RoI size / output size) per
    RoI). `aligned=True` shifts the box by −0.5 pixel so that a pixel's centre sits at its
    integer coordinate + 0.5 (Detectron2's fix); `aligned=False` is the original, which also
    stretches RoIs to at least 1×1. Samples beyond one pixel outside the map are zero, those
    within it are clamped to the border (torchvision's roi_align_kernel.cpp).

    Bilinear sampling is separable, so the mean over a bin's samples is A_k · F_b · B_kᵀ with A
    (h×H) and B (w×W) the per-RoI sums of the samples' row and column weights: one einsum over a
    window of the feature map as large as the largest RoI, for all RoIs together.
    """
    owner = "roi_align"
    r, b, ph, pw = _prepare(owner, input, boxes, output_size)
    spatial_scale = positive_number(owner, "spatial_scale", spatial_scale)
    sampling_ratio = integer(owner, "sampling_ratio", sampling_ratio)
    _, c, height, width = input.shape
    if len(r) == 0:
        return input.new_zeros(0, c, ph, pw)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (r[:, 1:] * spatial_scale - offset).unbind(1)
    rh, rw = y2 - y1, x2 - x1
    if not aligned:
        rh, rw = rh.clamp(min=1.0), rw.clamp(min=1.0)
    if sampling_ratio > 0:
        gh = torch.full_like(rh, sampling_ratio, dtype=torch.long)
        gw = torch.full_like(rw, sampling_ratio, dtype=torch.long)
    else:
        gh, gw = torch.ceil(rh / ph).long(), torch.ceil(rw / pw).long()
    count = (gh * gw).clamp(min=1).to(input.dtype)
    ay, r0 = _axis_weights(y1, rh / ph, gh, ph, height)
    ax, c0 = _axis_weights(x1, rw / pw, gw, pw, width)
    window = _window(input, b, r0, ay.shape[-1], c0, ax.shape[-1])
    out = torch.einsum("kph,kchw,kqw->kcpq", ay, window, ax)
    return out / count[:, None, None, None]


def _axis_weights(
    start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, bins: int, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """K×bins×L: the summed bilinear weights of each bin's samples along one axis, on a window of L
    rows from K per-RoI first rows (returned too)."""
    k = len(start)
    most = max(int(grid.max()), 1)
    i = torch.arange(most, device=start.device, dtype=start.dtype)
    p = torch.arange(bins, device=start.device, dtype=start.dtype)
    g = grid.to(start.dtype).clamp(min=1)[:, None, None]
    pos = start[:, None, None] + p[None, :, None] * bin_size[:, None, None]
    pos = pos + (i[None, None, :] + 0.5) * bin_size[:, None, None] / g  # K×bins×samples
    used = (i[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().long()
    edge = low >= size - 1
    low = torch.where(edge, size - 1, low)
    high = torch.where(edge, size - 1, low + 1)
    frac = torch.where(edge, 0.0, pos - low.to(pos.dtype))
    w_low = torch.where(used, 1 - frac, 0.0)
    w_high = torch.where(used, frac, 0.0)
    first = torch.where(used, low, size).flatten(1).amin(1).clamp(max=size - 1)  # K
    last = torch.where(used, high, -1).flatten(1).amax(1)
    length = max(int((last - first).max()) + 1, 1)
    weights = start.new_zeros(k, bins, length)
    weights.scatter_add_(
        2, (low - first[:, None, None]).clamp(0, length - 1).flatten(2), w_low.flatten(2)
    )
    weights.scatter_add_(
        2, (high - first[:, None, None]).clamp(0, length - 1).flatten(2), w_high.flatten(2)
    )
    return weights, first


def _window(
    input: torch.Tensor, b: torch.Tensor, r0: torch.Tensor, lh: int, c0: torch.Tensor, lw: int
) -> torch.Tensor:
    """K×C×lh×lw: rows r0 + 0..lh and columns c0 + 0..lw of each RoI's image (indices past the
    border are clamped; their weights are zero)."""
    _, _, height, width = input.shape
    rows = (r0[:, None] + torch.arange(lh, device=input.device)).clamp(max=height - 1)
    cols = (c0[:, None] + torch.arange(lw, device=input.device)).clamp(max=width - 1)
    n, c = input.shape[:2]
    flat = (b[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]
    # index_select's backward (index_add_) sums in a fixed order; advanced indexing's
    # (index_put_ with accumulate) does not on several CPU threads.
    x = input.permute(0, 2, 3, 1).reshape(n * height * width, c)
    return x.index_select(0, flat.reshape(-1)).view(*flat.shape, c).permute(0, 3, 1, 2)


def roi_pool(
    input: torch.Tensor,
    boxes: torch.Tensor | Sequence[torch.Tensor],
    output_size: int | Sequence[int],
    spatial_scale: float = 1.0,
) -> torch.Tensor:
    """RoI max pooling: box corners are rounded to the feature grid (half away from zero), the
    RoI (at least 1×1, corners inclusive) is cut into h×w bins [floor(i·s), ceil((i+1)·s)) and each
    bin is its maximum (0 when empty), as torchvision's roi_pool_kernel.cpp; the gradient goes to
    each bin's arg-max.

    All bins of all RoIs are gathered at once as windows the size of the largest bin, masked
    beyond each bin's own extent."""
    owner = "roi_pool"
    r, b, ph, pw = _prepare(owner, input, boxes, output_size)
    spatial_scale = positive_number(owner, "spatial_scale", spatial_scale)
    _, c, height, width = input.shape
    if len(r) == 0:
        return input.new_zeros(0, c, ph, pw)
    scaled = r[:, 1:] * spatial_scale
    corners = (scaled.sign() * (scaled.abs() + 0.5).floor()).long()  # std::round
    x1, y1, x2, y2 = corners.unbind(1)
    h0, hs, hlen = _bins(y1, y2, ph, height, input.dtype)
    w0, ws, wlen = _bins(x1, x2, pw, width, input.dtype)
    lh, lw = max(int(hlen.max()), 1), max(int(wlen.max()), 1)
    rows = (h0[:, :, None] + torch.arange(lh, device=input.device)).clamp(max=height - 1)
    cols = (w0[:, :, None] + torch.arange(lw, device=input.device)).clamp(max=width - 1)
    row_ok = torch.arange(lh, device=input.device) < hlen[:, :, None]  # K×ph×lh
    col_ok = torch.arange(lw, device=input.device) < wlen[:, :, None]  # K×pw×lw
    x = input.permute(0, 2, 3, 1)
    vals = x[
        b[:, None, None, None, None],
        rows[:, :, None, :, None],
        cols[:, None, :, None, :],
    ]  # K×ph×pw×lh×lw×C
    ok = row_ok[:, :, None, :, None] & col_ok[:, None, :, None, :]
    vals = vals.masked_fill(~ok[..., None], float("-inf")).flatten(3, 4)
    best = vals.max(3).values  # K×ph×pw×C
    empty = (hs[:, :, None] | ws[:, None, :])[..., None]
    return torch.where(empty, 0.0, best).permute(0, 3, 1, 2).contiguous()


def _bins(
    start: torch.Tensor, end: torch.Tensor, bins: int, size: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per RoI and bin along one axis: the first index, whether the bin is empty, its length (bin
    edges computed in the input's dtype, as the kernel does)."""
    extent = (end - start + 1).clamp(min=1).to(dtype)
    step = extent / bins
    p = torch.arange(bins, device=start.device, dtype=dtype)
    lo = torch.floor(p[None] * step[:, None]).long() + start[:, None]
    hi = torch.ceil((p[None] + 1) * step[:, None]).long() + start[:, None]
    lo, hi = lo.clamp(0, size), hi.clamp(0, size)
    return lo.clamp(max=size - 1), hi <= lo, (hi - lo).clamp(min=0)
