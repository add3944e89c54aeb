"""Returns and advantages over a rollout of T steps in N environments (tensors T×N, or T for one).

    g = discounted_returns(rewards, 0.99, ended)         # Monte-Carlo reward-to-go
    g = discounted_returns(rewards, 0.99, ended, terminated=term, next_values=v_next)
    adv = gae(rewards, values, v_next, term, ended, gamma=0.99, lam=0.95)

`ended[t]` says the episode ended after step t (terminated or truncated); `terminated[t]` that it
ended in a terminal state, whose value is 0. `next_values[t]` is V(s_{t+1}) for the state the step
really led to: at a truncation the last observation of the cut episode (gymnasium's `final_obs`),
not the reset observation of the next one. So a truncated episode is bootstrapped with the value
of where it was cut, a terminated one is not, and after the rollout's last step the unfinished
episodes are bootstrapped with the value of the state they are in. Without `next_values` nothing
is bootstrapped (REINFORCE's Monte-Carlo returns). The loop runs over time only; every step works
on all N environments at once.
"""

from __future__ import annotations

import torch


def _as_2d(*tensors: torch.Tensor | None) -> tuple[list[torch.Tensor | None], bool]:
    one = tensors[0].dim() == 1
    return [t if t is None or not one else t[:, None] for t in tensors], one


def _bootstrap(next_values, terminated, like):
    if next_values is None:
        return torch.zeros_like(like)
    alive = 1.0 if terminated is None else 1.0 - terminated.to(like.dtype)
    return next_values.to(like.dtype) * alive


def discounted_returns(
    rewards: torch.Tensor,
    gamma: float,
    ended: torch.Tensor,
    *,
    terminated: torch.Tensor | None = None,
    next_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """The discounted reward-to-go G_t = r_t + γ G_{t+1}, restarting after each episode's end,
    where G after an episode's end (or after the rollout) is the bootstrap value (module
    docstring)."""
    (rewards, ended, terminated, next_values), one = _as_2d(rewards, ended, terminated, next_values)
    boot = _bootstrap(next_values, terminated, rewards)
    ended = ended.to(torch.bool)
    out = torch.empty_like(rewards)
    following = boot[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = rewards[t] + gamma * torch.where(ended[t], boot[t], following)
        out[t] = following
    return out[:, 0] if one else out


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    ended: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates (Schulman et al. 2016, "High-dimensional continuous control
    using generalized advantage estimation", eq. 16): A_t = Σ_l (γλ)^l δ_{t+l} with the TD error
    δ_t = r_t + γ V(s_{t+1}) − V(s_t), the sum cut at each episode's end. λ = 1 gives the
    discounted return minus V(s_t); λ = 0 the TD error. The value targets are A + values."""
    (rewards, values, next_values, terminated, ended), one = _as_2d(
        rewards, values, next_values, terminated, ended
    )
    delta = rewards + gamma * _bootstrap(next_values, terminated, rewards) - values
    carry = 1.0 - ended.to(rewards.dtype)
    out = torch.empty_like(rewards)
    following = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        following = delta[t] + gamma * lam * carry[t] * following
        out[t] = following
    return out[:, 0] if one else out
