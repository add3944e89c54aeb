"""REINFORCE (Williams 1992, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning"): the policy gradient estimated from whole episodes,

    ∇θ J ≈ mean_t ∇θ log π(a_t|s_t) (G_t − b(s_t)),   G_t = Σ_{k≥t} γ^{k−t} r_k,

with the reward-to-go G_t (an action only answers for the rewards after it) and a baseline b:
a learned value V(s_t) regressed on G_t, the batch's mean return, or none. A baseline that does
not depend on the action leaves the estimate unbiased and lowers its variance. Each update plays
one episode in each of `num_envs` environments with the current policy (the batch); an episode
cut by a time limit is bootstrapped with V of its last state when there is a value baseline
(a time limit is not a terminal state; Pardo et al. 2018).

    agent = Reinforce("CartPole-v1", seed=0, baseline="value")
    agent.train(50_000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from striate.checks import boolean, one_of, options_of, positive_int, positive_number, probability
from striate.rl.envs import make_env
from striate.rl.policies import OnPolicyAgent, as_tensor, hidden_sizes, log_prob, sample
from striate.rl.returns import discounted_returns

BASELINES = ("value", "mean", "none")


def policy_gradient_loss(log_probs: torch.Tensor, advantages: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """−mean(log π(a|s) · A) over the (masked) steps: its gradient is minus the REINFORCE
    estimate of ∇J (the advantages are constants)."""
    terms = log_probs * advantages.detach()
    if mask is None:
        return -terms.mean()
    return -(terms * mask).sum() / mask.sum()


@dataclass
class ReinforceConfig:
    """REINFORCE's settings (CleanRL has no REINFORCE; the batch of whole episodes and the value
    baseline follow OpenAI Spinning Up's vpg): 8 episodes per update, Adam at 3e-3 for the
    policy and the value network, γ 0.99, a learned value baseline, advantages normalised."""

    num_envs: int = 8
    learning_rate: float = 3e-3
    gamma: float = 0.99
    baseline: str = "value"
    normalize_advantage: bool = True
    vf_coef: float = 0.5
    hidden: list[int] = field(default_factory=lambda: [64, 64])

    def __post_init__(self) -> None:
        positive_int("reinforce", "num_envs", self.num_envs)
        positive_number("reinforce", "learning_rate", self.learning_rate)
        probability("reinforce", "gamma", self.gamma)
        self.baseline = one_of("reinforce", "baseline", self.baseline, BASELINES)
        boolean("reinforce", "normalize_advantage", self.normalize_advantage)
        positive_number("reinforce", "vf_coef", self.vf_coef)
        self.hidden = list(hidden_sizes("reinforce", self.hidden))


class EpisodeEnvs:
    """The environments of a batch of episodes, each stepped only while its episode runs (a
    vector env would step them all); rl.env_state captures them through `envs`."""

    def __init__(self, envs: list[Any]):
        self.envs = envs


class Reinforce(OnPolicyAgent):
    """REINFORCE with reward-to-go and a baseline (module docstring)."""

    name = "reinforce"

    def __init__(self, env_id: str, *, seed: int = 0, device="cpu", **hyper):
        super().__init__(
            env_id, seed=seed, device=device, config=options_of("reinforce", ReinforceConfig, hyper)
        )

    def _make_envs(self) -> None:
        n = self.config.num_envs
        self.envs = EpisodeEnvs([make_env(self.env_id) for _ in range(n)])
        self.obs = torch.zeros((n, self.obs_size), device=self.device)
        self.episode_return, self.episode_length = np.zeros(n), np.zeros(n, dtype=np.int64)

    def _build(self) -> None:
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate,
                                          fused=True)  # fmt: skip

    def episodes(self) -> dict[str, torch.Tensor]:
        """One episode per environment: tensors T×N(×…) padded after each episode's end, with
        `mask` marking the real steps and next_obs the state each step led to."""
        envs, dev = self.envs.envs, self.device
        first = self.iterations == 0  # the first episodes are seeded: env i with seed + i
        current = np.stack([e.reset(seed=self.seed + i if first else None)[0]
                            for i, e in enumerate(envs)]).astype(np.float32)  # fmt: skip
        active = np.ones(len(envs), dtype=bool)
        totals, lengths = np.zeros(len(envs)), np.zeros(len(envs), dtype=np.int64)
        steps: dict[str, list[np.ndarray]] = {k: [] for k in
                                              ("obs", "actions", "rewards", "terminated",
                                               "ended", "next_obs", "mask")}  # fmt: skip
        while active.any():
            with torch.no_grad():
                logits = self.net.actor(as_tensor(current, dev))
            actions = sample(logits.cpu(), self.generator).numpy()
            after, rewards = current.copy(), np.zeros(len(envs), dtype=np.float32)
            term, ended = np.zeros(len(envs), dtype=bool), np.zeros(len(envs), dtype=bool)
            for i in np.flatnonzero(active):
                after[i], rewards[i], term[i], trunc, _ = envs[i].step(int(actions[i]))
                ended[i] = term[i] or trunc
                self.env_steps += 1
                totals[i], lengths[i] = totals[i] + rewards[i], lengths[i] + 1
                if ended[i]:
                    self.history.append({"env_steps": self.env_steps,
                                         "episode": len(self.history),
                                         "return": float(totals[i]),
                                         "length": int(lengths[i])})  # fmt: skip
            for key, value in (("obs", current), ("actions", actions), ("rewards", rewards),
                               ("terminated", term), ("ended", ended), ("next_obs", after),
                               ("mask", active.copy())):  # fmt: skip
                steps[key].append(value)
            active &= ~ended
            current = after
        out = {k: torch.as_tensor(np.stack(v), device=dev) for k, v in steps.items()}
        out["mask"] = out["mask"].float()
        return out

    def _iteration(self) -> dict[str, float]:
        c, batch = self.config, self.episodes()
        mask = batch["mask"]
        logits = self.net.actor(batch["obs"])
        values, next_values = None, None
        if c.baseline == "value":
            values = self.net.value(batch["obs"])
            with torch.no_grad():
                next_values = self.net.value(batch["next_obs"])
        returns = discounted_returns(batch["rewards"], c.gamma, batch["ended"],
                                     terminated=batch["terminated"],
                                     next_values=next_values)  # fmt: skip
        if c.baseline == "value":
            adv = returns - values.detach()
        elif c.baseline == "mean":
            adv = returns - (returns * mask).sum() / mask.sum()
        else:
            adv = returns
        if c.normalize_advantage:
            mean = (adv * mask).sum() / mask.sum()
            std = (((adv - mean) ** 2 * mask).sum() / mask.sum()).sqrt()
            adv = (adv - mean) / (std + 1e-8)
        loss = policy_gradient_loss(log_prob(logits, batch["actions"]), adv, mask)
        stats = {"policy_loss": loss.item()}
        if values is not None:
            v_loss = (F.mse_loss(values, returns, reduction="none") * mask).sum() / mask.sum()
            loss = loss + c.vf_coef * v_loss
            stats["value_loss"] = v_loss.item()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return stats
