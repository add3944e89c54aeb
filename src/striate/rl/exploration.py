"""ε-greedy exploration with a linearly decaying ε (Mnih et al. 2015: ε from 1 to 0.1 over the
first million frames; CleanRL's dqn.py `linear_schedule`, github.com/vwxyzjn/cleanrl).

    eps = linear_schedule(1.0, 0.05, duration=250_000, t=step)
    actions = epsilon_greedy(q_values, eps, generator)            # one action per row of Q
"""

from __future__ import annotations

import torch


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    """`start` at t = 0, moving linearly to `end` at t = `duration`, then `end`
    (duration 0: `end` from the start)."""
    if duration <= 0 or t >= duration:
        return float(end)
    return float(start + (end - start) * t / duration)


def random_actions(n: int, n_actions: int, epsilon: float,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """For n states: which explore (each with probability ε) and a uniformly random action for
    each. Both are always drawn, so the generator moves the same way whatever ε is."""
    explore = torch.rand(n, generator=generator) < epsilon
    actions = torch.randint(n_actions, (n,), generator=generator)
    return explore, actions


def epsilon_greedy(q_values: torch.Tensor, epsilon: float,
                   generator: torch.Generator) -> torch.Tensor:  # fmt: skip
    """argmax_a Q(s, a) for each row of `q_values` (N × actions), or with probability ε a
    uniformly random action: the greedy action has probability 1 − ε + ε/n, each other ε/n."""
    n, n_actions = q_values.shape
    explore, actions = random_actions(n, n_actions, epsilon, generator)
    greedy = q_values.argmax(-1).cpu()
    return torch.where(explore, actions, greedy).to(q_values.device)
