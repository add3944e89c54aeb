"""ε schedule against CleanRL's formula; ε-greedy action frequencies against 1 − ε + ε/n and ε/n
(within 4 binomial standard deviations)."""

from __future__ import annotations

import math

import pytest
import torch

from striate.rl.exploration import epsilon_greedy, linear_schedule


def cleanrl_linear_schedule(start_e, end_e, duration, t):
    """CleanRL dqn.py's linear_schedule, verbatim (for a decreasing ε)."""
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


@pytest.mark.parametrize("t", [0, 1, 1000, 12_345, 249_999, 250_000, 250_001, 499_999])
def test_linear_schedule_matches_cleanrl(t):
    assert linear_schedule(1.0, 0.05, 250_000, t) == pytest.approx(
        cleanrl_linear_schedule(1.0, 0.05, 250_000, t), abs=1e-12
    )


def test_linear_schedule_values():
    assert linear_schedule(1.0, 0.1, 100, 0) == 1.0
    assert linear_schedule(1.0, 0.1, 100, 50) == pytest.approx(0.55)
    assert linear_schedule(1.0, 0.1, 100, 100) == pytest.approx(0.1)
    assert linear_schedule(1.0, 0.1, 0, 0) == 0.1  # no exploration phase
    assert linear_schedule(0.0, 0.5, 10, 5) == pytest.approx(0.25)  # rising works too


@pytest.mark.parametrize("epsilon", [0.0, 0.3, 1.0])
def test_epsilon_greedy_frequencies(epsilon):
    n, actions = 200_000, 4
    q = torch.tensor([0.1, 0.7, -0.2, 0.3]).expand(n, actions)  # greedy action 1
    chosen = epsilon_greedy(q, epsilon, torch.Generator().manual_seed(0))
    freq = torch.bincount(chosen, minlength=actions).double() / n
    p = torch.full((actions,), epsilon / actions, dtype=torch.float64)
    p[1] += 1 - epsilon
    tolerance = 4 * torch.sqrt(p * (1 - p) / n) + 1e-12
    assert torch.all((freq - p).abs() <= tolerance), (freq, p)


def test_epsilon_greedy_is_seeded_and_row_wise():
    q = torch.randn(1000, 3, generator=torch.Generator().manual_seed(5))
    a = epsilon_greedy(q, 0.2, torch.Generator().manual_seed(7))
    b = epsilon_greedy(q, 0.2, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    agree = (a == q.argmax(1)).double().mean().item()
    expected = 0.8 + 0.2 / 3
    assert abs(agree - expected) < 4 * math.sqrt(expected * (1 - expected) / 1000)
