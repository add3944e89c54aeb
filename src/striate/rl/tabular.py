"""Tabular Q-learning (Watkins 1989; Sutton & Barto, Reinforcement Learning: An Introduction, 2nd
ed., 2018, section 6.5) with ε-greedy exploration, in any env with discrete states and actions
(FrozenLake, Taxi, CliffWalking, the grid world):

    Q(s, a) ← Q(s, a) + α [r + γ max_a' Q(s', a') − Q(s, a)]     (no bootstrap after termination;
                                                                 a time limit is not termination)

    agent = QLearning("FrozenLake-v1", seed=0, alpha=0.1, epsilon=0.1)
    agent.train(50_000)        # environment steps; call again to continue
    agent.q                    # the table, states × actions
    agent.act(np.array([0]))   # the greedy action in state 0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from matplotlib.figure import Figure

from striate.checks import non_negative_int, number, options_of, probability
from striate.errors import InputError
from striate.progress import progress_bar
from striate.rl import gridworld  # noqa: F401  (registers the grid world with gymnasium)
from striate.rl.envs import discrete_actions, discrete_states, make_env
from striate.rl.gridworld import mdp_from_env
from striate.rl.tabular_figures import grid_figures

OWNER = "q-learning"


@dataclass
class QLearningConfig:
    """Step size α, discount γ and exploration: ε falls linearly from `epsilon_start` to `epsilon`
    over the first `exploration_steps` steps (0: ε = `epsilon` throughout, Sutton & Barto's
    constant ε = 0.1 with α = 0.1)."""

    alpha: float = 0.1
    gamma: float = 0.99
    epsilon: float = 0.1
    epsilon_start: float = 1.0
    exploration_steps: int = 0

    def __post_init__(self) -> None:
        self.alpha = number(OWNER, "alpha", self.alpha, low=0, high=1, low_open=True)
        self.gamma = number(OWNER, "gamma", self.gamma, low=0, high=1, hint="the discount factor")
        self.epsilon = probability(OWNER, "epsilon", self.epsilon)
        self.epsilon_start = probability(OWNER, "epsilon_start", self.epsilon_start)
        self.exploration_steps = non_negative_int(OWNER, "exploration_steps",
                                                  self.exploration_steps)  # fmt: skip


class QLearning:
    """Tabular Q-learning with the agent interface of `striate.rl.run`: train(steps), act(obs),
    history, state_dict()/load_state_dict(). `env` is an id for `make_env` or an env made
    already (e.g. `make_env("FrozenLake-v1", is_slippery=False)`); `device` is accepted for the
    interface and unused (the table lives in NumPy)."""

    def __init__(self, env: str | gym.Env, *, seed: int = 0, device: str = "cpu", **hyper: Any):
        self.config = options_of(OWNER, QLearningConfig, hyper)
        self.env = make_env(env) if isinstance(env, str) else env
        n_states = discrete_states(self.env, OWNER)
        n_actions = discrete_actions(self.env, OWNER)
        self.q = np.zeros((n_states, n_actions))
        self.rng = np.random.default_rng(seed)
        self.obs, _ = self.env.reset(seed=seed)
        self.env.action_space.seed(seed)
        self.env_steps, self.history = 0, []
        self._return, self._length = 0.0, 0

    def epsilon(self) -> float:
        """ε at the current step (the linear schedule of the config)."""
        c = self.config
        if self.env_steps >= c.exploration_steps:
            return c.epsilon
        fraction = self.env_steps / c.exploration_steps
        return c.epsilon_start + (c.epsilon - c.epsilon_start) * fraction

    def _explore(self, s: int) -> int:
        """ε-greedy, ties between the best actions broken at random (a table of zeros must not
        always pick action 0)."""
        if self.rng.random() < self.epsilon():
            return int(self.rng.integers(self.q.shape[1]))
        row = self.q[s]
        best = np.flatnonzero(row == row.max())
        return int(best[0] if len(best) == 1 else best[self.rng.integers(len(best))])

    def train(self, steps: int, progress: bool = True) -> dict[str, Any]:
        """`steps` more environment steps of Q-learning."""
        steps = non_negative_int(OWNER, "steps", steps)
        alpha, gamma, q = self.config.alpha, self.config.gamma, self.q
        label = f"{OWNER} {_name(self.env)}"
        with progress_bar(label, steps, "steps", enabled=progress) as advance:
            done_steps = self.env_steps
            for _ in range(steps):
                s = int(self.obs)
                a = self._explore(s)
                obs, reward, terminated, truncated, _ = self.env.step(a)
                s2 = int(obs)
                target = reward if terminated else reward + gamma * q[s2].max()
                q[s, a] += alpha * (target - q[s, a])
                self.env_steps += 1
                self._return += float(reward)
                self._length += 1
                self.obs = obs
                if terminated or truncated:
                    self._end_episode()
                    advance(self.env_steps - done_steps)
                    done_steps = self.env_steps
            advance(self.env_steps - done_steps)
        last = [h["return"] for h in self.history[-10:]]
        return {"env_steps": self.env_steps, "episodes": len(self.history),
                "mean_return_last_10": float(np.mean(last)) if last else math.nan}  # fmt: skip

    def _end_episode(self) -> None:
        self.history.append({"env_steps": self.env_steps, "episode": len(self.history),
                             "return": self._return, "length": self._length})  # fmt: skip
        self._return, self._length = 0.0, 0
        self.obs, _ = self.env.reset()

    @property
    def policy(self) -> np.ndarray:
        """The greedy action of each state."""
        return self.q.argmax(1)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for each of a batch of states: greedy, or ε-greedy with the current ε."""
        states = np.asarray(obs).reshape(-1)
        n_states, n_actions = self.q.shape
        if states.dtype.kind not in "iu" or (states < 0).any() or (states >= n_states).any():
            raise InputError(
                f"{OWNER}: act takes state indices in 0..{n_states - 1}, got {states[:5]!r}; "
                "pass the observations of the env the agent was trained in"
            )
        actions = self.q[states].argmax(1)
        if not deterministic:
            explore = self.rng.random(len(states)) < self.epsilon()
            actions = np.where(explore, self.rng.integers(n_actions, size=len(states)), actions)
        return actions

    def figures(self) -> dict[str, Figure]:
        """The learnt values max_a Q(s, a) as a heat map beside the greedy policy as arrows,
        where the env is a grid with a transition table (the grid world, FrozenLake,
        CliffWalking)."""
        try:
            mdp = mdp_from_env(self.env)
        except InputError:
            return {}
        title = f"{OWNER} on {_name(self.env)}, {self.env_steps:,} steps"
        return grid_figures(mdp, self.q.max(1), self.policy, title)

    def state_dict(self) -> dict[str, Any]:
        """The table, counters, the episode in progress and the random generator."""
        return {"q": torch.from_numpy(self.q.copy()), "config": asdict(self.config),
                "env_steps": self.env_steps, "obs": int(self.obs), "return": self._return,
                "length": self._length, "rng": self.rng.bit_generator.state}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        q = torch.as_tensor(state["q"]).numpy()
        if q.shape != self.q.shape:
            raise InputError(
                f"{OWNER}: the saved table is {tuple(q.shape)}, this env needs "
                f"{self.q.shape}; load it into an agent of the same env"
            )
        self.q = q.astype(np.float64).copy()
        self.env_steps, self.obs = int(state["env_steps"]), int(state["obs"])
        self._return, self._length = float(state["return"]), int(state["length"])
        self.rng.bit_generator.state = state["rng"]


def _name(env: gym.Env) -> str:
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__
