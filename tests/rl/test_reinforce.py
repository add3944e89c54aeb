"""REINFORCE: its gradient estimator is unbiased on a two-armed bandit (against the exact gradient
of the expected reward) with and without a baseline, the baseline lowers its variance, and the
agent learns CartPole from whole episodes with each baseline."""

from __future__ import annotations

import pytest
import torch

from striate.errors import ConfigError
from striate.rl.policies import log_prob, sample
from striate.rl.reinforce import Reinforce, policy_gradient_loss

torch.set_num_threads(1)


def single_sample_gradients(theta, means, baseline, m, seed):
    """m independent one-pull REINFORCE estimates of ∇θ E[R] (an m×2 tensor), all at once: each
    row of the logits is its own copy of θ, so the gradient of the batch loss holds them all."""
    g = torch.Generator().manual_seed(seed)
    logits = theta.expand(m, 2).clone().requires_grad_(True)
    actions = sample(logits.detach(), g)
    rewards = means[actions] + torch.randn(m, generator=g)
    loss = policy_gradient_loss(log_prob(logits, actions), rewards - baseline)
    (grad,) = torch.autograd.grad(loss, logits)
    return -m * grad  # the loss is minus the mean estimate


def test_gradient_estimator_is_unbiased_on_a_two_armed_bandit():
    theta = torch.tensor([0.3, -0.4], dtype=torch.float64)
    means = torch.tensor([1.0, 2.0], dtype=torch.float64)
    pi = theta.softmax(0)
    expected = (pi * means).sum()
    exact = pi * (means - expected)  # ∂/∂θ_j Σ_a π_a μ_a = π_j (μ_j − E[R])
    m = 200_000
    variances = {}
    for name, baseline in (("none", 0.0), ("constant", 5.0), ("expected reward", expected)):
        est = single_sample_gradients(theta, means, baseline, m, seed=1)
        mean, se = est.mean(0), est.std(0) / m**0.5
        assert torch.all((mean - exact).abs() < 4 * se), (name, mean, exact, se)
        variances[name] = est.var(0).sum().item()
    # the expected reward as baseline lowers the variance; a poor constant one raises it
    assert variances["expected reward"] < variances["none"] < variances["constant"]


# (normalising the advantages would make "mean" and "none" the same: both lose a constant)
@pytest.mark.parametrize("baseline, normalize", [("value", True), ("mean", False), ("none", False)])
def test_learns_cartpole_from_whole_episodes(baseline, normalize):
    agent = Reinforce("CartPole-v1", seed=0, baseline=baseline, learning_rate=1e-2,
                      normalize_advantage=normalize)  # fmt: skip
    first = agent.train(1, progress=False)  # one iteration: one episode per environment
    assert first["episodes"] == 8 and first["env_steps"] == sum(h["length"] for h in agent.history)
    stats = agent.train(6_000, progress=False)
    early = sum(h["return"] for h in agent.history[:8]) / 8
    assert stats["mean_return_last_10"] > 2 * early


def test_bad_settings_one_line():
    with pytest.raises(ConfigError, match="baseline must be one of .*did you mean 'value'"):
        Reinforce("CartPole-v1", baseline="valeu")
    with pytest.raises(ConfigError, match="gamma"):
        Reinforce("CartPole-v1", gamma=1.5)
