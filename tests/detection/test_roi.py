"""RoI pooling and RoIAlign against loop transcriptions of torchvision's CPU kernels
(roi_align_kernel.cpp, roi_pool_kernel.cpp), with gradients by finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from striate.detection.roi import roi_align, roi_pool, rois
from striate.errors import ConfigError, InputError


def bilinear(f, y, x, T):
    """bilinear_interpolate of roi_align_kernel.cpp, for one channel f (H×W)."""
    height, width = f.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return T(0)
    y, x = max(y, T(0)), max(x, T(0))
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_high = y_low = height - 1
        y = T(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_high = x_low = width - 1
        x = T(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * f[y_low, x_low]
        + hy * lx * f[y_low, x_high]
        + ly * hx * f[y_high, x_low]
        + ly * lx * f[y_high, x_high]
    )


def roi_align_loop(x, boxes, ph, pw, scale, sampling_ratio, aligned):
    x = x.numpy()
    T = x.dtype.type
    out = np.zeros((len(boxes), x.shape[1], ph, pw), dtype=x.dtype)
    offset = T(0.5) if aligned else T(0)
    for k, roi in enumerate(boxes.numpy().astype(x.dtype)):
        f = x[int(roi[0])]
        sw, sh = roi[1] * T(scale) - offset, roi[2] * T(scale) - offset
        ew, eh = roi[3] * T(scale) - offset, roi[4] * T(scale) - offset
        rw, rh = ew - sw, eh - sh
        if not aligned:
            rw, rh = max(rw, T(1)), max(rh, T(1))
        bh, bw = rh / T(ph), rw / T(pw)
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / T(ph))
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / T(pw))
        count = max(gh * gw, 1)
        for c in range(x.shape[1]):
            for i in range(ph):
                for j in range(pw):
                    total = T(0)
                    for iy in range(gh):
                        y = sh + i * bh + T(iy + 0.5) * bh / T(gh)
                        for ix in range(gw):
                            xx = sw + j * bw + T(ix + 0.5) * bw / T(gw)
                            total += bilinear(f[c], y, xx, T)
                    out[k, c, i, j] = total / T(count)
    return torch.from_numpy(out)


def roi_pool_loop(x, boxes, ph, pw, scale):
    x = x.numpy()
    T = x.dtype.type
    height, width = x.shape[2:]
    out = np.zeros((len(boxes), x.shape[1], ph, pw), dtype=x.dtype)
    for k, roi in enumerate(boxes.numpy().astype(x.dtype)):
        f = x[int(roi[0])]
        sw, sh, ew, eh = (int(np.sign(v) * np.floor(abs(v) + 0.5)) for v in roi[1:] * T(scale))
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = T(rh) / T(ph), T(rw) / T(pw)
        for i in range(ph):
            for j in range(pw):
                hs = min(max(int(np.floor(T(i) * bh)) + sh, 0), height)
                he = min(max(int(np.ceil(T(i + 1) * bh)) + sh, 0), height)
                ws = min(max(int(np.floor(T(j) * bw)) + sw, 0), width)
                we = min(max(int(np.ceil(T(j + 1) * bw)) + sw, 0), width)
                for c in range(x.shape[1]):
                    if he <= hs or we <= ws:
                        continue
                    out[k, c, i, j] = f[c, hs:he, ws:we].max()
    return torch.from_numpy(out)


def some_rois(dtype=torch.float64):
    """Boxes in input pixels (spatial_scale 0.5 maps them onto the 7×9 map): inside, across and
    beyond the borders, tiny, empty, one whole-image, on the second image."""
    return torch.tensor(
        [
            [0, 2.0, 3.0, 10.0, 9.0],
            [1, -4.0, -3.0, 6.0, 5.0],
            [1, 12.0, 8.0, 22.0, 17.0],  # reaches past the right and bottom borders
            [0, 5.0, 5.0, 5.3, 5.2],  # tiny
            [1, 7.0, 4.0, 7.0, 4.0],  # empty
            [0, 0.0, 0.0, 18.0, 14.0],  # the whole map
            [1, 30.0, 30.0, 40.0, 34.0],  # entirely outside
            [0, 1.3, 2.7, 13.9, 6.1],
        ],
        dtype=dtype,
    )


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_equals_the_kernel(aligned, sampling_ratio):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)
    boxes = some_rois()
    got = roi_align(x, boxes, (3, 2), 0.5, sampling_ratio, aligned)
    want = roi_align_loop(x, boxes, 3, 2, 0.5, sampling_ratio, aligned)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_roi_align_float32_and_per_image_lists():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 7, 9, generator=g)
    boxes = some_rois(torch.float32)
    want = roi_align_loop(x, boxes, 2, 2, 0.5, -1, True)
    torch.testing.assert_close(roi_align(x, boxes, 2, 0.5, aligned=True), want)
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    order = torch.argsort(boxes[:, 0], stable=True)
    torch.testing.assert_close(roi_align(x, per_image, 2, 0.5, aligned=True), want[order])
    assert rois(per_image).shape == (8, 5)
    assert roi_align(x, torch.zeros(0, 5), 2).shape == (0, 4, 2, 2)


def test_roi_pool_equals_the_kernel():
    g = torch.Generator().manual_seed(2)
    for dtype in (torch.float64, torch.float32):
        x = torch.randn(2, 3, 7, 9, generator=g, dtype=dtype)
        boxes = some_rois(dtype)
        for size, scale in (((3, 2), 0.5), ((2, 4), 0.5), ((3, 3), 0.3333)):
            got = roi_pool(x, boxes, size, scale)
            torch.testing.assert_close(got, roi_pool_loop(x, boxes, *size, scale), rtol=0, atol=0)


def test_gradients_by_finite_differences():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 7, 9, generator=g, dtype=torch.float64, requires_grad=True)
    boxes = some_rois()
    assert torch.autograd.gradcheck(lambda t: roi_align(t, boxes, (3, 2), 0.5, -1, True), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_align(t, boxes, 2, 0.5, 2, False), (x,))
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, boxes, (3, 2), 0.5), (x,))


def test_bad_input_is_one_line():
    x = torch.randn(2, 3, 7, 9)
    with pytest.raises(InputError, match="K×5 tensor"):
        roi_align(x, torch.zeros(3, 4), 2)
    with pytest.raises(InputError, match=r"boxes\[1\] must be a K×4 tensor"):
        roi_align(x, [torch.zeros(1, 4), torch.zeros(2)], 2)
    with pytest.raises(
        InputError, match="batch index 2.0, which is not an image of the batch of 2"
    ):
        roi_pool(x, torch.tensor([[2.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(InputError, match="floating N×C×H×W"):
        roi_align(x[0], torch.zeros(0, 5), 2)
    with pytest.raises(InputError, match="not finite"):
        roi_align(x, torch.tensor([[0.0, 0, 0, float("inf"), 1]]), 2)
    with pytest.raises(InputError, match="output_size must be"):
        roi_align(x, torch.zeros(0, 5), (2, 0))
    with pytest.raises(ConfigError, match="spatial_scale must be a positive number"):
        roi_align(x, torch.zeros(0, 5), 2, spatial_scale=0)
