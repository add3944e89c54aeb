"""rl.gridworld: the lecture's grid world as tensors and as a gymnasium env, and the tensors of
gymnasium's toy-text envs read from their tables, checked against stepping the envs themselves."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from striate.errors import InputError
from striate.rl import env_state
from striate.rl.envs import make_env
from striate.rl.gridworld import (
    GRID_MOVES,
    GRID_WORLD,
    LECTURE_GRID,
    FiniteMDP,
    GridWorldEnv,
    grid_mdp,
    mdp_from_env,
)


def test_lecture_grid_moves_cost_one_and_the_border_keeps_the_agent():
    mdp = grid_mdp()
    assert mdp.P.shape == (16, 4, 16) and mdp.R.shape == (16, 4)
    np.testing.assert_allclose(mdp.P.sum(2), 1.0)
    assert np.flatnonzero(mdp.terminal).tolist() == [0, 15]
    # from the cell (1, 2) = state 6: right, left, up, down
    assert mdp.P[6].argmax(1).tolist() == [7, 5, 2, 10]
    # from the top-right corner (0, 3): right and up bump into the border
    assert mdp.P[3].argmax(1).tolist() == [3, 2, 3, 7]
    assert (mdp.R[~mdp.terminal] == -1).all() and (mdp.R[mdp.terminal] == 0).all()
    # entering a terminal cell ends the episode; nothing continues from one
    assert mdp.ends[1, 1, 0] == 1 and mdp.continuing[0].sum() == 0
    np.testing.assert_allclose(mdp.start[~mdp.terminal], 1 / 14)


def test_env_follows_the_mdp_and_passes_gymnasiums_checker():
    check_env(GridWorldEnv(), skip_render_check=True)
    mdp = grid_mdp()
    env = make_env(GRID_WORLD, seed=3)
    rng = np.random.default_rng(0)
    s, _ = env.reset(seed=3)
    for _ in range(200):
        a = int(rng.integers(4))
        s2, r, terminated, truncated, _ = env.step(a)
        assert mdp.P[s, a, s2] == 1 and r == mdp.R[s, a] == -1
        assert terminated == mdp.terminal[s2] and not truncated
        s = env.reset()[0] if terminated else s2
        assert not mdp.terminal[s]


def test_start_cell_and_custom_layout():
    mdp = grid_mdp(("S.T", "..."), reward=-2.0)
    assert mdp.shape == (2, 3) and mdp.start.tolist() == [1, 0, 0, 0, 0, 0]
    env = GridWorldEnv(("S.T", "..."))
    assert env.reset(seed=0)[0] == 0
    assert env.step(0)[:3] == (1, -1.0, False) and env.step(0)[:3] == (2, -1.0, True)


def test_env_state_resumes_mid_episode():
    a, b = make_env(GRID_WORLD), make_env(GRID_WORLD)
    a.reset(seed=5)
    b.reset(seed=6)
    a.step(2)
    env_state.restore(b, env_state.capture(a))
    for action in (3, 0, 3, 1):
        assert a.step(action) == b.step(action)
    assert a.reset() == b.reset()  # the random start continues the same generator


def test_frozen_lake_table_matches_stepping_the_env():
    env = make_env("FrozenLake-v1", is_slippery=False)
    mdp = mdp_from_env(env)
    assert mdp.shape == (4, 4) and mdp.layout == ("SFFF", "FHFH", "FFFH", "HFFG")
    assert np.flatnonzero(mdp.terminal).tolist() == [5, 7, 11, 12, 15]  # holes and the goal
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(4):
            env.reset(seed=0)
            env.unwrapped.s = int(s)
            s2, r, terminated, _, _ = env.step(a)
            assert mdp.P[s, a, s2] == 1 and mdp.R[s, a] == r
            assert bool(mdp.ends[s, a, s2]) == terminated
            row, col = divmod(int(s), 4)  # the drawn step leads to s2 unless a border stops it
            step = np.clip(np.array([row, col]) + mdp.moves[a], 0, 3)
            assert step[0] * 4 + step[1] == s2


def test_slippery_frozen_lake_sums_repeated_outcomes():
    mdp = mdp_from_env(make_env("FrozenLake-v1"))
    # left in the corner: slips left or up (both stay: 2/3) or down (1/3)
    assert mdp.P[0, 0, 0] == pytest.approx(2 / 3) and mdp.P[0, 0, 4] == pytest.approx(1 / 3)
    assert mdp.R[14, 2] == pytest.approx(1 / 3)  # right next to the goal reaches it 1 time in 3
    np.testing.assert_allclose(mdp.P.sum(2), 1.0)


def test_taxi_and_cliff_walking():
    taxi = mdp_from_env(make_env("Taxi-v4"))
    assert taxi.P.shape == (500, 6, 500) and taxi.terminal.sum() == 4 and taxi.shape is None
    assert taxi.R.max() == 20 and taxi.R.min() == -10
    np.testing.assert_allclose(taxi.start.sum(), 1.0)
    cliff = mdp_from_env(make_env("CliffWalking-v1"))
    assert cliff.shape == (4, 12) and np.flatnonzero(cliff.terminal).tolist() == [47]
    assert cliff.R[36, 1] == -100 and cliff.P[36, 1, 36] == 1  # into the cliff: back to start


def test_grid_world_env_gives_its_own_mdp():
    env = make_env(GRID_WORLD)
    assert mdp_from_env(env) is env.unwrapped.mdp
    np.testing.assert_array_equal(env.unwrapped.mdp.moves, GRID_MOVES)


@pytest.mark.parametrize(
    "layout, words",
    [(("T..", ".."), "equal length"), (("T.#",), "'#'"), (("...",), "terminal"), ((), "rows")],
)
def test_bad_layouts_say_so_in_one_line(layout, words):
    with pytest.raises(InputError, match=words) as e:
        grid_mdp(layout)
    assert "\n" not in str(e.value)


def test_bad_inputs_one_line():
    with pytest.raises(InputError, match="finite") as e:
        mdp_from_env(make_env("CartPole-v1"))
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="probability distribution"):
        FiniteMDP(np.full((2, 1, 2), 0.3), np.zeros((2, 1)), [True, False], [0, 1])
    with pytest.raises(InputError, match="states×actions×states"):
        FiniteMDP(np.ones((2, 1, 3)), np.zeros((2, 1)), [True, False], [0, 1])
    assert grid_mdp(LECTURE_GRID).layout == LECTURE_GRID
