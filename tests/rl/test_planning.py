"""rl.planning: value and policy iteration as agents of `striate rl train` — the same plan as
dynamic programming called directly, saved and loaded, evaluated in the env itself, the picture
only where the states are a grid, and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from striate.errors import ConfigError, InputError
from striate.rl.dynamic_programming import value_iteration
from striate.rl.envs import make_env
from striate.rl.gridworld import GRID_WORLD, grid_mdp, mdp_from_env
from striate.rl.planning import PolicyIteration, ValueIteration
from striate.rl.run import evaluate_run, train_agent
from striate.rl.tabular import QLearning


@pytest.mark.parametrize("cls", [ValueIteration, PolicyIteration])
def test_plan_matches_dynamic_programming_and_acts_on_it(cls):
    agent = cls(GRID_WORLD, gamma=1.0)
    solution = agent.solve()
    reference = value_iteration(grid_mdp(), gamma=1.0)
    np.testing.assert_allclose(solution.V, reference.V, atol=1e-9)
    # an optimal action leads as quickly to a terminal cell: Q of the chosen action is the max
    states = np.arange(16)
    chosen = reference.Q[states, agent.act(states)]
    np.testing.assert_allclose(chosen, reference.Q.max(1), atol=1e-9)


def test_frozen_lake_plan_wins_as_often_as_its_value_says(tmp_path):
    run = train_agent("value-iteration", "FrozenLake-v1", out=tmp_path / "vi", eval_episodes=400,
                      options={"gamma": 1.0}, progress=False)  # fmt: skip
    # reward 1 at the goal only: the chance of reaching it within the 100-step time limit,
    # by 100 backups of the plan's policy on the model (V(start) itself has no time limit)
    mdp, policy = run.agent.mdp, run.agent.solution.policy
    states = np.arange(mdp.n_states)
    R_pi, C_pi = mdp.R[states, policy], mdp.continuing[states, policy]
    V = np.zeros(mdp.n_states)
    for _ in range(100):
        V = R_pi + C_pi @ V
    win = V[0]
    assert win < run.agent.solution.V[0]
    assert abs(run.evaluations[0]["mean"] - win) < 4 * np.sqrt(win * (1 - win) / 400)
    assert (tmp_path / "vi" / "policy_value.png").is_file()
    assert not (tmp_path / "vi" / "learning_curve.png").exists()  # nothing was learnt over time
    again = evaluate_run(tmp_path / "vi", episodes=400)  # the plan loaded from the checkpoint
    assert again["mean"] == run.evaluations[0]["mean"]


def test_save_and_load_and_a_plan_for_another_env():
    agent = PolicyIteration("FrozenLake-v1")
    agent.solve()
    fresh = PolicyIteration("FrozenLake-v1")
    fresh.load_state_dict(agent.state_dict())
    np.testing.assert_array_equal(fresh.act(np.arange(16)), agent.act(np.arange(16)))
    with pytest.raises(InputError, match="plan again"):
        PolicyIteration("Taxi-v4").load_state_dict(agent.state_dict())


def test_pictures_only_on_a_grid():
    taxi = ValueIteration("Taxi-v4")
    taxi.solve()
    assert taxi.figures() == {}
    grid = ValueIteration(GRID_WORLD)
    grid.solve()
    assert list(grid.figures()) == ["policy_value.png"]


def test_q_learning_draws_its_greedy_policy(tmp_path):
    run = train_agent("q-learning", GRID_WORLD, out=tmp_path / "q", steps=2_000,
                      eval_every=2_000, eval_episodes=2, progress=False)  # fmt: skip
    assert (tmp_path / "q" / "policy_value.png").is_file()
    assert list(run.agent.figures()) == ["policy_value.png"]
    assert QLearning("Taxi-v4").figures() == {}


def test_bad_input_one_line_each():
    with pytest.raises(InputError, match="finite set of states"):
        ValueIteration("CartPole-v1")
    with pytest.raises(ConfigError, match="did you mean 'gamma'"):
        ValueIteration(GRID_WORLD, gama=0.9)
    with pytest.raises(ConfigError, match="gamma"):
        ValueIteration(GRID_WORLD, gamma=1.5)
    with pytest.raises(InputError, match="solve"):
        ValueIteration(GRID_WORLD).act(np.array([0]))
    agent = ValueIteration(GRID_WORLD)
    agent.solve()
    with pytest.raises(InputError, match="state indices"):
        agent.act(np.array([99]))
    assert mdp_from_env(make_env(GRID_WORLD)).n_states == 16
