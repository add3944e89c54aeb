"""Advantage actor-critic (A2C): the synchronous, batched version of A3C (Mnih et al. 2016,
"Asynchronous methods for deep reinforcement learning", Algorithm S3) as Stable-Baselines3 and
OpenAI Baselines run it: N environments step together for n steps, then one gradient step.

    agent = A2C("CartPole-v1", seed=0)
    agent.train(100_000)
    actions = agent.act(obs)              # greedy

The update (Algorithm S3, with the entropy term of its section 4): with the n-step return
R_t = r_t + γ r_{t+1} + … + γ^{n−1} V(s_{t+n}) (cut at an episode's end; bootstrapped at a
truncation) and the advantage A_t = R_t − V(s_t) (or GAE(λ) of it; λ = 1 is the n-step return),

    actor:   θ  ← θ  + α Σ_t [∇θ log π(a_t|s_t) A_t + β ∇θ H(π(·|s_t))]
    critic:  θv ← θv − α Σ_t ∇θv (R_t − V(s_t))²

— the advantage is a constant in the actor's step, and the critic regresses on the return; here
as one loss, −mean(log π · A) − β mean(H) + c_v mean((R − V)²), with RMSprop and the gradient
norm clipped, as SB3's a2c.py does. (The lecture's slide writes θ ← αΔθ and φ ← βΔφ: the
parameters replaced by the step, and the critic climbing its squared error; the steps are
θ ← θ + αΔθ and φ ← φ − βΔφ. Its A_t, the Monte-Carlo return minus V, is REINFORCE with a learned
baseline: `Reinforce(baseline="value")`.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from striate.checks import boolean, number, options_of, positive_int, positive_number, probability
from striate.rl.policies import OnPolicyAgent, entropy, hidden_sizes, log_prob
from striate.rl.returns import gae


@dataclass
class A2CConfig:
    """Stable-Baselines3's A2C defaults (stable_baselines3/a2c/a2c.py; CleanRL has no A2C file)
    with the 4 environments SB3's benchmark uses on CartPole-v1: 5 steps per environment per
    update, RMSprop (α 0.99, ε 1e-5) at 7e-4, λ = 1 (plain n-step returns), no entropy bonus,
    value loss weight 0.5, gradient norm clipped at 0.5."""

    num_envs: int = 4
    num_steps: int = 5
    learning_rate: float = 7e-4
    gamma: float = 0.99
    gae_lambda: float = 1.0
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    rms_alpha: float = 0.99
    rms_eps: float = 1e-5
    normalize_advantage: bool = False
    hidden: list[int] = field(default_factory=lambda: [64, 64])

    def __post_init__(self) -> None:
        check_common(self, "a2c")
        probability("a2c", "rms_alpha", self.rms_alpha, high_open=True)
        positive_number("a2c", "rms_eps", self.rms_eps)
        boolean("a2c", "normalize_advantage", self.normalize_advantage)


def check_common(config, owner: str) -> None:
    """The settings A2C and PPO share: one-line ConfigErrors."""
    positive_int(owner, "num_envs", config.num_envs)
    positive_int(owner, "num_steps", config.num_steps)
    positive_number(owner, "learning_rate", config.learning_rate)
    probability(owner, "gamma", config.gamma)
    probability(owner, "gae_lambda", config.gae_lambda)
    number(owner, "ent_coef", config.ent_coef, low=0)
    number(owner, "vf_coef", config.vf_coef, low=0)
    positive_number(owner, "max_grad_norm", config.max_grad_norm)
    config.hidden = list(hidden_sizes(owner, config.hidden))


def advantages_and_returns(agent: OnPolicyAgent, rollout: dict[str, torch.Tensor]):
    """V(s_t) (with its graph when the caller differentiates it), GAE advantages and the value
    targets of a rollout, bootstrapped with V of the state each step led to."""
    c = agent.config
    values = agent.net.value(rollout["obs"])
    with torch.no_grad():
        next_values = agent.net.value(rollout["next_obs"])
        adv = gae(rollout["rewards"], values.detach(), next_values, rollout["terminated"],
                  rollout["ended"], c.gamma, c.gae_lambda)  # fmt: skip
    return values, adv, adv + values.detach()


class A2C(OnPolicyAgent):
    """A2C on a discrete-action, vector-observation gymnasium environment (module docstring)."""

    name = "a2c"

    def __init__(self, env_id: str, *, seed: int = 0, device="cpu", **hyper):
        super().__init__(
            env_id, seed=seed, device=device, config=options_of("a2c", A2CConfig, hyper)
        )

    def _build(self) -> None:
        c = self.config
        self.optimizer = torch.optim.RMSprop(self.net.parameters(), lr=c.learning_rate,
                                             alpha=c.rms_alpha, eps=c.rms_eps)  # fmt: skip

    def _update(self, rollout: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        values, adv, returns = advantages_and_returns(self, rollout)
        if c.normalize_advantage:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logits = self.net.actor(rollout["obs"])
        policy_loss = -(log_prob(logits, rollout["actions"]) * adv).mean()
        value_loss = F.mse_loss(values, returns)
        entropy_mean = entropy(logits).mean()
        loss = policy_loss - c.ent_coef * entropy_mean + c.vf_coef * value_loss
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), c.max_grad_norm)
        self.optimizer.step()
        return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(),
                "entropy": entropy_mean.item()}  # fmt: skip
