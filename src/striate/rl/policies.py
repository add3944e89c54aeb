"""The networks of the policy-gradient agents and what they share: an MLP actor (a categorical
policy over n discrete actions) and an MLP critic (a state value), and `OnPolicyAgent`, the
agent API (train / act / history / state_dict) around a rollout in gymnasium vector environments.

    net = ActorCritic(obs_size=4, n_actions=2)
    logits, value = net.actor(obs), net.value(obs)
    a = sample(logits, generator)                 # one action per row
    lp, h = log_prob(logits, a), entropy(logits)

The layers follow CleanRL's ppo.py (github.com/vwxyzjn/cleanrl, cleanrl/ppo.py, `layer_init`) and
Stable-Baselines3's MlpPolicy: two hidden layers of 64 with tanh, orthogonal weights with gain √2,
the policy head with gain 0.01 (nearly uniform at the start) and the value head with gain 1.
"""

from __future__ import annotations

import math
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from striate.checks import positive_int
from striate.device import resolve_device
from striate.errors import ConfigError
from striate.progress import progress_bar
from striate.rl.envs import discrete_actions, flat_observation, make_env


def layer(inputs: int, outputs: int, gain: float) -> nn.Linear:
    """A linear layer with orthogonal weights of `gain` and zero bias (CleanRL's layer_init)."""
    lin = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


def mlp(inputs: int, outputs: int, hidden: tuple[int, ...], out_gain: float) -> nn.Sequential:
    """inputs → hidden (tanh) … → outputs."""
    sizes, layers = (inputs, *hidden), []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [layer(a, b, math.sqrt(2)), nn.Tanh()]
    return nn.Sequential(*layers, layer(sizes[-1], outputs, out_gain))


class ActorCritic(nn.Module):
    """Separate actor (logits of a categorical policy) and critic (V(s)) MLPs."""

    def __init__(self, obs_size: int, n_actions: int, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.actor = mlp(obs_size, n_actions, hidden, 0.01)
        self.critic = mlp(obs_size, 1, hidden, 1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)


def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log π(a|s) of the categorical policy with these logits."""
    return logits.log_softmax(-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The entropy of each row's categorical distribution."""
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def sample(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One action per row drawn from softmax(logits) (by inverting the cumulative
    distribution at a uniform draw: cheaper than torch.multinomial for a few rows)."""
    u = torch.rand(logits.shape[:-1] + (1,), generator=generator, device=logits.device)
    below = (logits.softmax(-1).cumsum(-1) < u).sum(-1)
    return below.clamp(max=logits.shape[-1] - 1)


def hidden_sizes(owner: str, hidden: Any) -> tuple[int, ...]:
    """A config's `hidden` as a tuple of positive layer widths."""
    if not isinstance(hidden, (list, tuple)) or not hidden:
        raise ConfigError(
            f"{owner}: hidden must be a non-empty list of layer widths, got {hidden!r}; "
            "e.g. [64, 64]"
        )
    return tuple(positive_int(owner, "hidden", h) for h in hidden)


def as_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)


class OnPolicyAgent:
    """The agent API for the policy-gradient algorithms (issue 19's contract with rl.run):
    `train(steps)` runs whole iterations (a rollout, then `_update`) until at least `steps` more
    environment steps are done, so a checkpoint always falls on an iteration boundary; `act`,
    `history` (one row per finished episode), `env_steps`, and `state_dict` with the networks,
    the optimiser, the counters, the random generator, the current observations and the running
    episodes' returns (the environments themselves are captured by rl.env_state from `envs`).

    Subclasses set `self.config` (with `num_envs`, `num_steps`, `hidden`) and an optimiser in
    `_build`, and write `_update(rollout)`."""

    name = "agent"

    def __init__(self, env_id: str, *, seed: int = 0, device: Any = "cpu", config: Any):
        self.config = config
        self.env_id, self.seed = env_id, int(seed)
        self.device = resolve_device(device)
        probe = make_env(env_id)
        self.n_actions = discrete_actions(probe, self.name)
        self.obs_size = flat_observation(probe, self.name)
        probe.close()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net = ActorCritic(self.obs_size, self.n_actions, tuple(config.hidden))
        self.net.to(self.device)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.env_steps, self.iterations = 0, 0
        self.history: list[dict[str, Any]] = []
        self._make_envs()
        self._build()

    # -- to be written by each algorithm ------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def _update(self, rollout: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    # -- environments and the rollout -----------------------------------------------------------
    def _make_envs(self) -> None:
        n = self.config.num_envs
        self.envs = gym.vector.SyncVectorEnv(
            [lambda: make_env(self.env_id) for _ in range(n)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        obs, _ = self.envs.reset(seed=self.seed)  # env i gets seed + i
        self.obs = as_tensor(obs, self.device)
        self.episode_return, self.episode_length = np.zeros(n), np.zeros(n, dtype=np.int64)

    def _finish_episodes(self, rewards: np.ndarray, ended: np.ndarray) -> None:
        """Add each step's rewards to the running episodes and write the ended ones to history."""
        self.episode_return += rewards
        self.episode_length += 1
        for i in np.flatnonzero(ended):
            self.history.append({"env_steps": self.env_steps, "episode": len(self.history),
                                 "return": float(self.episode_return[i]),
                                 "length": int(self.episode_length[i])})  # fmt: skip
        self.episode_return[ended], self.episode_length[ended] = 0.0, 0

    def rollout(self, steps: int) -> dict[str, torch.Tensor]:
        """`steps` steps in every environment with the current policy: tensors T×N(×…) of
        obs, actions, log_probs, rewards, terminated, ended and next_obs. With gymnasium's
        same-step autoreset the observation after an episode's end is already the next episode's
        first; the state the step led to is in info["final_obs"], and next_obs keeps that one
        (for the bootstrap at a truncation)."""
        n, dev = self.config.num_envs, self.device
        obs = torch.empty((steps, n, self.obs_size), device=dev)
        actions = torch.empty((steps, n), dtype=torch.int64, device=dev)
        logps = torch.empty((steps, n), device=dev)
        next_obs = np.empty((steps, n, self.obs_size), dtype=np.float32)
        rewards = np.empty((steps, n), dtype=np.float32)
        terminated, ended = np.empty((steps, n), dtype=bool), np.empty((steps, n), dtype=bool)
        for t in range(steps):
            obs[t] = self.obs
            with torch.no_grad():
                logits = self.net.actor(self.obs)
            action = sample(logits.cpu(), self.generator)
            actions[t], logps[t] = action, log_prob(logits, action.to(dev))
            o, rewards[t], terminated[t], trunc, info = self.envs.step(action.numpy())
            self.env_steps += n
            ended[t] = terminated[t] | trunc
            self._finish_episodes(rewards[t], ended[t])
            next_obs[t] = o
            self.obs = as_tensor(o, dev)
            for i in np.flatnonzero(info.get("_final_obs", ())):
                next_obs[t, i] = info["final_obs"][i]
        return {"obs": obs, "actions": actions, "log_probs": logps,
                "rewards": torch.from_numpy(rewards).to(dev),
                "terminated": torch.from_numpy(terminated).to(dev),
                "ended": torch.from_numpy(ended).to(dev),
                "next_obs": torch.from_numpy(next_obs).to(dev)}  # fmt: skip

    def _iteration(self) -> dict[str, float]:
        """One rollout and one update (REINFORCE overrides it with whole episodes)."""
        return self._update(self.rollout(self.config.num_steps))

    # -- the agent API ----------------------------------------------------------------------
    def train(self, steps: int, progress: bool = True) -> dict[str, Any]:
        """Whole iterations until at least `steps` more environment steps are done."""
        steps = positive_int(self.name, "steps", steps)
        target, start, last = self.env_steps + steps, time.perf_counter(), {}
        with progress_bar(
            f"{self.name} {self.env_id}", steps, "steps", enabled=progress
        ) as advance:
            while self.env_steps < target:
                before = self.env_steps
                last = self._iteration()
                self.iterations += 1
                advance(min(self.env_steps, target) - before)
        recent = [h["return"] for h in self.history[-10:]]
        return {"env_steps": self.env_steps, "episodes": len(self.history),
                "iterations": self.iterations,
                "mean_return_last_10": float(np.mean(recent)) if recent else float("nan"),
                "seconds": time.perf_counter() - start, **last}  # fmt: skip

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations (N×obs): the most probable, or sampled."""
        obs = as_tensor(obs, self.device).reshape(-1, self.obs_size)
        with torch.no_grad():
            logits = self.net.actor(obs)
        action = logits.argmax(-1) if deterministic else sample(logits.cpu(), self.generator)
        return action.cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "env_steps": self.env_steps,
                "iterations": self.iterations, "obs": self.obs,
                "episode_return": torch.from_numpy(self.episode_return.copy()),
                "episode_length": torch.from_numpy(self.episode_length.copy())}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.env_steps, self.iterations = int(state["env_steps"]), int(state["iterations"])
        self.obs = state["obs"].to(self.device, torch.float32)
        self.episode_return = state["episode_return"].numpy().copy()
        self.episode_length = state["episode_length"].numpy().copy()
