"""Upsampling inside a network (lecture 11): unpooling and transposed convolution.

    NearestUnpool(2)(x)        # each value copied into a 2×2 block
    BedOfNailsUnpool(2)(x)     # each value at its block's top-left corner, zeros elsewhere
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    MaxUnpool(2)(y, idx)       # each value back where the max came from (Noh et al. 2015)

A convolution is a matrix X applied to the zero-padded input (`conv_matrix`, the slides' "1D
example"); a transposed convolution multiplies by the transpose of the same matrix, Xᵀa, then
drops the padded border (`transposed_conv`). With stride 1 that is a convolution with the kernel
flipped; with stride s > 1 it is not a convolution at all: each input value scatters a copy of the
kernel, s outputs apart, and the copies add where they overlap.

The reference slides (002, "Convolution as Matrix Multiplication") print the first row of X as
[x y x 0 0 0]; it is [x y z 0 0 0], as their product [ay + bz, …] shows. Their Xᵀa keeps the
padded ends ([ax, ay, …]); `F.conv_transpose1d(padding=1)` drops them, and for stride 2 needs
`output_padding=1` to give back the 4 inputs the 2 outputs came from (several input sizes
stride down to the same output size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import positive_int
from striate.errors import ConfigError


def _pair(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    return tuple(int(v) for v in value)


def conv_matrix(
    weight: torch.Tensor,
    size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """The matrix X of a convolution (cross-correlation, as `F.conv1d`/`F.conv2d` compute it)
    with `weight` (C_out×C_in×k or C_out×C_in×kh×kw) on inputs of `size` (L or (H, W)),
    acting on the zero-padded input flattened channel by channel: X has C_out·∏out rows and
    C_in·∏(size + 2·padding) columns, so that conv(x) = X · pad(x).flatten()."""
    dims = weight.dim() - 2
    if dims not in (1, 2):
        raise ConfigError(f"conv_matrix: weight must be 3-D or 4-D, got {tuple(weight.shape)}")
    size, stride, padding = _pair(size, dims), _pair(stride, dims), _pair(padding, dims)
    kernel = tuple(weight.shape[2:])
    if dims == 1:  # a 1-D convolution is a 2-D one on a 1-pixel-high input
        weight, size, stride, padding, kernel = (
            weight[:, :, None],
            (1, *size),
            (1, *stride),
            (0, *padding),
            (1, *kernel),
        )
    c_out, c_in = weight.shape[:2]
    padded = [n + 2 * p for n, p in zip(size, padding, strict=True)]
    out = [(n - k) // s + 1 for n, k, s in zip(padded, kernel, stride, strict=True)]
    if min(out) < 1:
        raise ConfigError(f"conv_matrix: kernel {kernel} is larger than the padded input {padded}")
    x = weight.new_zeros(c_out, out[0], out[1], c_in, padded[0], padded[1])
    oy = torch.arange(out[0]).view(-1, 1)
    ox = torch.arange(out[1]).view(1, -1)
    for ky in range(kernel[0]):  # a loop over the kernel's taps, not over pixels
        for kx in range(kernel[1]):
            rows, cols = oy * stride[0] + ky, ox * stride[1] + kx
            # x[:, oy, ox, :, rows, cols] = w[:, :, ky, kx] for every output position
            x.permute(1, 2, 4, 5, 0, 3)[oy, ox, rows, cols] = weight[:, :, ky, kx]
    return x.reshape(c_out * out[0] * out[1], c_in * padded[0] * padded[1])


def transposed_conv(
    a: torch.Tensor,
    weight: torch.Tensor,
    size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
) -> torch.Tensor:
    """Xᵀa with the padded border dropped: the transposed convolution of `a` (N×C_out×…)
    back to an input of `size`, for X = `conv_matrix(weight, size, stride, padding)`. Equal to
    `F.conv_transpose{1,2}d(a, weight, stride=stride, padding=padding, output_padding=o)` with
    o = size − ((n − 1)·stride − 2·padding + k) (the slides' 1-D example: test_upsampling.py)."""
    dims = weight.dim() - 2
    size, padding = _pair(size, dims), _pair(padding, dims)
    x = conv_matrix(weight, size, stride, padding)
    flat = a.reshape(len(a), -1) @ x.to(a.dtype)
    padded = [n + 2 * p for n, p in zip(size, padding, strict=True)]
    full = flat.reshape(len(a), weight.shape[1], *padded)
    crop = tuple(slice(p, p + n) for n, p in zip(size, padding, strict=True))
    return full[(slice(None), slice(None), *crop)]


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """A channels×channels×size×size transposed-convolution weight that upsamples each channel
    bilinearly by (size + 1) // 2 (FCN's initialisation, Long et al. 2015 §3.3: "initialized to
    bilinear upsampling"); off-diagonal channel pairs are zero."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    t = torch.arange(size, dtype=torch.float32)
    tap = 1 - (t - centre).abs() / factor
    weight = torch.zeros(channels, channels, size, size)
    index = torch.arange(channels)
    weight[index, index] = tap[:, None] * tap[None, :]
    return weight


class NearestUnpool(nn.Module):
    """Nearest-neighbour unpooling: each value fills a scale×scale block (the slides' 2×2 → 4×4
    example: [[1, 2], [3, 4]] → [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = positive_int("NearestUnpool", "scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        n, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)


class BedOfNailsUnpool(nn.Module):
    """ "Bed of nails" unpooling: each value at the top-left of its scale×scale block, zeros
    elsewhere (the slides: [[1, 2], [3, 4]] → [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0],
    [0, 0, 0, 0]])."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = positive_int("BedOfNailsUnpool", "scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        n, c, h, w = x.shape
        out = x.new_zeros(n, c, h, s, w, s)
        out[:, :, :, 0, :, 0] = x
        return out.reshape(n, c, h * s, w * s)


class MaxUnpool(nn.Module):
    """Max unpooling (Noh et al. 2015, "switch variables"): each value goes back to the position
    its max pooling took the maximum from (`indices` of `F.max_pool2d(..., return_indices=True)`,
    flat within each H×W plane), zeros elsewhere; as `nn.MaxUnpool2d`. `output_size` (H, W)
    is the pooled input's size (default: the pooled size × stride)."""

    def __init__(self, stride: int = 2) -> None:
        super().__init__()
        self.stride = positive_int("MaxUnpool", "stride", stride)

    def forward(
        self,
        x: torch.Tensor,
        indices: torch.Tensor,
        output_size: Sequence[int] | None = None,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        if indices.shape != x.shape:
            raise ConfigError(
                f"MaxUnpool: indices {tuple(indices.shape)} must be shaped like the input "
                f"{tuple(x.shape)} (those of the pooling it undoes)"
            )
        oh, ow = (h * self.stride, w * self.stride) if output_size is None else output_size[-2:]
        out = x.new_zeros(n, c, oh * ow)
        out.scatter_(2, indices.reshape(n, c, -1), x.reshape(n, c, -1))
        return out.view(n, c, oh, ow)


UNPOOLS = ("max", "nearest", "bed_of_nails", "transpose")


class Upsample(nn.Module):
    """×2 upsampling from `channels` to `out_channels` by one of `UNPOOLS`: an unpooling followed
    by a 3×3 convolution, or a learned 4×4 stride-2 transposed convolution (the slides' "learnable
    upsampling"). `forward(x, indices, size)`: `indices` and `size` are those of the pooling it
    mirrors (used by "max")."""

    def __init__(self, channels: int, out_channels: int, kind: str = "transpose") -> None:
        super().__init__()
        self.kind = kind
        if kind == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1)
            self.conv: nn.Module = nn.Identity()
            return
        self.up = {"max": MaxUnpool, "nearest": NearestUnpool, "bed_of_nails": BedOfNailsUnpool}[
            kind
        ](2)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(
        self, x: torch.Tensor, indices: torch.Tensor | None = None, size: Sequence[int] = ()
    ) -> torch.Tensor:
        if self.kind == "max":
            return self.conv(self.up(x, indices, size or None))
        return self.conv(self.up(x))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`x` zero-padded on the bottom and right to a height and width divisible by `multiple`
    (what a network that halves the image k times needs), and its original (H, W) to crop the
    output back to."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph))
    return x, (h, w)
