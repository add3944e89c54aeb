"""Monte-Carlo robustness against closed-form probabilities on a square."""

import math

import torch
from scipy.stats import norm

from striate.grasp.analytic import Uncertainty, robustness
from striate.grasp.scenes import TABLE_DEPTH

SQUARE = torch.tensor([[[20.0, 20.0], [40.0, 20.0], [40.0, 40.0], [20.0, 40.0]]])
HEIGHT = torch.tensor([0.05])
N = 20_000


def test_angle_noise_only():
    # success iff |angle| < atan(mu) (the jaws fit and are free for such angles), so with
    # angle ~ N(0, s²): P = 2 Φ(atan(mu)/s) − 1
    s, mu = 0.4, 0.5
    u = Uncertainty(centre=0.0, angle=s, depth=0.0, mu_mean=mu, mu_std=0.0)
    grasp = torch.tensor([[30.0, 30.0, 0.0, TABLE_DEPTH - 0.025]])
    r = float(robustness(SQUARE, HEIGHT, grasp, samples=N, seed=1, uncertainty=u)[0])
    expected = 2 * norm.cdf(math.atan(mu) / s) - 1
    assert abs(r - expected) < 4 * math.sqrt(expected * (1 - expected) / N)


def test_friction_noise_only():
    # a fixed 0.3 rad tilt holds iff mu > tan(0.3): P = Φ((m − tan 0.3) / s)
    u = Uncertainty(centre=0.0, angle=0.0, depth=0.0, mu_mean=0.5, mu_std=0.1)
    grasp = torch.tensor([[30.0, 30.0, 0.3, TABLE_DEPTH - 0.025]])
    r = float(robustness(SQUARE, HEIGHT, grasp, samples=N, seed=2, uncertainty=u)[0])
    expected = norm.cdf((0.5 - math.tan(0.3)) / 0.1)
    assert abs(r - expected) < 4 * math.sqrt(expected * (1 - expected) / N)


def test_depth_noise_only():
    # z ~ N(z0, s²) must lie in [top + 0.005, table − 0.003]
    z0, s = TABLE_DEPTH - 0.05 + 0.008, 0.004
    u = Uncertainty(centre=0.0, angle=0.0, depth=s, mu_mean=0.5, mu_std=0.0)
    grasp = torch.tensor([[30.0, 30.0, 0.0, z0]])
    r = float(robustness(SQUARE, HEIGHT, grasp, samples=N, seed=3, uncertainty=u)[0])
    low, high = TABLE_DEPTH - 0.05 + 0.005, TABLE_DEPTH - 0.003
    expected = norm.cdf((high - z0) / s) - norm.cdf((low - z0) / s)
    assert abs(r - expected) < 4 * math.sqrt(expected * (1 - expected) / N)


def test_many_candidates_at_once_match_one_at_a_time():
    grasps = torch.tensor([[30.0, 30.0, a, TABLE_DEPTH - 0.025] for a in (0.0, 0.3, 0.6, 1.0)])
    u = Uncertainty(centre=0.0, angle=0.0, depth=0.0, mu_mean=0.5, mu_std=0.0)
    batch = robustness(SQUARE.expand(4, -1, -1), HEIGHT.expand(4), grasps, samples=8,
                       uncertainty=u)  # fmt: skip
    assert batch.tolist() == [1.0, 1.0, 0.0, 0.0]  # deterministic: atan(0.5) = 0.46 rad
