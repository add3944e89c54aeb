"""rl.dynamic_programming against independent references: a brute-force search over every
deterministic policy (each evaluated by numpy.linalg.solve), shortest paths by breadth-first
search, Sutton & Barto's Figure 4.1, and Monte Carlo episodes of FrozenLake itself."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest

from striate.errors import ConfigError, InputError
from striate.rl.dynamic_programming import (
    bellman_residual,
    evaluate_policy,
    policy_iteration,
    value_iteration,
)
from striate.rl.envs import make_env
from striate.rl.gridworld import FiniteMDP, grid_mdp, mdp_from_env


def brute_force_values(mdp: FiniteMDP, gamma: float) -> np.ndarray:
    """V^π of every deterministic policy, (policies, states), each by a direct linear solve of
    V = R_π + γ P_π V with terminal states' values fixed at 0."""
    live = np.flatnonzero(~mdp.terminal)
    n, k = len(live), mdp.n_actions
    policies = np.array(list(itertools.product(range(k), repeat=n)))  # (k^n, n)
    P = mdp.P[live][:, :, live]  # moves between live states; moves into terminals earn nothing more
    P_pi = P[np.arange(n), policies]  # (k^n, n, n)
    R_pi = mdp.R[live][np.arange(n), policies]  # (k^n, n)
    V_live = np.linalg.solve(np.eye(n) - gamma * P_pi, R_pi[..., None])[..., 0]
    V = np.zeros((len(policies), mdp.n_states))
    V[:, live] = V_live
    return V


def random_mdp(seed: int, n_states: int = 6, n_actions: int = 3) -> FiniteMDP:
    """A stochastic MDP with random rewards whose last state is terminal."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(n_states) * 0.5, size=(n_states, n_actions))
    terminal = np.zeros(n_states, dtype=bool)
    terminal[-1] = True
    P[-1] = 0
    P[-1, :, -1] = 1
    R = rng.normal(size=(n_states, n_actions))
    R[-1] = 0
    return FiniteMDP(P, R, terminal, np.full(n_states, 1 / n_states))


@pytest.mark.parametrize("mdp", [grid_mdp(("T..", "...", "..T")), random_mdp(0), random_mdp(1)],
                         ids=["grid 3x3", "random 0", "random 1"])  # fmt: skip
def test_value_iteration_matches_a_brute_force_policy_search(mdp):
    gamma = 0.9
    solution = value_iteration(mdp, gamma, tol=1e-12)
    assert solution.residual < 1e-9
    assert bellman_residual(mdp, solution.V, gamma) < 1e-9
    every = brute_force_values(mdp, gamma)
    # the optimal values are the best policy's, in every state at once (Sutton & Barto 3.6)
    np.testing.assert_allclose(solution.V, every.max(0), atol=1e-8)
    assert np.isclose(every, solution.V, atol=1e-8).all(1).any()
    np.testing.assert_allclose(evaluate_policy(mdp, solution.policy, gamma), every.max(0),
                               atol=1e-8)  # fmt: skip
    found = policy_iteration(mdp, gamma)
    np.testing.assert_allclose(found.V, solution.V, atol=1e-8)
    np.testing.assert_allclose(found.Q, solution.Q, atol=1e-8)
    assert found.residual < 1e-9


def shortest_paths(layout: tuple[str, ...]) -> np.ndarray:
    """Moves from each cell to the nearest terminal cell, by breadth-first search."""
    rows, cols = len(layout), len(layout[0])
    dist = np.full((rows, cols), -1)
    queue = deque((r, c) for r in range(rows) for c in range(cols) if layout[r][c] == "T")
    for r, c in queue:
        dist[r, c] = 0
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < rows and 0 <= cc < cols and dist[rr, cc] < 0:
                dist[rr, cc] = dist[r, c] + 1
                queue.append((rr, cc))
    return dist.reshape(-1)


@pytest.mark.parametrize("layout", [("T...", "....", "....", "...T"), ("S....", "...T.", ".....")])
def test_undiscounted_values_are_minus_the_shortest_path(layout):
    mdp = grid_mdp(layout)
    solution = value_iteration(mdp, gamma=1.0)
    np.testing.assert_array_equal(solution.V, -shortest_paths(layout))
    assert solution.residual == 0
    assert solution.iterations == shortest_paths(layout).max() + 1  # the last sweep changes nothing
    np.testing.assert_array_equal(policy_iteration(mdp, gamma=1.0).V, solution.V)


def test_random_policy_values_of_sutton_and_barto_figure_4_1():
    # Sutton & Barto (2018), Figure 4.1, k = ∞: the equiprobable random policy, γ = 1
    expected = [[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]]
    V = evaluate_policy(grid_mdp(), np.full((16, 4), 0.25), gamma=1.0)
    np.testing.assert_allclose(V.reshape(4, 4), expected, atol=1e-9)


def test_slippery_frozen_lake_policy_succeeds_as_often_as_monte_carlo_says():
    env = make_env("FrozenLake-v1")  # is_slippery=True, 100 steps at most
    mdp = mdp_from_env(env)
    solution = value_iteration(mdp, gamma=0.99)
    assert solution.residual < 1e-8
    found = policy_iteration(mdp, gamma=0.99)
    np.testing.assert_allclose(found.V, solution.V, atol=1e-7)
    # the chance of reaching the goal within the time limit: the state distribution carried
    # 100 steps through the policy's transitions (terminal states keep their mass)
    P_pi = mdp.P[np.arange(16), solution.policy]
    reached = (mdp.start @ np.linalg.matrix_power(P_pi, 100))[15]
    episodes, successes = 1_000, 0
    for i in range(episodes):
        s, _ = env.reset(seed=i)
        done, reward = False, 0.0
        while not done:
            s, reward, terminated, truncated, _ = env.step(int(solution.policy[s]))
            done = terminated or truncated
        successes += reward == 1.0
    rate = successes / episodes
    stderr = np.sqrt(reached * (1 - reached) / episodes)
    assert abs(rate - reached) < 3 * stderr, (rate, reached, stderr)
    # with no discount and no time limit the optimal policy reaches the goal 82 times in 100
    assert value_iteration(mdp, gamma=1.0).V[0] == pytest.approx(0.8235, abs=1e-4)


def test_bad_discounts_and_endless_episodes_in_one_line():
    mdp = grid_mdp()
    for gamma in (1.5, -0.1, float("nan")):
        for solve in (value_iteration, policy_iteration):
            with pytest.raises(ConfigError, match="gamma") as e:
                solve(mdp, gamma)
            assert "\n" not in str(e.value)
    stay = np.zeros(16, dtype=int) + 2  # always up: the top row never ends
    with pytest.raises(InputError, match="never ends"):
        evaluate_policy(mdp, stay, gamma=1.0)
    # a state that cannot reach the terminal one: with γ = 1 its value has no bound
    P = np.zeros((2, 1, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1
    trap = FiniteMDP(P, np.array([[-1.0], [0.0]]), [False, True], [1.0, 0.0])
    with pytest.raises(InputError, match="gamma < 1"):
        value_iteration(trap, gamma=1.0, max_iterations=50)
    assert value_iteration(trap, gamma=0.5).V[0] == pytest.approx(-2.0)
    with pytest.raises(InputError, match="action index per state"):
        evaluate_policy(mdp, np.zeros(3, dtype=int), 0.9)
