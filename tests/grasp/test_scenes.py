"""Scenes: rendering against matplotlib's point-in-polygon, convexity, seeds, noise statistics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.path import Path as MplPath
from scipy import stats

from striate.grasp.scenes import TABLE_DEPTH, observe, pixel_centres, polygon_area, random_scenes


def test_render_matches_matplotlib_point_in_polygon():
    scenes = random_scenes(12, seed=5)
    points = pixel_centres(64).numpy()
    for i in range(12):
        verts = scenes.vertices[i].numpy()
        expected = MplPath(verts).contains_points(points).reshape(64, 64)
        got = (scenes.depth[i, 0] < TABLE_DEPTH).numpy()
        assert (got != expected).sum() <= 2  # pixel centres exactly on an edge may differ
        depth_inside = scenes.depth[i, 0][torch.from_numpy(got)]
        assert torch.allclose(depth_inside, TABLE_DEPTH - scenes.heights[i])


def test_polygons_are_counter_clockwise_and_convex_ones_convex():
    scenes = random_scenes(200, seed=1)
    assert bool((polygon_area(scenes.vertices) > 0).all())
    v = scenes.vertices[scenes.convex]
    e = v.roll(-1, 1) - v
    e_next = e.roll(-1, 1)
    turn = e[..., 0] * e_next[..., 1] - e[..., 1] * e_next[..., 0]
    assert bool((turn > -1e-3).all())  # never turns right (zero-length edges give 0)
    assert 0.4 < float(scenes.convex.float().mean()) < 0.8
    non_convex = scenes.vertices[~scenes.convex]
    e = non_convex.roll(-1, 1) - non_convex
    turn = e[..., 0] * e.roll(-1, 1)[..., 1] - e[..., 1] * e.roll(-1, 1)[..., 0]
    assert float((turn < -1e-3).any(1).float().mean()) > 0.25  # many stars are not convex


def test_scenes_follow_their_seed():
    a, b, c = random_scenes(5, seed=0), random_scenes(5, seed=0), random_scenes(5, seed=1)
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.depth, b.depth)
    assert not torch.equal(a.vertices, c.vertices)


def test_gamma_noise_statistics():
    k = 50.0
    depth = torch.full((20_000, 1, 4, 4), 0.7)
    out = observe(depth, seed=0, gamma_shape=k, gp_sigma=0.0)
    factor = (out / depth)[:, 0, 0, 0].double().numpy()
    assert torch.allclose(out / depth, torch.from_numpy(factor).float()[:, None, None, None]
                          .expand_as(out), atol=1e-6)  # one factor per image  # fmt: skip
    # Gamma(k, scale 1/k): mean 1, variance 1/k; and the whole distribution (KS test)
    assert abs(factor.mean() - 1) < 4 * (1 / k) ** 0.5 / len(factor) ** 0.5
    assert abs(factor.var() - 1 / k) < 0.05 / k
    assert stats.kstest(factor, stats.gamma(k, scale=1 / k).cdf).pvalue > 1e-3


def test_gaussian_process_noise_is_smooth_with_the_interpolated_variance():
    sigma, n = 0.005, 4000
    out = observe(torch.zeros(n, 1, 16, 16), seed=1, gamma_shape=float("inf"), gp_sigma=sigma)
    field = out[:, 0].double()
    assert abs(float(field.mean())) < 1e-4
    # the field is a fixed linear map (bicubic upsampling) of i.i.d. N(0, σ²) grid values: the
    # variance at a pixel is σ² times the sum of its squared interpolation weights
    basis = torch.eye(16).reshape(16, 1, 4, 4)
    weights = F.interpolate(basis, size=(16, 16), mode="bicubic", align_corners=False)
    expected_var = sigma**2 * (weights[:, 0] ** 2).sum(0).double()
    ratio = field.var(0) / expected_var
    assert float((ratio - 1).abs().max()) < 0.15
    # neighbours are strongly correlated, pixels 8 apart barely
    near = np.corrcoef(field[:, 8, 8].numpy(), field[:, 8, 9].numpy())[0, 1]
    far = np.corrcoef(field[:, 8, 0].numpy(), field[:, 8, 8].numpy())[0, 1]
    assert near > 0.9 and abs(far) < 0.2


def test_bad_arguments():
    from striate.errors import ConfigError

    with pytest.raises(ConfigError, match="max_radius"):
        random_scenes(3, min_radius=10, max_radius=5)
