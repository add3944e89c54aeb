"""Planning agents: value iteration and policy iteration on the model of an environment with a
complete transition table (the grid world, FrozenLake, Taxi, CliffWalking), with the agent
interface of `striate.rl.run` so that `striate rl train value-iteration` and `striate rl eval`
treat them like the learning agents. They take no environment steps: `solve()` plans once.

    agent = ValueIteration("FrozenLake-v1", gamma=0.99)
    agent.solve()                          # the Solution: V, Q, policy, sweeps, residual
    agent.act(np.array([0]))               # the optimal action in state 0
    agent.figures()                        # {"policy_value.png": arrows and heat map} on a grid
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from matplotlib.figure import Figure

from striate.checks import number, options_of
from striate.errors import InputError
from striate.rl import gridworld  # noqa: F401  (registers the grid world with gymnasium)
from striate.rl.dynamic_programming import Solution, policy_iteration, value_iteration
from striate.rl.envs import make_env
from striate.rl.gridworld import mdp_from_env
from striate.rl.tabular_figures import grid_figures


@dataclass
class PlanningConfig:
    """The discount γ and, for value iteration, the largest change of a value at which the sweeps
    stop."""

    gamma: float = 0.99
    tol: float = 1e-10

    def __post_init__(self) -> None:
        self.gamma = number("planning", "gamma", self.gamma, low=0, high=1,
                            hint="the discount factor")  # fmt: skip
        self.tol = number("planning", "tol", self.tol, low=0, low_open=True)


class Planner:
    """Solves the MDP of `env` (an id for `make_env` or an env made already) by `method`;
    `seed` and `device` are accepted for the interface and unused (planning is exact)."""

    method = "value-iteration"
    env_steps = 0  # planning never steps the environment

    def __init__(self, env: str | gym.Env, *, seed: int = 0, device: str = "cpu", **hyper: Any):
        self.config = options_of(self.method, PlanningConfig, hyper)
        env = make_env(env) if isinstance(env, str) else env
        self.name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        self.mdp = mdp_from_env(env)
        env.close()
        self.history: list[dict[str, Any]] = []
        self.solution: Solution | None = None

    def solve(self) -> Solution:
        if self.method == "value-iteration":
            self.solution = value_iteration(self.mdp, self.config.gamma, self.config.tol)
        else:
            self.solution = policy_iteration(self.mdp, self.config.gamma)
        return self.solution

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:  # noqa: ARG002
        """The optimal action of each of a batch of states."""
        if self.solution is None:
            raise InputError(f"{self.method}: solve() the MDP before asking for actions")
        states = np.asarray(obs).reshape(-1)
        n = self.mdp.n_states
        if states.dtype.kind not in "iu" or (states < 0).any() or (states >= n).any():
            raise InputError(
                f"{self.method}: act takes state indices in 0..{n - 1}, got {states[:5]!r}; "
                "pass the observations of the env the agent planned for"
            )
        return self.solution.policy[states]

    def figures(self) -> dict[str, Figure]:
        """The value function as a heat map beside the policy as arrows, where the states are
        the cells of a grid."""
        if self.solution is None:
            return {}
        title = f"{self.method} on {self.name}, γ = {self.config.gamma:g}"
        return grid_figures(self.mdp, self.solution.V, self.solution.policy, title)

    def state_dict(self) -> dict[str, Any]:
        if self.solution is None:
            raise InputError(f"{self.method}: nothing to save before solve()")
        s = self.solution
        return {"V": torch.from_numpy(s.V.copy()), "Q": torch.from_numpy(s.Q.copy()),
                "policy": torch.from_numpy(s.policy.astype(np.int64)),
                "iterations": s.iterations, "residual": s.residual,
                "config": asdict(self.config)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        Q = torch.as_tensor(state["Q"]).numpy().astype(np.float64)
        expected = (self.mdp.n_states, self.mdp.n_actions)
        if Q.shape != expected:
            raise InputError(
                f"{self.method}: the saved plan is for {Q.shape[0]} states × {Q.shape[1]} "
                f"actions, this env has {expected[0]} × {expected[1]}; plan again"
            )
        V = torch.as_tensor(state["V"]).numpy().astype(np.float64)
        policy = torch.as_tensor(state["policy"]).numpy().astype(np.int64)
        self.solution = Solution(V, Q, policy, int(state["iterations"]), float(state["residual"]))


class ValueIteration(Planner):
    """Value iteration (Sutton & Barto, section 4.4)."""

    method = "value-iteration"


class PolicyIteration(Planner):
    """Policy iteration (Sutton & Barto, section 4.3)."""

    method = "policy-iteration"
