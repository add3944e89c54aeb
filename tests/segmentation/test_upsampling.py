"""Upsampling against the lecture's worked examples (literal) and torch's own ops: the 1-D
convolution matrix X and its transpose (transposed convolution = Xᵀa), unpooling 2×2 → 4×4."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from striate.errors import ConfigError
from striate.segmentation.upsampling import (
    BedOfNailsUnpool,
    MaxUnpool,
    NearestUnpool,
    Upsample,
    bilinear_kernel,
    conv_matrix,
    pad_to_multiple,
    transposed_conv,
)

# the slides' symbols as distinct primes, so every product in a sum can be told apart
x, y, z = 2.0, 3.0, 5.0
a, b, c, d = 7.0, 11.0, 13.0, 17.0
KERNEL = torch.tensor([[[x, y, z]]])


def test_the_stride_1_matrix_and_its_transpose_are_the_slides():
    X = conv_matrix(KERNEL, 4, stride=1, padding=1)
    assert X.tolist() == [
        [x, y, z, 0, 0, 0],
        [0, x, y, z, 0, 0],
        [0, 0, x, y, z, 0],
        [0, 0, 0, x, y, z],
    ]
    v = torch.tensor([a, b, c, d])
    padded = torch.tensor([0, a, b, c, d, 0])
    assert (X @ padded).tolist() == [a * y + b * z, a * x + b * y + c * z,
                                     b * x + c * y + d * z, c * x + d * y]  # fmt: skip
    assert (X @ padded).tolist() == F.conv1d(v.view(1, 1, 4), KERNEL, padding=1).flatten().tolist()
    # transposed: Xᵀa over the padded positions, then the two padded ends dropped
    full = [
        a * x,
        a * y + b * x,
        a * z + b * y + c * x,
        b * z + c * y + d * x,
        c * z + d * y,
        d * z,
    ]
    assert (X.T @ v).tolist() == full
    got = transposed_conv(v.view(1, 1, 4), KERNEL, 4, stride=1, padding=1)
    assert got.flatten().tolist() == full[1:-1]
    torch.testing.assert_close(got, F.conv_transpose1d(v.view(1, 1, 4), KERNEL, padding=1))
    # "with stride 1, convolution transpose is just a regular convolution": the flipped kernel
    flipped = F.conv1d(v.view(1, 1, 4), KERNEL.flip(-1), padding=1)
    torch.testing.assert_close(got, flipped)


def test_the_stride_2_matrix_and_its_transpose_are_the_slides():
    X = conv_matrix(KERNEL, 4, stride=2, padding=1)
    assert X.tolist() == [[x, y, z, 0, 0, 0], [0, 0, x, y, z, 0]]
    v = torch.tensor([a, b])
    assert (X.T @ v).tolist() == [a * x, a * y, a * z + b * x, b * y, b * z, 0]
    got = transposed_conv(v.view(1, 1, 2), KERNEL, 4, stride=2, padding=1)
    assert got.flatten().tolist() == [a * y, a * z + b * x, b * y, b * z]
    ref = F.conv_transpose1d(v.view(1, 1, 2), KERNEL, stride=2, padding=1, output_padding=1)
    torch.testing.assert_close(got, ref)
    # no longer a convolution: no kernel on the zero-stuffed input gives a·y and b·z both


@pytest.mark.parametrize(
    ("size", "stride", "padding"), [(4, 1, 1), (8, 2, 1), (9, 2, 0), (7, 3, 1), (12, 4, 2)]
)
def test_the_transpose_of_the_conv_matrix_is_conv_transpose1d(size, stride, padding):
    g = torch.Generator().manual_seed(size)
    w = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    X = conv_matrix(w, size, stride, padding)
    inp = torch.randn(5, 2, size, generator=g, dtype=torch.float64)
    conv = F.conv1d(inp, w, stride=stride, padding=padding)
    torch.testing.assert_close((X @ F.pad(inp, (padding, padding)).reshape(5, -1).T).T,
                               conv.reshape(5, -1))  # fmt: skip
    a_ = torch.randn(*conv.shape, generator=g, dtype=torch.float64)
    extra = size - ((conv.shape[-1] - 1) * stride - 2 * padding + 4)
    ref = F.conv_transpose1d(a_, w, stride=stride, padding=padding, output_padding=extra)
    torch.testing.assert_close(transposed_conv(a_, w, size, stride, padding), ref)


def test_the_transpose_of_the_conv_matrix_is_conv_transpose2d():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64)
    a_ = torch.randn(2, 4, 4, 5, generator=g, dtype=torch.float64)
    ref = F.conv_transpose2d(a_, w, stride=2, padding=1, output_padding=(1, 0))
    assert ref.shape == (2, 3, 8, 9)
    torch.testing.assert_close(transposed_conv(a_, w, (8, 9), stride=2, padding=1), ref)
    # and it is the gradient of the convolution: ⟨conv(u), a⟩ = ⟨u, convᵀ(a)⟩
    u = torch.randn(2, 3, 8, 9, generator=g, dtype=torch.float64)
    lhs = (F.conv2d(u, w, stride=2, padding=1) * a_).sum()
    torch.testing.assert_close(lhs, (u * ref).sum())


def test_conv_matrix_refuses_a_kernel_larger_than_the_input():
    with pytest.raises(ConfigError, match="larger than the padded input"):
        conv_matrix(torch.ones(1, 1, 5), 3)


SLIDE_2x2 = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)


def test_nearest_and_bed_of_nails_are_the_slides():
    assert NearestUnpool(2)(SLIDE_2x2)[0, 0].tolist() == [
        [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]
    ]  # fmt: skip
    assert BedOfNailsUnpool(2)(SLIDE_2x2)[0, 0].tolist() == [
        [1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]
    ]  # fmt: skip
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 3, 5, 4, generator=g)
    torch.testing.assert_close(NearestUnpool(3)(t), F.interpolate(t, scale_factor=3))


def test_max_unpooling_is_the_slides():
    pooled_input = torch.tensor([[1.0, 2, 6, 3], [3, 5, 2, 1], [1, 2, 2, 1], [7, 3, 4, 8]]).view(
        1, 1, 4, 4
    )
    pooled, indices = F.max_pool2d(pooled_input, 2, return_indices=True)
    assert pooled[0, 0].tolist() == [[5, 6], [7, 8]]
    out = MaxUnpool(2)(SLIDE_2x2, indices)  # "rest of the network" gave 1 2 / 3 4
    assert out[0, 0].tolist() == [[0, 0, 2, 0], [0, 1, 0, 0], [0, 0, 0, 0], [3, 0, 0, 4]]


@pytest.mark.parametrize("size", [(8, 8), (9, 7)])
def test_max_unpool_is_torch_s(size):
    g = torch.Generator().manual_seed(1)
    t = torch.randn(2, 3, *size, generator=g)
    pooled, indices = F.max_pool2d(t, 2, return_indices=True)
    ref = nn.MaxUnpool2d(2)(pooled, indices, output_size=size)
    torch.testing.assert_close(MaxUnpool(2)(pooled, indices, size), ref)
    with pytest.raises(ConfigError, match="shaped like the input"):
        MaxUnpool(2)(pooled, indices[:1])


def test_bilinear_kernel_upsamples_as_bilinear_interpolation():
    """Away from the border, the FCN initialisation equals align_corners=False bilinear."""
    g = torch.Generator().manual_seed(2)
    t = torch.randn(1, 2, 6, 6, generator=g)
    up = F.conv_transpose2d(t, bilinear_kernel(2, 4), stride=2, padding=1)
    ref = F.interpolate(t, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1])


@pytest.mark.parametrize("kind", ["max", "nearest", "bed_of_nails", "transpose"])
def test_upsample_doubles_the_size(kind):
    t = torch.randn(2, 4, 6, 5)
    pooled, indices = F.max_pool2d(t, 2, return_indices=True)
    out = Upsample(4, 3, kind)(pooled, indices, (6, 5) if kind == "max" else ())
    assert out.shape == ((2, 3, 6, 5) if kind == "max" else (2, 3, 6, 4))


def test_pad_to_multiple():
    t = torch.ones(1, 1, 5, 8)
    padded, size = pad_to_multiple(t, 4)
    assert padded.shape == (1, 1, 8, 8) and size == (5, 8)
    assert padded[..., 5:, :].abs().sum() == 0
