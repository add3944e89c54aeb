"""The bilinear sampler and the affine grid against torch's own ops (values and gradients), a
pure-Python loop written from the paper's equation, and finite differences in float64; and the
reference post's sampler, whose convention is wrong, shown to differ."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.errors import ConfigError
from striate.spatial.grid import affine_grid, base_grid
from striate.spatial.sampler import grid_sample


def loop_sample(u: np.ndarray, grid: np.ndarray, align_corners: bool) -> np.ndarray:
    """Jaderberg et al. 2015, eq. 5, by loops: V_i = Σ_nm U_nm max(0, 1-|x_i-m|) max(0, 1-|y_i-n|)
    over every input pixel (zero outside the image)."""
    n, c, h, w = u.shape
    _, ho, wo, _ = grid.shape
    out = np.zeros((n, c, ho, wo))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                gx, gy = grid[b, i, j]
                if align_corners:
                    x, y = (gx + 1) * (w - 1) / 2, (gy + 1) * (h - 1) / 2
                else:
                    x, y = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2
                for m in range(w):
                    for k in range(h):
                        weight = max(0.0, 1 - abs(x - m)) * max(0.0, 1 - abs(y - k))
                        out[b, :, i, j] += weight * u[b, :, k, m]
    return out


def post_sampler(img: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """The STN post's code (../shared/reference/000, Part I), N×H×W×C, as published: grid by
    linspace(-1, 1), pixels by (x + 1)·W/2, corner indices clipped before the weights."""
    n, h, w, _ = img.shape
    x_t, y_t = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))
    grid = np.vstack([x_t.flatten(), y_t.flatten(), np.ones(h * w)])
    grids = np.matmul(theta, np.resize(grid, (n, 3, h * w))).reshape(n, 2, h, w)
    x = (grids[:, 0] + 1.0) * w * 0.5
    y = (grids[:, 1] + 1.0) * h * 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = x0 + 1, y0 + 1
    x0, x1 = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
    y0, y1 = np.clip(y0, 0, h - 1), np.clip(y1, 0, h - 1)
    b = np.arange(n)[:, None, None]
    ia, ib, ic, id_ = img[b, y0, x0], img[b, y1, x0], img[b, y0, x1], img[b, y1, x1]
    wa, wb = (x1 - x) * (y1 - y), (x1 - x) * (y - y0)
    wc, wd = (x - x0) * (y1 - y), (x - x0) * (y - y0)
    return wa[..., None] * ia + wb[..., None] * ib + wc[..., None] * ic + wd[..., None] * id_


def random_grid(n, ho, wo, spread=1.6, seed=0):
    """Points in [-spread, spread]²: many outside the image, some exactly on pixel centres."""
    g = torch.Generator().manual_seed(seed)
    grid = (torch.rand(n, ho, wo, 2, generator=g, dtype=torch.float64) * 2 - 1) * spread
    grid[:, 0, 0] = torch.tensor([1.0, -1.0], dtype=torch.float64)  # a corner exactly
    grid[:, -1, -1] = torch.tensor([5.0, -7.0], dtype=torch.float64)  # far outside
    return grid


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("padding_mode", ["zeros", "border"])
@pytest.mark.parametrize("size", [(5, 8), (7, 6), (1, 4)])
def test_values_and_gradients_equal_torch(align_corners, padding_mode, size):
    h, w = size
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    grid = random_grid(2, 4, 5).requires_grad_()
    ours = grid_sample(u, grid, align_corners, padding_mode)
    theirs = F.grid_sample(u, grid, "bilinear", padding_mode, align_corners)
    assert ours.shape == (2, 3, 4, 5)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    weights = torch.randn(ours.shape, generator=g, dtype=torch.float64)
    ours_grad = torch.autograd.grad((ours * weights).sum(), [u, grid])
    theirs_grad = torch.autograd.grad((theirs * weights).sum(), [u, grid])
    for a, b in zip(ours_grad, theirs_grad, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
def test_equals_the_papers_equation_by_loops(align_corners):
    g = torch.Generator().manual_seed(2)
    u = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64)
    grid = random_grid(1, 3, 4, seed=3)
    expected = loop_sample(u.numpy(), grid.numpy(), align_corners)
    np.testing.assert_allclose(grid_sample(u, grid, align_corners).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
def test_gradients_match_finite_differences(align_corners):
    g = torch.Generator().manual_seed(4)
    u = torch.randn(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # no sample point on a pixel centre, where bilinear interpolation has a kink
    theta = torch.tensor([[[0.93, 0.31, 0.113], [-0.21, 1.07, -0.047]]], dtype=torch.float64)
    theta.requires_grad_()

    def f(u, theta):
        return grid_sample(u, affine_grid(theta, (1, 2, 3, 4), align_corners), align_corners)

    assert torch.autograd.gradcheck(f, (u, theta), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.filterwarnings("ignore:Since version 1.3.0")  # torch on unit-size grids
@pytest.mark.parametrize("size", [(3, 4, 5), (2, 1, 6)])
def test_affine_grid_equals_torch(align_corners, size):
    g = torch.Generator().manual_seed(5)
    theta = torch.randn(2, 2, 3, generator=g, dtype=torch.float64)
    expected = F.affine_grid(theta, (2, *size), align_corners=align_corners)
    torch.testing.assert_close(affine_grid(theta, (2, *size), align_corners), expected)
    torch.testing.assert_close(affine_grid(theta.view(2, 6), size[1:], align_corners), expected)


@pytest.mark.parametrize("align_corners", [True, False])
def test_the_identity_returns_the_input_in_both_conventions(align_corners):
    u = torch.rand(2, 1, 6, 7, dtype=torch.float64)
    theta = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64).expand(2, 2, 3)
    out = grid_sample(u, affine_grid(theta, u.shape, align_corners), align_corners)
    torch.testing.assert_close(out, u)


def test_mixing_the_conventions_shifts_the_image():
    """Grid of one convention, sampler of the other: not the identity (the usual bug)."""
    u = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    grid = base_grid(6, 6, align_corners=True, dtype=torch.float64)[None, ..., :2]
    assert (grid_sample(u, grid, align_corners=False) - u).abs().max() > 0.05


def test_the_posts_sampler_is_not_the_identity_and_breaks_at_the_edges():
    """The post's identity transform stretches the image by W/(W-1) and, with indices clipped
    before the weights, leaves weights that do not sum to one along the right and bottom edges;
    the sampler here with its matching convention (align_corners=True) returns the image."""
    h = w = 6
    img = np.random.default_rng(0).random((1, h, w, 1))
    theta = np.array([[[1.0, 0, 0], [0, 1.0, 0]]])
    post = post_sampler(img, theta)[0, ..., 0]
    assert np.abs(post - img[0, ..., 0]).max() > 0.1
    # last column: x = W exactly, x0 = x1 = W-1 after clipping, weights (x1-x) = -1, (x-x0) = 1
    np.testing.assert_allclose(post[:, -1], 0.0, atol=1e-12)
    # its first column is right: x = 0 there in both
    np.testing.assert_allclose(post[0, 0], img[0, 0, 0, 0])
    ours = grid_sample(
        torch.from_numpy(img).permute(0, 3, 1, 2),
        affine_grid(torch.from_numpy(theta), (1, 1, h, w), align_corners=True),
        align_corners=True,
    )
    np.testing.assert_allclose(ours[0, 0].numpy(), img[0, ..., 0], atol=1e-12)


def test_zero_padding_fades_to_zero_half_a_pixel_outside():
    """align_corners=False: -1 is the left edge of pixel 0, whose centre is half a pixel in;
    at -1 the sample is half the edge pixel, a pixel left of that centre it is 0; border mode
    reads the edge pixel everywhere outside."""
    u = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    xs = torch.tensor([-1.0, -1.125, -1.25, -1.5], dtype=torch.float64)  # pixel -0.5 ... -1.5
    grid = torch.stack([xs, torch.zeros_like(xs)], -1).view(1, 1, 4, 2)
    out = grid_sample(u, grid, align_corners=False)[0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([0.5, 0.25, 0.0, 0.0], dtype=torch.float64))
    border = grid_sample(u, grid, align_corners=False, padding_mode="border")[0, 0, 0]
    torch.testing.assert_close(border, torch.ones(4, dtype=torch.float64))


def test_non_finite_points_read_zero():
    u = torch.ones(1, 1, 3, 3)
    grid = torch.tensor([[[[math.inf, 0.0], [0.0, -math.inf], [math.nan, 0.0]]]])
    assert grid_sample(u, grid).abs().sum() == 0


def test_bad_arguments_are_one_line_errors():
    u = torch.rand(1, 1, 3, 3)
    with pytest.raises(ConfigError, match="padding_mode must be one of zeros, border"):
        grid_sample(u, torch.zeros(1, 2, 2, 2), padding_mode="reflect")
    with pytest.raises(ConfigError, match="grid N×Ho×Wo×2"):
        grid_sample(u, torch.zeros(2, 2, 2, 2))
    with pytest.raises(ConfigError, match="N×2×3"):
        affine_grid(torch.zeros(1, 3, 3), (3, 3))
    with pytest.raises(ConfigError, match="size must be"):
        affine_grid(torch.zeros(1, 2, 3), (0, 3))
