"""Dynamic programming on a finite MDP (Sutton & Barto, Reinforcement Learning: An Introduction,
2nd ed., 2018, chapter 4), each sweep one tensor operation over all states and actions:

    Q(s, a) = R(s, a) + γ Σ_s' C(s, a, s') V(s')          (the Bellman backup, eq. 4.2 / 3.20)

with C the moves after which the episode goes on (`FiniteMDP.continuing`), so an ended episode
earns nothing more.

    sol = value_iteration(grid_mdp(), gamma=1.0)      # sol.V, sol.Q, sol.policy, sol.iterations
    sol = policy_iteration(mdp_from_env(env), gamma=0.99)
    V = evaluate_policy(mdp, policy, gamma)            # exactly, by a linear solve
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.checks import number, positive_int
from striate.errors import InputError
from striate.rl.gridworld import FiniteMDP


@dataclass
class Solution:
    """V[s] and Q[s, a] of the policy found, the greedy policy[s] (an action index), the number
    of sweeps (value iteration) or improvements (policy iteration), and the last Bellman
    optimality residual max_s |max_a Q(s, a) − V(s)|."""

    V: np.ndarray
    Q: np.ndarray
    policy: np.ndarray
    iterations: int
    residual: float


def bellman_backup(mdp: FiniteMDP, V: np.ndarray, gamma: float) -> np.ndarray:
    """Q(s, a) = R(s, a) + γ Σ_s' C(s, a, s') V(s') for all s and a at once."""
    return mdp.R + gamma * (mdp.continuing @ V)


def bellman_residual(mdp: FiniteMDP, V: np.ndarray, gamma: float) -> float:
    """max_s |max_a Q(s, a) − V(s)|: zero exactly at the optimal values (eq. 3.19)."""
    return float(np.abs(bellman_backup(mdp, V, gamma).max(1) - V).max())


def greedy(Q: np.ndarray) -> np.ndarray:
    """The action of highest value in each state (the first of ties)."""
    return Q.argmax(1)


def evaluate_policy(mdp: FiniteMDP, policy: np.ndarray, gamma: float) -> np.ndarray:
    """V^π solved exactly from V = R_π + γ C_π V (eq. 4.4): `policy` is an action per state or a
    states × actions table of probabilities."""
    gamma = _gamma("evaluate_policy", gamma)
    pi = _policy_table(mdp, policy)
    R_pi = (pi * mdp.R).sum(1)
    C_pi = np.einsum("sa,sat->st", pi, mdp.continuing)
    try:
        V = np.linalg.solve(np.eye(mdp.n_states) - gamma * C_pi, R_pi)
    except np.linalg.LinAlgError:
        V = np.full(mdp.n_states, np.nan)
    if not np.isfinite(V).all() or np.abs(V).max() > 1e12:
        raise InputError(
            "evaluate_policy: the policy never ends the episode from some states, so with "
            f"gamma={gamma:g} their value is unbounded; use gamma < 1 or a policy that ends"
        )
    return V


def value_iteration(mdp: FiniteMDP, gamma: float = 0.99, tol: float = 1e-10,
                    max_iterations: int = 100_000) -> Solution:  # fmt: skip
    """Value iteration (Sutton & Barto, section 4.4): V ← max_a Q(V) for all states at once from
    V = 0, until no value changes by more than `tol`."""
    gamma = _gamma("value_iteration", gamma)
    tol = number("value_iteration", "tol", tol, low=0, low_open=True)
    max_iterations = positive_int("value_iteration", "max_iterations", max_iterations)
    V = np.zeros(mdp.n_states)
    for i in range(1, max_iterations + 1):
        Q = bellman_backup(mdp, V, gamma)
        V_new = Q.max(1)
        change = float(np.abs(V_new - V).max())
        V = V_new
        if change <= tol:
            Q = bellman_backup(mdp, V, gamma)
            return Solution(V, Q, greedy(Q), i, float(np.abs(Q.max(1) - V).max()))
    raise InputError(
        f"value_iteration: the values still change by {change:.3g} after {max_iterations} sweeps; "
        "with gamma=1 some states never end the episode: use gamma < 1"
    )


def policy_iteration(mdp: FiniteMDP, gamma: float = 0.99, max_iterations: int = 10_000) -> Solution:
    """Policy iteration (Sutton & Barto, section 4.3): evaluate the policy exactly, make it greedy,
    until it no longer changes. It starts from a policy that can end the episode from every state
    where that is possible (so that with γ = 1 its value is finite), and keeps an action unless
    another is better by more than round-off, so that ties cannot make it cycle."""
    gamma = _gamma("policy_iteration", gamma)
    max_iterations = positive_int("policy_iteration", "max_iterations", max_iterations)
    policy = _ending_policy(mdp)
    for i in range(1, max_iterations + 1):
        V = evaluate_policy(mdp, policy, gamma)
        Q = bellman_backup(mdp, V, gamma)
        kept = Q[np.arange(mdp.n_states), policy]
        slack = 1e-9 * max(1.0, float(np.abs(Q).max()))
        better = Q.max(1) > kept + slack
        if not better.any():
            return Solution(V, Q, policy, i, float(np.abs(Q.max(1) - V).max()))
        policy = np.where(better, greedy(Q), policy)
    raise InputError(f"policy_iteration: the policy still changes after {max_iterations} steps")


def _ending_policy(mdp: FiniteMDP) -> np.ndarray:
    """In each state an action that can bring the end of the episode closer: first the states
    where some action may end it, then those that may reach such a state, and so on."""
    ends_now = mdp.ends.sum(2) > 0  # (S, A)
    reached = ends_now.any(1)
    policy = np.where(reached, ends_now.argmax(1), 0)
    while True:
        leads = (mdp.P[:, :, reached] > 0).any(2) & ~reached[:, None]  # (S, A)
        new = leads.any(1)
        if not new.any():
            return policy
        policy = np.where(new, leads.argmax(1), policy)
        reached = reached | new


def _policy_table(mdp: FiniteMDP, policy: np.ndarray) -> np.ndarray:
    policy = np.asarray(policy)
    if policy.shape == (mdp.n_states,) and policy.dtype.kind in "iu":
        if policy.min() < 0 or policy.max() >= mdp.n_actions:
            raise InputError(
                f"evaluate_policy: actions must be in 0..{mdp.n_actions - 1}, got "
                f"{policy.min()}..{policy.max()}"
            )
        return np.eye(mdp.n_actions)[policy]
    if policy.shape == (mdp.n_states, mdp.n_actions) and np.allclose(policy.sum(1), 1):
        return policy.astype(np.float64)
    raise InputError(
        f"evaluate_policy: give an action index per state ({mdp.n_states},) or a probability "
        f"table ({mdp.n_states}, {mdp.n_actions}), got shape {policy.shape}"
    )


def _gamma(owner: str, gamma: float) -> float:
    return number(owner, "gamma", gamma, low=0.0, high=1.0, hint="the discount factor")
