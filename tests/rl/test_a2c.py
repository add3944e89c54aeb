"""A2C: the rollout under gymnasium's same-step autoreset (the state a step led to, not the next
episode's first observation), a truncation bootstrapped and a termination not, the update against
its formula, and (slow) CartPole-v1 solved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate.errors import ConfigError
from striate.rl import policies
from striate.rl.a2c import A2C, advantages_and_returns
from striate.rl.envs import make_env
from striate.rl.policies import entropy, log_prob
from striate.rl.returns import discounted_returns
from striate.rl.run import evaluate

torch.set_num_threads(1)


def test_rollout_keeps_the_final_state_and_every_reward():
    agent = A2C("CartPole-v1", seed=0, num_envs=3)
    r = agent.rollout(80)
    ended, term = r["ended"].numpy(), r["terminated"].numpy()
    assert ended.sum() >= 3 and np.array_equal(ended, term)  # random play falls, never cut
    same = torch.isclose(r["next_obs"][:-1], r["obs"][1:]).all(-1).numpy()
    assert np.array_equal(same, ~ended[:-1])  # after an end, the next obs is a new episode's
    fallen = r["next_obs"][torch.as_tensor(ended)]  # … and next_obs is where the pole fell
    assert ((fallen[:, 0].abs() > 2.4) | (fallen[:, 2].abs() > 0.2095)).all()
    assert torch.all(r["rewards"] == 1)  # no reward-0 reset step (next-step autoreset's)
    lengths = [h["length"] for h in agent.history]
    assert len(lengths) == ended.sum() and sum(lengths) <= 80 * 3
    assert agent.history[0]["env_steps"] == 3 * (int(np.argmax(ended.any(1))) + 1)


def test_truncation_is_bootstrapped(monkeypatch):
    monkeypatch.setattr(policies, "make_env", lambda env_id: make_env(env_id, max_episode_steps=4))
    agent = A2C("CartPole-v1", seed=0, num_envs=2, num_steps=8)
    r = agent.rollout(8)
    assert r["ended"][3].all() and not r["terminated"][3].any()  # cut at 4 steps
    v_cut = agent.net.value(r["next_obs"][3])
    v_reset = agent.net.value(r["obs"][4])
    assert not torch.allclose(v_cut, v_reset)
    _, adv, returns = advantages_and_returns(agent, r)
    with torch.no_grad():  # λ = 1: the 4-step return bootstrapped with V of the cut state
        expected = discounted_returns(r["rewards"], 0.99, r["ended"], terminated=r["terminated"],
                                      next_values=agent.net.value(r["next_obs"]))  # fmt: skip
    torch.testing.assert_close(returns, expected)
    torch.testing.assert_close(returns[3], 1 + 0.99 * v_cut.detach())


def test_one_update_against_the_formula():
    agent = A2C("CartPole-v1", seed=0, ent_coef=0.01)
    r = agent.rollout(5)
    # the loss, written out: −mean(log π A) − β mean(H) + c_v mean((R − V)²)
    net = agent.net
    values = net.value(r["obs"])
    with torch.no_grad():
        boot = discounted_returns(r["rewards"], 0.99, r["ended"], terminated=r["terminated"],
                                  next_values=net.value(r["next_obs"]))  # fmt: skip
    logits = net.actor(r["obs"])
    loss = (-(log_prob(logits, r["actions"]) * (boot - values.detach())).mean()
            - 0.01 * entropy(logits).mean() + 0.5 * F.mse_loss(values, boot))  # fmt: skip
    grads = torch.autograd.grad(loss, list(net.parameters()))
    reference = torch.optim.RMSprop([p.detach().clone().requires_grad_() for p in
                                     net.parameters()], lr=7e-4, alpha=0.99, eps=1e-5)  # fmt: skip
    params = reference.param_groups[0]["params"]
    total = torch.sqrt(sum((g**2).sum() for g in grads))
    for p, g in zip(params, grads, strict=True):
        p.grad = g * min(1.0, 0.5 / (float(total) + 1e-6))
    reference.step()
    agent._update(r)
    for mine, ref in zip(net.parameters(), params, strict=True):
        torch.testing.assert_close(mine, ref)


def test_bad_settings_one_line():
    with pytest.raises(ConfigError, match="a2c: num_steps"):
        A2C("CartPole-v1", num_steps=0)
    with pytest.raises(ConfigError, match="hidden"):
        A2C("CartPole-v1", hidden=64)


@pytest.mark.slow
def test_solves_cartpole():
    agent, score = A2C("CartPole-v1", seed=0), {"mean": 0.0}
    while agent.env_steps < 300_000 and score["mean"] < 475:
        agent.train(10_000, progress=False)
        score = evaluate(agent, "CartPole-v1", episodes=10, seed=1_000)
    assert score["mean"] >= 475, (agent.env_steps, score)
