"""Proximal policy optimisation with the clipped objective (Schulman et al. 2017, "Proximal policy
optimization algorithms", eq. 7 and 9) and GAE advantages, step by step as CleanRL's ppo.py
(github.com/vwxyzjn/cleanrl, cleanrl/ppo.py) does it: N environments × T steps per rollout, then
several epochs of minibatch Adam steps on it, advantages normalised per minibatch, the value loss
clipped around the rollout's values, an entropy bonus, the gradient norm clipped at 0.5 and the
learning rate annealed linearly to 0 over `total_steps`.

    agent = PPO("CartPole-v1", seed=0)
    agent.train(100_000)
    actions = agent.act(obs)              # greedy
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from striate.checks import boolean, number, options_of, positive_int
from striate.errors import ConfigError
from striate.rl.a2c import advantages_and_returns, check_common
from striate.rl.policies import OnPolicyAgent, entropy, log_prob


@dataclass
class PPOConfig:
    """CleanRL ppo.py's defaults (its Args), tuned there for CartPole-v1: 4 environments × 128
    steps, 4 minibatches, 4 epochs, Adam (ε 1e-5) at 2.5e-4 annealed over 500,000 steps,
    γ 0.99, λ 0.95, clip 0.2 (value loss clipped too), entropy 0.01, value 0.5, grad norm 0.5."""

    num_envs: int = 4
    num_steps: int = 128
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    total_steps: int = 500_000
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 4
    update_epochs: int = 4
    normalize_advantage: bool = True
    clip_coef: float = 0.2
    clip_vloss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: list[int] = field(default_factory=lambda: [64, 64])

    def __post_init__(self) -> None:
        check_common(self, "ppo")
        boolean("ppo", "anneal_lr", self.anneal_lr)
        positive_int("ppo", "total_steps", self.total_steps)
        positive_int("ppo", "num_minibatches", self.num_minibatches)
        positive_int("ppo", "update_epochs", self.update_epochs)
        boolean("ppo", "normalize_advantage", self.normalize_advantage)
        number("ppo", "clip_coef", self.clip_coef, low=0, low_open=True)
        boolean("ppo", "clip_vloss", self.clip_vloss)
        if self.num_envs * self.num_steps < self.num_minibatches:
            raise ConfigError(
                f"ppo: num_minibatches {self.num_minibatches} is more than a rollout's "
                f"{self.num_envs * self.num_steps} steps (num_envs × num_steps); use fewer"
            )


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """The clipped surrogate loss, −mean(min(r A, clip(r, 1 − ε, 1 + ε) A)) (eq. 7, negated)."""
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()


def value_loss(new: torch.Tensor, old: torch.Tensor, returns: torch.Tensor,
               clip: float | None) -> torch.Tensor:  # fmt: skip
    """½ mean((V − R)²); with `clip`, the larger of that and the loss of V kept within ±clip of
    the rollout's values (CleanRL's clip_vloss, from OpenAI Baselines' ppo2)."""
    loss = (new - returns) ** 2
    if clip is not None:
        clipped = old + (new - old).clamp(-clip, clip)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss.mean()


class PPO(OnPolicyAgent):
    """PPO on a discrete-action, vector-observation gymnasium environment (module docstring)."""

    name = "ppo"

    def __init__(self, env_id: str, *, seed: int = 0, device="cpu", **hyper):
        super().__init__(
            env_id, seed=seed, device=device, config=options_of("ppo", PPOConfig, hyper)
        )

    def _build(self) -> None:
        # fused: one kernel for every parameter (a quarter off a small network's update on a CPU)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate,
                                          eps=1e-5, fused=True)  # fmt: skip

    def _update(self, rollout: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        if c.anneal_lr:
            iterations = max(c.total_steps // (c.num_envs * c.num_steps), 1)
            frac = max(1.0 - self.iterations / iterations, 0.0)
            self.optimizer.param_groups[0]["lr"] = frac * c.learning_rate
        with torch.no_grad():
            old_values, adv, returns = advantages_and_returns(self, rollout)
        flat = {k: rollout[k].flatten(0, 1) for k in ("obs", "actions", "log_probs")}
        old_values, adv, returns = old_values.flatten(), adv.flatten(), returns.flatten()
        batch = adv.shape[0]
        size = batch // c.num_minibatches
        for _ in range(c.update_epochs):
            order = torch.randperm(batch, generator=self.generator).to(self.device)
            for start in range(0, size * c.num_minibatches, size):
                mb = order[start : start + size]
                logits = self.net.actor(flat["obs"][mb])
                ratio = (log_prob(logits, flat["actions"][mb]) - flat["log_probs"][mb]).exp()
                mb_adv = adv[mb]
                if c.normalize_advantage:
                    mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = clipped_surrogate(ratio, mb_adv, c.clip_coef)
                v_loss = value_loss(self.net.value(flat["obs"][mb]), old_values[mb], returns[mb],
                                    c.clip_coef if c.clip_vloss else None)  # fmt: skip
                entropy_mean = entropy(logits).mean()
                loss = pg_loss - c.ent_coef * entropy_mean + c.vf_coef * v_loss
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
                self.optimizer.step()
        return {"policy_loss": pg_loss.item(), "value_loss": v_loss.item(),
                "entropy": entropy_mean.item(),
                "learning_rate": self.optimizer.param_groups[0]["lr"]}  # fmt: skip
