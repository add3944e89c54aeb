"""Planners: the CEM refit against the elites' statistics, elites against NumPy, antipodal
candidates on a clean square."""

import math

import numpy as np
import torch

from striate.grasp.analytic import robustness
from striate.grasp.gqcnn import GQCNN
from striate.grasp.planners import (
    antipodal_candidates,
    cem_plan,
    elites,
    fit_gmm,
    random_candidates,
    sample_gmm,
)
from striate.grasp.scenes import TABLE_DEPTH, render

SQUARE = torch.tensor([[[20.0, 20.0], [40.0, 20.0], [40.0, 40.0], [20.0, 40.0]]])


def test_elites_are_the_top_fraction():
    g = torch.Generator().manual_seed(0)
    samples, scores = torch.randn(3, 40, 3, generator=g), torch.rand(3, 40, generator=g)
    top = elites(samples, scores, 0.25)
    for i in range(3):
        order = np.argsort(-scores[i].numpy())[:10]
        assert np.allclose(top[i].numpy(), samples[i, order].numpy())


def test_one_component_refit_is_the_elites_mean_and_variance():
    g = torch.Generator().manual_seed(1)
    points = torch.randn(4, 25, 3, generator=g) * torch.tensor([3.0, 1.0, 0.2]) + 5
    weights, means, var = fit_gmm(points, components=1, eps=0.0)
    assert torch.allclose(weights, torch.ones(4, 1))
    assert torch.allclose(means[:, 0], points.mean(1), atol=1e-5)
    assert torch.allclose(var[:, 0], points.var(1, unbiased=False), atol=1e-5)


def test_mixture_refit_keeps_the_elites_mean():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(2, 30, 3, generator=g) + torch.tensor([10.0, 10.0, 0.5])
    b = torch.randn(2, 20, 3, generator=g) + torch.tensor([30.0, 40.0, 2.5])
    points = torch.cat([a, b], 1)
    weights, means, var = fit_gmm(points, components=3)
    assert torch.allclose((weights[..., None] * means).sum(1), points.mean(1), atol=1e-4)
    assert torch.allclose(weights.sum(1), torch.ones(2))
    # the two clusters are found: some component sits near each centre
    for centre in (torch.tensor([10.0, 10.0, 0.5]), torch.tensor([30.0, 40.0, 2.5])):
        assert float((means - centre).norm(dim=-1).min(1).values.max()) < 1.0


def test_gmm_samples_have_the_component_statistics():
    g = torch.Generator().manual_seed(3)
    weights = torch.tensor([[1.0]])
    means, var = torch.tensor([[[2.0, -1.0, 0.3]]]), torch.tensor([[[4.0, 0.25, 0.01]]])
    s = sample_gmm(weights, means, var, 20_000, g)[0]
    assert torch.allclose(s.mean(0), means[0, 0], atol=0.05)
    assert torch.allclose(s.var(0), var[0, 0], rtol=0.05)


def test_antipodal_candidates_on_a_square_cross_opposite_faces():
    depth = render(SQUARE, torch.tensor([0.05]))
    cand, valid = antipodal_candidates(depth, 400, seed=0, friction=0.3)
    assert int(valid.sum()) > 20
    c = cand[valid]
    # axes along x or y (the faces' normals) within the cone, but for pixels near the corners
    # (their Sobel normals tilt); centres inside the square
    off = torch.minimum(c[:, 2] % (math.pi / 2), math.pi / 2 - c[:, 2] % (math.pi / 2))
    assert float((off < math.atan(0.3)).float().mean()) > 0.8
    assert bool(((c[:, :2] > 18) & (c[:, :2] < 42)).all())
    assert bool(((c[:, 3] > TABLE_DEPTH - 0.05) & (c[:, 3] < TABLE_DEPTH)).all())
    r = robustness(SQUARE.expand(len(c), -1, -1), torch.full((len(c),), 0.05), c, samples=16)
    rand = random_candidates(depth, 200, seed=0)[0]
    r_rand = robustness(SQUARE.expand(200, -1, -1), torch.full((200,), 0.05), rand, samples=16)
    assert float(r.mean()) > float(r_rand.mean()) + 0.3


def test_cem_plans_one_grasp_per_image():
    torch.manual_seed(0)
    depth = render(SQUARE.expand(2, -1, -1), torch.tensor([0.05, 0.03]))
    best, q = cem_plan(GQCNN(width=4).eval(), depth, samples=12, iterations=2, seed=0)
    assert best.shape == (2, 4) and q.shape == (2,)
    assert bool(((q >= 0) & (q <= 1)).all())
    assert bool(((best[:, 2] >= 0) & (best[:, 2] < math.pi)).all())
