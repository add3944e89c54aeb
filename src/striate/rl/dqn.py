"""Deep Q-learning (the lecture's Algorithm 1) with what made it work in Mnih et al. 2015 ("Human-
level control through deep reinforcement learning"): a replay memory sampled uniformly, a target
network copied every C steps (or moved towards the online one by Polyak averaging, τ < 1), ε-greedy
exploration with ε decaying linearly, and the Huber loss as an option; Double DQN (van Hasselt et
al. 2016) as another. Step by step as CleanRL's dqn.py (github.com/vwxyzjn/cleanrl, cleanrl/dqn.py).

    agent = DQN("CartPole-v1", seed=0)                   # CleanRL's settings (DQNConfig)
    agent.train(100_000)                                 # environment steps; call again to go on
    actions = agent.act(obs)                             # greedy, for a batch of observations
    DQN("ALE/Pong-v5", learning_starts=1_000)            # Atari preprocessing, the Nature network

The targets, for a minibatch of transitions (s, a, r, s', terminated):

    DQN:         y = r + γ (1 − terminated) max_a' Q_target(s', a')
    Double DQN:  y = r + γ (1 − terminated) Q_target(s', argmax_a' Q(s', a'))

A time limit is not termination: the target bootstraps from the real last state of a truncated
episode (CleanRL's `real_next_obs`), so one env is stepped here and reset by hand.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import (
    boolean,
    non_negative_int,
    number,
    one_of,
    options_of,
    positive_int,
    probability,
)
from striate.device import resolve_device
from striate.errors import InputError
from striate.progress import progress_bar
from striate.rl.atari import is_atari, make_atari
from striate.rl.envs import discrete_actions, make_env
from striate.rl.exploration import linear_schedule, random_actions
from striate.rl.policies import hidden_sizes
from striate.rl.replay import ReplayBuffer

OWNER = "dqn"
LOSSES = {"mse": F.mse_loss, "huber": F.smooth_l1_loss}


@dataclass
class DQNConfig:
    """CleanRL dqn.py's defaults (its Args, tuned there for CartPole-v1): Adam at 2.5e-4, a
    replay of 10,000, γ 0.99, the target copied (τ 1) every 500 steps, minibatches of 128, ε from
    1 to 0.05 over half of `total_steps` (500,000), learning from step 10,000 on, every 10th step,
    an MLP of 120 and 84 ReLU units, and the squared error (CleanRL's choice; "huber" is Mnih et
    al.'s). `gradient_steps` updates per training step (1 in CleanRL; Stable-Baselines3's option).
    `atari_preprocessing` wraps ALE games with make_atari (for the Nature network)."""

    learning_rate: float = 2.5e-4
    buffer_size: int = 10_000
    gamma: float = 0.99
    tau: float = 1.0
    target_network_frequency: int = 500
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5
    total_steps: int = 500_000
    learning_starts: int = 10_000
    train_frequency: int = 10
    gradient_steps: int = 1
    loss: str = "mse"
    double: bool = False
    max_grad_norm: float | None = None
    hidden: list[int] = field(default_factory=lambda: [120, 84])
    atari_preprocessing: bool = True

    def __post_init__(self) -> None:
        number(OWNER, "learning_rate", self.learning_rate, low=0, low_open=True)
        positive_int(OWNER, "buffer_size", self.buffer_size)
        probability(OWNER, "gamma", self.gamma)
        number(OWNER, "tau", self.tau, low=0, high=1, low_open=True)
        positive_int(OWNER, "target_network_frequency", self.target_network_frequency)
        positive_int(OWNER, "batch_size", self.batch_size)
        probability(OWNER, "start_e", self.start_e)
        probability(OWNER, "end_e", self.end_e)
        probability(OWNER, "exploration_fraction", self.exploration_fraction)
        positive_int(OWNER, "total_steps", self.total_steps)
        non_negative_int(OWNER, "learning_starts", self.learning_starts)
        positive_int(OWNER, "train_frequency", self.train_frequency)
        positive_int(OWNER, "gradient_steps", self.gradient_steps)
        one_of(OWNER, "loss", self.loss, LOSSES)
        boolean(OWNER, "double", self.double)
        number(OWNER, "max_grad_norm", self.max_grad_norm, low=0, low_open=True, allow_none=True)
        self.hidden = list(hidden_sizes(OWNER, self.hidden))
        boolean(OWNER, "atari_preprocessing", self.atari_preprocessing)


def mlp_q_network(obs_size: int, n_actions: int, hidden: tuple[int, ...]) -> nn.Sequential:
    """CleanRL dqn.py's QNetwork: obs → hidden (ReLU) … → one Q-value per action."""
    sizes, layers = (obs_size, *hidden), []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], n_actions))


class NatureQNetwork(nn.Module):
    """Mnih et al. 2015's network (Methods: model architecture): 4×84×84 frames scaled to [0, 1],
    conv 32 8×8 stride 4, conv 64 4×4 stride 2, conv 64 3×3 stride 1, fully connected 512, one
    output per action, ReLU between."""

    def __init__(self, in_channels: int, n_actions: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
            nn.Linear(512, n_actions),
        )  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames.float() / 255.0)


def q_network(env: gym.Env, n_actions: int, hidden: tuple[int, ...]) -> tuple[nn.Module, bool]:
    """The network for the env's observations (an MLP for vectors, the Nature network for 84×84
    frame stacks) and whether the observations are frames; an InputError for anything else."""
    space = env.observation_space
    shape = getattr(space, "shape", None)
    if isinstance(space, gym.spaces.Box) and len(shape) == 1:
        return mlp_q_network(shape[0], n_actions, hidden), False
    if isinstance(space, gym.spaces.Box) and len(shape) == 3 and shape[1:] == (84, 84):
        return NatureQNetwork(shape[0], n_actions), True
    spec = getattr(env, "spec", None)
    name = spec.id if spec is not None else type(env.unwrapped).__name__
    raise InputError(
        f"{OWNER}: {name} observes {type(space).__name__} of shape {shape}, but the Q-network "
        "takes a vector or a stack of 84×84 frames; use a vector-observation env, or an ALE game "
        "with atari_preprocessing=True"
    )


def td_targets(q_target: nn.Module, q_online: nn.Module, batch: dict[str, torch.Tensor],
               gamma: float, double: bool) -> torch.Tensor:  # fmt: skip
    """y = r + γ (1 − terminated) Q_target(s', a*), with a* the argmax of Q_target (DQN) or of
    the online network (Double DQN)."""
    with torch.no_grad():
        next_q = q_target(batch["next_obs"])
        if double:
            best = q_online(batch["next_obs"]).argmax(-1, keepdim=True)
            next_value = next_q.gather(-1, best).squeeze(-1)
        else:
            next_value = next_q.max(-1).values
        return batch["reward"] + gamma * (~batch["terminated"]).float() * next_value


class DQN:
    """DQN on a gymnasium env with discrete actions (module docstring), with the agent interface of
    striate.rl.run: train(steps), act(obs), history, env_steps, state_dict()/load_state_dict()."""

    name = OWNER

    def __init__(self, env_id: str, *, seed: int = 0, device: Any = "cpu", **hyper: Any):
        self.config = c = options_of(OWNER, DQNConfig, hyper)
        self.env_id, self.seed = env_id, int(seed)
        self.device = resolve_device(device)
        atari = c.atari_preprocessing and is_atari(env_id)
        env = make_atari(env_id) if atari else make_env(env_id)
        self.n_actions = discrete_actions(env, OWNER)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.q, self.frames = q_network(env, self.n_actions, tuple(c.hidden))
        self.q.to(self.device)
        self.target = _copy(self.q)
        # fused: one kernel for every parameter (a quarter off a small network's update on a CPU)
        self.optimizer = torch.optim.Adam(self.q.parameters(), lr=c.learning_rate, fused=True)
        self.loss = LOSSES[c.loss]
        shape = env.observation_space.shape
        self.obs_dtype = torch.uint8 if self.frames else torch.float32
        self.replay = ReplayBuffer(c.buffer_size, shape, self.obs_dtype, self.device)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.env_steps, self.updates = 0, 0
        self.history: list[dict[str, Any]] = []
        self._start(env, self.seed)

    def _start(self, env: gym.Env, seed: int | None = None) -> None:
        """Act in `env` from a fresh episode (reset with `seed`)."""
        self.env = env
        self.obs, _ = env.reset(seed=seed)
        self.episode_return, self.episode_length = 0.0, 0

    def epsilon(self) -> float:
        """ε at the current step (CleanRL's linear_schedule over exploration_fraction × total)."""
        c = self.config
        duration = c.exploration_fraction * c.total_steps
        return linear_schedule(c.start_e, c.end_e, duration, self.env_steps)

    def _tensor(self, obs: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs), device=self.device).to(self.obs_dtype)

    def _greedy(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.q(obs).argmax(-1)

    def _step(self) -> None:
        """One environment step with ε-greedy and the transition stored; the episode's end
        recorded and the env reset by hand (so that next_obs is the real last state)."""
        explore, action = random_actions(1, self.n_actions, self.epsilon(), self.generator)
        a = int(action[0]) if explore[0] else int(self._greedy(self._tensor(self.obs)[None])[0])
        next_obs, reward, terminated, truncated, _ = self.env.step(a)
        self.replay.add(self.obs, a, float(reward), next_obs, bool(terminated))
        self.episode_return += float(reward)
        self.episode_length += 1
        self.env_steps += 1
        if terminated or truncated:
            self.history.append({"env_steps": self.env_steps, "episode": len(self.history),
                                 "return": self.episode_return,
                                 "length": self.episode_length})  # fmt: skip
            self._start(self.env)
        else:
            self.obs = next_obs

    def update(self, batch: dict[str, torch.Tensor]) -> float:
        """One gradient step on the TD error of a minibatch; the loss."""
        c = self.config
        y = td_targets(self.target, self.q, batch, c.gamma, c.double)
        q = self.q(batch["obs"]).gather(-1, batch["action"][:, None]).squeeze(-1)
        loss = self.loss(q, y)
        self.optimizer.zero_grad()
        loss.backward()
        if c.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.q.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        return float(loss.detach())

    def _update_target(self) -> None:
        """θ⁻ ← τ θ + (1 − τ) θ⁻ (a copy when τ = 1)."""
        tau = self.config.tau
        with torch.no_grad():
            for t, p in zip(self.target.parameters(), self.q.parameters(), strict=True):
                t.copy_(p) if tau == 1.0 else t.lerp_(p, tau)

    def train(self, steps: int, progress: bool = True) -> dict[str, Any]:
        """`steps` more environment steps, learning as CleanRL's loop: after step t (counted
        from 0) with t > learning_starts, a minibatch update when t is a multiple of
        train_frequency and a target update when it is one of target_network_frequency."""
        steps = positive_int(OWNER, "steps", steps)
        c, start, loss = self.config, time.perf_counter(), math.nan
        with progress_bar(f"{OWNER} {self.env_id}", steps, "steps", enabled=progress) as advance:
            for i in range(steps):
                t = self.env_steps
                self._step()
                if t > c.learning_starts:
                    if t % c.train_frequency == 0:
                        for _ in range(c.gradient_steps):
                            loss = self.update(self.replay.sample(c.batch_size, self.generator))
                    if t % c.target_network_frequency == 0:
                        self._update_target()
                if (i + 1) % 1000 == 0 or i + 1 == steps:
                    advance(i % 1000 + 1)
        recent = [h["return"] for h in self.history[-10:]]
        return {"env_steps": self.env_steps, "episodes": len(self.history),
                "updates": self.updates, "epsilon": self.epsilon(), "loss": loss,
                "mean_return_last_10": float(np.mean(recent)) if recent else math.nan,
                "seconds": time.perf_counter() - start}  # fmt: skip

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations: greedy, or ε-greedy with the current ε."""
        shape = tuple(self.replay.obs.shape[1:])
        obs = np.asarray(obs)
        if obs.shape[-len(shape) :] != shape:
            raise InputError(
                f"{OWNER}: act takes a batch of observations of shape {shape}, got {obs.shape}; "
                "pass what the training env observes (make_atari for ALE games)"
            )
        x = self._tensor(obs).reshape(-1, *shape)
        actions = self._greedy(x).cpu()
        if not deterministic:
            explore, random = random_actions(len(x), self.n_actions, self.epsilon(), self.generator)
            actions = torch.where(explore, random, actions)
        return actions.numpy()

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, replay memory, random generator, counters and the episode in
        progress (the env itself is captured by rl.env_state)."""
        return {"q": self.q.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": self.replay.state_dict(),
                "generator": self.generator.get_state(), "env_steps": self.env_steps,
                "updates": self.updates, "obs": torch.as_tensor(np.asarray(self.obs)).clone(),
                "episode_return": self.episode_return, "episode_length": self.episode_length,
                "config": asdict(self.config)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.replay.load_state_dict(state["replay"])
        self.generator.set_state(state["generator"])
        self.env_steps, self.updates = int(state["env_steps"]), int(state["updates"])
        self.obs = state["obs"].numpy().copy()
        self.episode_return = float(state["episode_return"])
        self.episode_length = int(state["episode_length"])
        if type(self.env.unwrapped).__module__.startswith("ale_py"):
            # an emulator's state is not saved with the run (rl.env_state): a new episode starts
            self._start(self.env)


def _copy(net: nn.Module) -> nn.Module:
    target = copy.deepcopy(net)
    target.requires_grad_(False)
    return target
