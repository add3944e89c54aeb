"""Histogram remapping: the reference histogram exactly, order kept, the post's formula as a
NumPy loop, and the loss's gradient against finite differences."""

import numpy as np
import pytest
import torch

from striate.errors import ConfigError, InputError
from striate.synthesis.histogram import (
    Histogram,
    feature_histogram,
    histogram_loss,
    remap_histogram,
)


def reference(c=3, hw=(8, 8), seed=0):
    """Features whose channels span exactly [-2, 2], so bin edges are exact binary fractions."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(c, *hw, generator=g, dtype=torch.float64).clamp(-2, 2)
    f[:, 0, 0], f[:, 0, 1] = -2.0, 2.0
    return f


def bin_counts(values, hist):
    scaled = (values - hist.low[:, None]) / (hist.high - hist.low)[:, None] * hist.bins
    idx = scaled.floor().long().clamp(0, hist.bins - 1)
    out = torch.zeros_like(hist.counts)
    return out.scatter_add_(1, idx, torch.ones_like(values))


def post_loop(values, counts, low, high):
    """The post's remapping (ranks from 0, as in the authors' kernel) written as a loop."""
    c, n = values.shape
    bins = counts.shape[1]
    out = np.empty_like(values)
    for ch in range(c):
        hist = counts[ch] * n / counts[ch].sum()
        cum = np.cumsum(hist)
        step = (high[ch] - low[ch]) / bins
        order = np.argsort(values[ch], kind="stable")
        for i in range(n):
            idx = min(int(np.sum(cum <= i)), bins - 1)
            prev = cum[idx - 1] if idx > 0 else 0.0
            ratio = min(max((i - prev) / hist[idx], 0.0), 1.0)
            out[ch, order[i]] = low[ch] + (idx + ratio) * step
    return out


def test_histogram_counts_against_numpy():
    f = reference()
    h = feature_histogram(f, 16)
    for ch in range(3):
        want, _ = np.histogram(f[ch].numpy(), bins=16, range=(-2, 2))
        np.testing.assert_array_equal(h.counts[ch].numpy(), want)
    assert torch.equal(h.low, torch.full((3,), -2.0, dtype=torch.float64))
    mask = torch.zeros(8, 8)
    mask[2:6, 3:7] = 1
    hm = feature_histogram(f, 16, mask=mask)
    assert hm.counts.sum(1).tolist() == [16.0] * 3


@pytest.mark.parametrize("n", [64, 192])  # the reference's size and three times it
def test_remap_gives_the_reference_histogram_exactly(n):
    h = feature_histogram(reference(), 32)
    x = torch.randn(3, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 7
    r = remap_histogram(x, h)
    torch.testing.assert_close(bin_counts(r, h), h.counts * n / 64, rtol=0, atol=0)


def test_remap_counts_within_one_when_sizes_do_not_divide():
    h = feature_histogram(reference(), 32)
    x = torch.rand(3, 50, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = bin_counts(remap_histogram(x, h), h)
    assert (got - h.counts * 50 / 64).abs().max() < 1
    assert got.sum(1).tolist() == [50.0] * 3


def test_remap_keeps_order_and_equals_the_post_loop():
    h = feature_histogram(reference(seed=3), 256)
    x = torch.randn(3, 300, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    r = remap_histogram(x, h)
    order = x.argsort(1)
    assert (r.gather(1, order).diff(dim=1) >= 0).all()
    want = post_loop(x.numpy(), h.counts.numpy(), h.low.numpy(), h.high.numpy())
    np.testing.assert_allclose(r.numpy(), want, rtol=0, atol=1e-12)


def test_remap_onto_own_histogram_moves_less_than_a_bin():
    f = reference(seed=5)
    h = feature_histogram(f, 64)
    v = f.reshape(3, -1)
    assert (remap_histogram(v, h) - v).abs().max() <= 4 / 64 + 1e-12


def test_histogram_loss_value_and_gradient():
    h = feature_histogram(reference(seed=6), 16)
    f = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    mask = torch.rand(5, 6, generator=torch.Generator().manual_seed(8)) > 0.4
    v = f.reshape(3, -1)[:, mask.reshape(-1)]
    want = (v - remap_histogram(v, h)).square()
    torch.testing.assert_close(histogram_loss(f, h, mask=mask), want.mean())
    torch.testing.assert_close(histogram_loss(f, h, mask=mask, reduction="sum"), want.sum())
    x = f.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: histogram_loss(t, h, mask=mask), (x,), eps=1e-7)


def test_bad_input():
    h = feature_histogram(reference(), 8)
    with pytest.raises(InputError, match="channels"):
        remap_histogram(torch.randn(2, 10, dtype=torch.float64), h)
    with pytest.raises(InputError, match="no position"):
        histogram_loss(reference(), h, mask=torch.zeros(8, 8))
    with pytest.raises(InputError, match="mask is"):
        feature_histogram(reference(), mask=torch.ones(4, 4))
    with pytest.raises(ConfigError, match="reduction"):
        histogram_loss(reference(), h, reduction="max")
    assert isinstance(h, Histogram) and h.bins == 8
