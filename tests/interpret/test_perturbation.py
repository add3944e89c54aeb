"""Occlusion against a plain loop over the patch positions written here (float64, tolerance
1e-12): each window occluded in turn, the score's drop added to the pixels it covers, divided by
the number of windows that cover each pixel (captum's definition)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.errors import ConfigError, InputError
from striate.interpret.perturbation import occlusion, occlusion_map

D64 = torch.float64


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(inplace=True),
        nn.Conv2d(6, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 6 * 5, 4),
    ).to(D64)
    net[1].running_mean.uniform_(-0.3, 0.3)
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, 11, 9, generator=torch.Generator().manual_seed(1), dtype=D64)


def loop_reference(model, x, t, patch, stride, fill, probability):
    """(per-pixel attribution N×C×H×W, score grid N×1×rows×cols) by one forward per window."""
    (ph, pw), (sh, sw) = patch, stride
    h, w = x.shape[-2:]
    rows = math.ceil((h - ph) / sh) + 1
    cols = math.ceil((w - pw) / sw) + 1

    def score(v):
        with torch.no_grad():
            out = model(v)
        out = out.softmax(1) if probability else out
        return out[range(len(t)), t]

    base = score(x)
    total, count = torch.zeros_like(x), torch.zeros_like(x[:1])
    grid = torch.zeros(len(x), 1, rows, cols, dtype=D64)
    for i in range(rows):
        for j in range(cols):
            top, left = i * sh, j * sw
            v = x.clone()
            v[:, :, top : top + ph, left : left + pw] = fill
            s = score(v)
            grid[:, 0, i, j] = s
            total[:, :, top : top + ph, left : left + pw] += (base - s).view(-1, 1, 1, 1)
            count[:, :, top : top + ph, left : left + pw] += 1
    return total / count, grid


@pytest.mark.parametrize(
    "patch, stride, fill, probability",
    [
        (4, 3, 0.0, False),  # the last window passes the border and is cut
        ((5, 3), (2, 3), 0.5, True),  # rectangular, probability
        (3, 3, 0.25, False),  # windows that tile without overlap
        ((11, 9), 1, 0.0, False),  # one window: the whole image
    ],
)
def test_occlusion_matches_the_loop(patch, stride, fill, probability):
    model, x, t = small_cnn(), images(), [1, 3]
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    ref, grid = loop_reference(model, x, t, pair(patch), pair(stride), fill, probability)
    ours = occlusion(model, x, t, patch=patch, stride=stride, fill=fill, probability=probability)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert ours.abs().max() > 1e-6
    coarse = occlusion_map(
        model, x, t, patch=patch, stride=stride, fill=fill, probability=probability
    )
    torch.testing.assert_close(coarse, grid, rtol=1e-12, atol=1e-12)


def test_occlusion_fill_tensor_and_batches():
    model, x, t = small_cnn(), images(3), [0, 1, 2]
    grey = torch.tensor([0.2, 0.5, 0.8], dtype=D64).view(1, 3, 1, 1)
    a = occlusion(model, x, t, patch=4, stride=2, fill=grey, internal_batch_size=1)
    b = occlusion(model, x, t, patch=4, stride=2, fill=grey.expand_as(x), internal_batch_size=999)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    c = occlusion_map(model, x, t, patch=4, stride=2, fill=grey, internal_batch_size=7)
    d = occlusion_map(model, x, t, patch=4, stride=2, fill=grey, internal_batch_size=1000)
    torch.testing.assert_close(c, d, rtol=1e-12, atol=1e-14)
    # the channel fill is the one used: the loop with a grey square per channel agrees
    ref = x.clone()
    ref[:, :, :4, :4] = grey
    with torch.no_grad():
        expected = model(ref).softmax(1)[range(3), t]
    torch.testing.assert_close(c[:, 0, 0, 0], expected, rtol=1e-12, atol=1e-14)


def test_occlusion_target_none_and_model_state():
    model, x = small_cnn(), images()
    with torch.no_grad():
        t = model(x).argmax(1).tolist()
    model.train()
    ours = occlusion(model, x, patch=3, stride=2)
    assert model.training and not ours.requires_grad
    assert all(not m._forward_hooks for m in model.modules())
    model.eval()
    torch.testing.assert_close(ours, occlusion(model, x, t, patch=3, stride=2), rtol=0, atol=0)


def test_occlusion_errors():
    model, x = small_cnn(), images()
    with pytest.raises(ConfigError, match=r"occlusion: patch must fit in the 11×9 image, got 12×"):
        occlusion(model, x, patch=12)
    with pytest.raises(ConfigError, match=r"stride must be at most the patch size \(3×3\)"):
        occlusion(model, x, patch=3, stride=4)
    with pytest.raises(ConfigError, match=r"patch must be a positive integer or a pair"):
        occlusion(model, x, patch=0)
    with pytest.raises(ConfigError, match=r"stride must be a positive integer or a pair"):
        occlusion_map(model, x, stride=(2, 2, 2))
    with pytest.raises(ConfigError, match=r"patch must be a positive integer or a pair"):
        occlusion(model, x, patch="4")
    with pytest.raises(InputError, match=r"fill must be .* broadcastable"):
        occlusion(model, x, patch=3, stride=2, fill=torch.zeros(2, 1, 1))
    with pytest.raises(ConfigError, match="internal_batch_size must be a positive integer"):
        occlusion(model, x, patch=3, stride=2, internal_batch_size=0)
    with pytest.raises(ConfigError, match="target class 9 is out of range"):
        occlusion_map(model, x, 9, patch=3, stride=2)
    with pytest.raises(InputError, match="N×C×H×W"):
        occlusion(model, x[0], patch=3, stride=2)
