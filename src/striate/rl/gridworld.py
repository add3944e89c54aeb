"""Finite Markov decision processes as tensors, and the lecture's grid world (lecture 14: every move
costs −1, the episode ends in a grey terminal cell, four moves; a move into the border leaves the
agent where it is).

    mdp = grid_mdp()                              # the grid world as P[s, a, s'], R[s, a], …
    env = make_env(GRID_WORLD, seed=0)            # the same world as a gymnasium env
    mdp = mdp_from_env(make_env("FrozenLake-v1")) # any toy-text env's `env.unwrapped.P`

The text of the lecture lost its figure, so the default layout is Sutton & Barto's Example 4.1
(Reinforcement Learning: An Introduction, 2nd ed., 2018), which has the lecture's rules: a 4×4 grid
with terminal cells in two opposite corners. Any layout of "T" (terminal), "." (cell) and "S"
(start) rows can be given instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from striate.errors import InputError
from striate.rl.envs import discrete_actions, discrete_states

GRID_WORLD = "striate/GridWorld-v0"
LECTURE_GRID = ("T...", "....", "....", "...T")
# the lecture's actions in its order: right, left, up, down as (row, column) steps
GRID_ACTIONS = ("right", "left", "up", "down")
GRID_MOVES = np.array([[0, 1], [0, -1], [-1, 0], [1, 0]])

# the (row, column) step of each action of gymnasium's grid-shaped toy-text envs, for drawing
_TOY_TEXT_MOVES = {
    "FrozenLakeEnv": (("left", "down", "right", "up"), [[0, -1], [1, 0], [0, 1], [-1, 0]]),
    "CliffWalkingEnv": (("up", "right", "down", "left"), [[-1, 0], [0, 1], [1, 0], [0, -1]]),
}


@dataclass(frozen=True, eq=False)
class FiniteMDP:
    """An episodic MDP with finite states and actions.

    P[s, a, s']: the probability of moving from s to s' with action a; R[s, a]: the expected
    reward of taking a in s; ends[s, a, s']: the part of P[s, a, s'] after which the episode is
    over (None: exactly the moves into a terminal state); terminal[s]: the states an episode ends
    in; start[s]: the distribution of the first state. For drawing: shape (rows, columns) of a
    grid whose cells are the states in row-major order, moves[a] the (row, column) step of each
    action, layout the grid's letters.
    """

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    start: np.ndarray
    ends: np.ndarray | None = None
    shape: tuple[int, int] | None = None
    moves: np.ndarray | None = None
    action_names: tuple[str, ...] | None = None
    layout: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        P, R = np.asarray(self.P, dtype=np.float64), np.asarray(self.R, dtype=np.float64)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2]:
            raise InputError(
                f"FiniteMDP: P must be states×actions×states and R states×actions, got P "
                f"{P.shape} and R {R.shape}; build P[s, a, s'] and R[s, a]"
            )
        if (P < 0).any() or not np.allclose(P.sum(2), 1.0, atol=1e-9):
            worst = np.abs(P.sum(2) - 1).max()
            raise InputError(
                "FiniteMDP: each P[s, a, :] must be a probability distribution (off by "
                f"{worst:.3g}); check the transition table"
            )
        terminal = np.asarray(self.terminal, dtype=bool).reshape(-1)
        ends = P * terminal[None, None, :] if self.ends is None else np.asarray(self.ends, float)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "terminal", terminal)
        object.__setattr__(self, "start", np.asarray(self.start, dtype=np.float64))
        object.__setattr__(self, "ends", ends)
        if self.moves is not None:
            object.__setattr__(self, "moves", np.asarray(self.moves).reshape(self.n_actions, 2))

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    @property
    def continuing(self) -> np.ndarray:
        """P[s, a, s'] of the moves after which the episode goes on (what the Bellman equation
        sums over: an ended episode earns nothing more)."""
        return self.P - self.ends


def grid_mdp(layout: Sequence[str] = LECTURE_GRID, reward: float = -1.0) -> FiniteMDP:
    """The grid world of `layout` (rows of "T" terminal, "." cell, "S" start; without an "S" the
    first state is drawn uniformly from the non-terminal cells): `reward` for every move, a move
    into the border leaves the agent in place, a terminal cell ends the episode."""
    grid = _check_layout(layout)
    rows, cols = grid.shape
    n = rows * cols
    terminal = (grid == "T").reshape(-1)
    cell = np.stack(np.divmod(np.arange(n), cols), axis=1)  # (n, 2) row, column of each state
    target = cell[:, None, :] + GRID_MOVES[None, :, :]  # (n, 4, 2)
    target = np.clip(target, 0, [rows - 1, cols - 1])
    next_state = target[..., 0] * cols + target[..., 1]
    next_state[terminal] = np.arange(n)[terminal, None]  # an ended episode stays put
    P = np.zeros((n, 4, n))
    np.put_along_axis(P, next_state[..., None], 1.0, axis=2)
    R = np.where(terminal[:, None], 0.0, float(reward)) * np.ones((1, 4))
    start = (grid == "S").reshape(-1).astype(np.float64)
    if start.sum() == 0:
        start = (~terminal).astype(np.float64)
    return FiniteMDP(P, R, terminal, start / start.sum(), shape=(rows, cols), moves=GRID_MOVES,
                     action_names=GRID_ACTIONS, layout=tuple(layout))  # fmt: skip


def _check_layout(layout: Sequence[str]) -> np.ndarray:
    rows = [layout] if isinstance(layout, str) else list(layout)
    if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise InputError(
            f"grid world: the layout must be rows of equal length, got {layout!r}; "
            'e.g. ("T...", "....", "....", "...T")'
        )
    grid = np.array([list(r) for r in rows])
    odd = sorted(set(grid.reshape(-1)) - set("TS."))
    if odd:
        raise InputError(
            f"grid world: the layout has {odd}; use 'T' (terminal), '.' (cell) and 'S' (start)"
        )
    if not (grid == "T").any() or (grid == "T").all():
        raise InputError(
            f"grid world: the layout {tuple(rows)} needs at least one terminal cell 'T' and one "
            "cell that is not"
        )
    return grid


class GridWorldEnv(gym.Env):
    """The grid world as a gymnasium env: observations and actions are Discrete (state = row ×
    columns + column; actions right, left, up, down), reward −1 a move, terminated in a terminal
    cell. Registered as `GRID_WORLD` (100 steps at most)."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, layout: Sequence[str] = LECTURE_GRID, reward: float = -1.0,
                 render_mode: str | None = None):  # fmt: skip
        self.mdp = grid_mdp(layout, reward)
        n = self.mdp.n_states
        self.observation_space = gym.spaces.Discrete(n)
        self.action_space = gym.spaces.Discrete(len(GRID_ACTIONS))
        self.render_mode = render_mode
        # plain tuples: fast to index, and not mistaken for state by a checkpoint of the env
        self._next = tuple(map(tuple, self.mdp.P.argmax(2).tolist()))
        self._reward = tuple(map(tuple, self.mdp.R.tolist()))
        self._terminal = tuple(self.mdp.terminal.tolist())
        self.s = int(np.flatnonzero(self.mdp.start)[0])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.s = int(self.np_random.choice(self.mdp.n_states, p=self.mdp.start))
        return self.s, {}

    def step(self, action):
        a = int(action)
        s, self.s = self.s, self._next[self.s][a]
        return self.s, self._reward[s][a], self._terminal[self.s], False, {}

    def render(self):
        rows, cols = self.mdp.shape
        letters = np.array([list(r) for r in self.mdp.layout])
        if self.render_mode == "ansi":
            letters.reshape(-1)[self.s] = "@"
            return "\n".join("".join(r) for r in letters) + "\n"
        if self.render_mode == "rgb_array":
            shade = np.where(letters == "T", 160, 255).astype(np.uint8)
            shade.reshape(-1)[self.s] = 0
            image = np.repeat(np.repeat(shade, 32, 0), 32, 1)[..., None].repeat(3, 2)
            image[::32], image[:, ::32] = 90, 90  # grid lines
            return image
        return None


def mdp_from_env(env: gym.Env) -> FiniteMDP:
    """The MDP of a toy-text env (FrozenLake, Taxi, CliffWalking, the grid world) from its table
    `env.unwrapped.P[s][a] = [(p, s', r, done), …]`: P and R summed over repeated outcomes, the
    moves that end the episode in `ends`, terminal = the states such a move enters."""
    n_states = discrete_states(env, "mdp_from_env")
    n_actions = discrete_actions(env, "mdp_from_env")
    inner = env.unwrapped
    if isinstance(inner, GridWorldEnv):
        return inner.mdp
    name = env.spec.id if env.spec is not None else type(inner).__name__
    table = getattr(inner, "P", None)
    if not isinstance(table, dict) or getattr(inner, "fickle_passenger", False):
        raise InputError(
            f"mdp_from_env: {name} has no complete transition table env.unwrapped.P "
            "({s: {a: [(p, s', r, done)]}}); use FrozenLake-v1, Taxi-v4, CliffWalking-v1 or "
            "the grid world"
        )
    outcomes = [
        (s, a, p, s2, r, d)
        for s, by_action in table.items()
        for a, listed in by_action.items()
        for p, s2, r, d in listed
    ]
    rows = np.array(outcomes, dtype=np.float64)
    s, a, s2 = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 3].astype(int)
    p, r, done = rows[:, 2], rows[:, 4], rows[:, 5]
    P = np.zeros((n_states, n_actions, n_states))
    ends = np.zeros_like(P)
    R = np.zeros((n_states, n_actions))
    np.add.at(P, (s, a, s2), p)
    np.add.at(ends, (s, a, s2), p * done)
    np.add.at(R, (s, a), p * r)
    terminal = ends.sum((0, 1)) > 0
    start = getattr(inner, "initial_state_distrib", None)
    start = (~terminal).astype(float) if start is None else np.asarray(start, dtype=float)
    shape, moves, action_names, layout = None, None, None, None
    if type(inner).__name__ in _TOY_TEXT_MOVES:
        action_names, moves = _TOY_TEXT_MOVES[type(inner).__name__]
        grid = inner.shape if hasattr(inner, "shape") else (inner.nrow, inner.ncol)
        shape = (int(grid[0]), int(grid[1]))
        desc = getattr(inner, "desc", None)
        if desc is not None:
            layout = tuple(b"".join(row).decode() for row in desc)
    return FiniteMDP(P, R, terminal, start / start.sum(), ends, shape, moves, action_names,
                     layout)  # fmt: skip


if GRID_WORLD not in gym.registry:
    gym.register(GRID_WORLD, entry_point=f"{__name__}:GridWorldEnv", max_episode_steps=100)
