"""rl.returns: reward-to-go and GAE(λ) against plain per-step Python loops, the λ = 1 and λ = 0
identities, and truncation (bootstrapped) against termination (not)."""

from __future__ import annotations

import torch

from striate.rl.returns import discounted_returns, gae


def rollout(seed=0, T=23, N=5):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g)
    values = torch.randn(T, N, generator=g)
    next_values = torch.randn(T, N, generator=g)
    ended = torch.rand(T, N, generator=g) < 0.2
    terminated = ended & (torch.rand(T, N, generator=g) < 0.5)
    return rewards, values, next_values, terminated, ended


def reference_returns(rewards, gamma, ended, terminated, next_values):
    """Walk each environment's steps backwards, one number at a time."""
    T, N = rewards.shape
    out = torch.zeros(T, N)
    for n in range(N):
        following = 0.0 if terminated[-1, n] else float(next_values[-1, n])
        for t in reversed(range(T)):
            if ended[t, n]:
                following = 0.0 if terminated[t, n] else float(next_values[t, n])
            following = float(rewards[t, n]) + gamma * following
            out[t, n] = following
    return out


def reference_gae(rewards, values, next_values, terminated, ended, gamma, lam):
    T, N = rewards.shape
    out = torch.zeros(T, N)
    for n in range(N):
        a = 0.0
        for t in reversed(range(T)):
            nv = 0.0 if terminated[t, n] else float(next_values[t, n])
            delta = float(rewards[t, n]) + gamma * nv - float(values[t, n])
            a = delta + (0.0 if ended[t, n] else gamma * lam * a)
            out[t, n] = a
    return out


def test_reward_to_go_against_a_loop():
    r, _, nv, term, ended = rollout()
    got = discounted_returns(r, 0.9, ended, terminated=term, next_values=nv)
    torch.testing.assert_close(got, reference_returns(r, 0.9, ended, term, nv))
    # Monte Carlo (no bootstrap): every episode's return restarts at its end
    mc = discounted_returns(r, 0.9, ended)
    torch.testing.assert_close(mc, reference_returns(r, 0.9, ended, torch.ones_like(ended), nv))


def test_reward_to_go_of_one_episode_by_hand():
    r = torch.tensor([1.0, 2.0, 3.0])
    done = torch.tensor([False, False, True])
    torch.testing.assert_close(
        discounted_returns(r, 0.5, done), torch.tensor([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0])
    )


def test_gae_against_a_loop_and_its_limits():
    r, v, nv, term, ended = rollout(1)
    for lam in (0.0, 0.5, 0.95, 1.0):
        torch.testing.assert_close(
            gae(r, v, nv, term, ended, 0.99, lam),
            reference_gae(r, v, nv, term, ended, 0.99, lam),
        )
    # λ = 1: the discounted (bootstrapped) return minus the value, when V(s_{t+1}) is the value
    # of the next step's state within an episode (as in a real rollout)
    nv = torch.where(ended[:-1], nv[:-1], v[1:])
    nv = torch.cat([nv, torch.randn(1, v.shape[1])])
    torch.testing.assert_close(
        gae(r, v, nv, term, ended, 0.99, 1.0),
        discounted_returns(r, 0.99, ended, terminated=term, next_values=nv) - v,
    )
    # λ = 0: the TD error
    td = r + 0.99 * nv * (~term) - v
    torch.testing.assert_close(gae(r, v, nv, term, ended, 0.99, 0.0), td)


def test_truncation_bootstraps_termination_does_not():
    r = torch.ones(3)
    v = torch.zeros(3)
    nv = torch.tensor([0.0, 0.0, 10.0])
    ended = torch.tensor([False, False, True])
    never = torch.zeros(3, dtype=torch.bool)
    truncated = discounted_returns(r, 0.5, ended, terminated=never, next_values=nv)
    terminated = discounted_returns(r, 0.5, ended, terminated=ended, next_values=nv)
    torch.testing.assert_close(truncated, torch.tensor([1.75 + 1.25, 1.5 + 2.5, 1 + 5.0]))
    torch.testing.assert_close(terminated, torch.tensor([1.75, 1.5, 1.0]))
    a_trunc = gae(r, v, nv, torch.zeros(3, dtype=torch.bool), ended, 0.5, 1.0)
    a_term = gae(r, v, nv, ended, ended, 0.5, 1.0)
    torch.testing.assert_close(a_trunc, truncated)
    torch.testing.assert_close(a_term, terminated)
    # an unfinished episode at the rollout's end is bootstrapped with the value it is in
    running = torch.zeros(3, dtype=torch.bool)
    open_end = discounted_returns(r, 0.5, running, terminated=running, next_values=nv)
    torch.testing.assert_close(open_end, truncated)
