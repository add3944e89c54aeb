"""rl.tabular (Q-learning) against value iteration's optimal values, its agent interface (exact
resume, the job of rl.run), ε-greedy frequencies, and the figures' arrows and heat map."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import AxesImage
from matplotlib.quiver import Quiver

from striate.errors import ConfigError, InputError
from striate.rl import env_state
from striate.rl import run as rl_run
from striate.rl.dynamic_programming import evaluate_policy, value_iteration
from striate.rl.envs import make_env
from striate.rl.gridworld import GRID_WORLD, grid_mdp, mdp_from_env
from striate.rl.tabular import QLearning
from striate.rl.tabular_figures import policy_value_figure


def test_q_learning_finds_the_grid_worlds_optimal_values():
    mdp = grid_mdp()
    best = value_iteration(mdp, gamma=0.9)
    agent = QLearning(GRID_WORLD, seed=0, alpha=0.5, gamma=0.9, epsilon=0.3)
    stats = agent.train(6_000, progress=False)
    assert stats["env_steps"] == 6_000 and stats["episodes"] == len(agent.history) > 1_000
    # its greedy policy is optimal, and the table converged to Q*
    np.testing.assert_allclose(evaluate_policy(mdp, agent.policy, 0.9), best.V, atol=1e-9)
    live = ~mdp.terminal
    np.testing.assert_allclose(agent.q[live], best.Q[live], atol=1e-3)
    assert (agent.q[~live] == 0).all()  # nothing is learnt in a cell where episodes have ended


def test_q_learning_reaches_the_goal_of_deterministic_frozen_lake():
    env = make_env("FrozenLake-v1", is_slippery=False)
    agent = QLearning(env, seed=1, alpha=0.5, gamma=0.95, epsilon=1.0, exploration_steps=4_000)
    agent.train(6_000, progress=False)
    mdp = mdp_from_env(env)
    best = value_iteration(mdp, gamma=0.95)
    s, _ = env.reset(seed=0)
    path = [s]
    for _ in range(10):
        s, reward, terminated, _, _ = env.step(int(agent.act(np.array([s]))[0]))
        path.append(s)
        if terminated:
            break
    assert reward == 1.0 and len(path) == 7  # the goal in the 6 moves of a shortest path
    assert evaluate_policy(mdp, agent.policy, 0.95)[0] == pytest.approx(best.V[0])  # 0.95^5
    assert agent.q[0].max() == pytest.approx(best.V[0], abs=0.02)


def test_history_rows_and_training_continues():
    agent = QLearning(GRID_WORLD, seed=0)
    agent.train(300, progress=False)
    stats = agent.train(200, progress=False)
    assert agent.env_steps == stats["env_steps"] == 500
    rows = agent.history
    assert set(rows[0]) == {"env_steps", "episode", "return", "length"}
    assert [r["episode"] for r in rows] == list(range(len(rows)))
    assert all(r["return"] == -r["length"] for r in rows)  # −1 a move
    assert stats["mean_return_last_10"] == np.mean([r["return"] for r in rows[-10:]])


def test_exact_resume_from_state_dict_and_env_state():
    a = QLearning("FrozenLake-v1", seed=3, epsilon=0.5)
    a.train(1_537, progress=False)
    b = QLearning("FrozenLake-v1", seed=99, epsilon=0.5)
    b.load_state_dict(a.state_dict())
    env_state.restore(b.env, env_state.capture(a.env))
    b.history = list(a.history)  # the job keeps the history beside the state
    a.train(2_000, progress=False)
    b.train(2_000, progress=False)
    np.testing.assert_array_equal(a.q, b.q)
    assert a.history[-5:] == b.history[-5:]


def test_epsilon_greedy_frequencies():
    agent = QLearning(GRID_WORLD, seed=0, epsilon=0.2)
    agent.q[5] = [0.0, 1.0, 0.0, 0.0]
    actions = agent.act(np.full(20_000, 5), deterministic=False)
    share = np.bincount(actions, minlength=4) / len(actions)
    expected = np.array([0.05, 0.85, 0.05, 0.05])  # 1 − ε + ε/4 for the best, ε/4 for the rest
    np.testing.assert_allclose(share, expected, atol=4 * np.sqrt(0.85 * 0.15 / 20_000))
    assert agent.act(np.array([5, 5]), deterministic=True).tolist() == [1, 1]
    schedule = QLearning(GRID_WORLD, epsilon=0.1, epsilon_start=1.0, exploration_steps=100)
    assert schedule.epsilon() == 1.0
    schedule.train(50, progress=False)
    assert schedule.epsilon() == pytest.approx(0.55)


def test_the_rl_job_trains_and_evaluates_it(tmp_path):
    run = rl_run.train_agent("q-learning", GRID_WORLD, out=tmp_path / "q", steps=3_000,
                             eval_every=1_500, eval_episodes=5, progress=False,
                             options={"alpha": 0.5, "gamma": 1.0})  # fmt: skip
    # evaluation episodes start at the seeded cells; the optimal return is minus their distance
    V = value_iteration(grid_mdp(), gamma=1.0).V
    starts = [make_env(GRID_WORLD).reset(seed=1_000 + i)[0] for i in range(5)]
    assert run.evaluations[-1]["mean"] == pytest.approx(np.mean(V[starts]))
    agent, _ = rl_run.load_agent(tmp_path / "q")
    np.testing.assert_array_equal(agent.q, run.agent.q)


def test_bad_inputs_in_one_line():
    with pytest.raises(InputError, match="finite set of states") as e:
        QLearning("CartPole-v1")
    assert "\n" not in str(e.value)
    bad = [({"gamma": 1.5}, "gamma"), ({"alpha": 0}, "alpha"), ({"epsilon": -0.1}, "epsilon"),
           ({"alpah": 0.1}, "did you mean")]  # fmt: skip
    for options, words in bad:
        with pytest.raises(ConfigError, match=words) as e:
            QLearning(GRID_WORLD, **options)
        assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="state indices"):
        QLearning(GRID_WORLD).act(np.array([16]))
    with pytest.raises(InputError, match="same env"):
        QLearning(GRID_WORLD).load_state_dict(QLearning("Taxi-v4").state_dict())


@pytest.mark.parametrize("env_id", [None, "FrozenLake-v1", "FrozenLake8x8-v1"])
def test_figures_point_along_the_policy_and_hold_the_values(env_id):
    mdp = grid_mdp() if env_id is None else mdp_from_env(make_env(env_id))
    solution = value_iteration(mdp, gamma=0.95)
    fig = policy_value_figure(mdp, solution.V, solution.policy, title="optimal")
    values_ax, policy_ax = fig.axes[:2]
    heat = [im for im in values_ax.get_images() if isinstance(im, AxesImage)][0]
    np.testing.assert_array_equal(heat.get_array(), solution.V.reshape(mdp.shape))
    arrows = [c for c in policy_ax.collections if isinstance(c, Quiver)][0]
    live = np.flatnonzero(~mdp.terminal)
    rows, cols = np.divmod(live, mdp.shape[1])
    np.testing.assert_array_equal(arrows.X, cols)
    np.testing.assert_array_equal(arrows.Y, rows)
    step = mdp.moves[solution.policy[live]]  # (row, column) steps; screen up is −row
    np.testing.assert_array_equal(arrows.U, step[:, 1])
    np.testing.assert_array_equal(arrows.V, -step[:, 0])
    if env_id is None:  # the lecture's grid: the arrow next to the top-left terminal points to it
        assert (arrows.U[0], arrows.V[0]) == (-1, 0)


def test_figures_refuse_an_mdp_without_a_grid():
    mdp = mdp_from_env(make_env("Taxi-v4"))
    with pytest.raises(InputError, match="not the cells of a grid"):
        policy_value_figure(mdp, np.zeros(500), np.zeros(500, dtype=int))
