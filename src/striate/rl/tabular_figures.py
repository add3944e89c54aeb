"""A grid MDP's value function as a heat map and its policy as arrows (the lecture's 'optimal
policy' picture), for the grid world and the grid-shaped toy-text envs (FrozenLake, CliffWalking).

    sol = value_iteration(grid_mdp(), gamma=1.0)
    fig = policy_value_figure(grid_mdp(), sol.V, sol.policy, title="grid world")
    save_figure(fig, "grid.png")
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from striate.errors import InputError
from striate.rl.gridworld import FiniteMDP


def policy_value_figure(mdp: FiniteMDP, V: np.ndarray, policy: np.ndarray,
                        title: str | None = None) -> Figure:  # fmt: skip
    """Two panels: V as a heat map with its numbers, and the policy's arrows over the grid
    (terminal cells grey, without an arrow)."""
    rows, cols = _grid(mdp)
    fig = Figure(figsize=(2.0 + 1.3 * cols, 0.6 + 0.75 * rows), layout="constrained")
    left, right = fig.subplots(1, 2)
    draw_values(left, mdp, V)
    draw_policy(right, mdp, policy)
    if title:
        fig.suptitle(title)
    return fig


def grid_figures(mdp: FiniteMDP, V: np.ndarray, policy: np.ndarray,
                 title: str) -> dict[str, Figure]:  # fmt: skip
    """{"policy_value.png": the two panels} where the states are the cells of a grid whose moves
    are known, else {} (Taxi, or an MDP without a picture)."""
    if mdp.shape is None or mdp.moves is None or mdp.shape[0] * mdp.shape[1] != mdp.n_states:
        return {}
    return {"policy_value.png": policy_value_figure(mdp, V, policy, title)}


def draw_values(ax: Axes, mdp: FiniteMDP, V: np.ndarray) -> None:
    """V[s] as a heat map on the grid, each cell with its value (and its layout letter)."""
    rows, cols = _grid(mdp)
    values = np.asarray(V, dtype=np.float64).reshape(rows, cols)
    image = ax.imshow(values, cmap="viridis")
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="V(s)")
    middle = 0.5 * (np.nanmin(values) + np.nanmax(values))
    for (r, c), v in np.ndenumerate(values):
        text = f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        letter = _letter(mdp, r, c)
        ax.text(c, r, f"{letter}\n{text}" if letter else text, ha="center", va="center",
                fontsize=8, color="black" if v > middle else "white")  # fmt: skip
    _cells(ax, rows, cols)
    ax.set_title("value V(s)")


def draw_policy(ax: Axes, mdp: FiniteMDP, policy: np.ndarray) -> None:
    """An arrow per non-terminal cell along the step of its action (quiver U = column step,
    V = −row step, as screen y points up); terminal cells grey."""
    rows, cols = _grid(mdp)
    if mdp.moves is None:
        raise InputError(
            "draw_policy: the MDP does not say which way its actions move; set FiniteMDP.moves"
        )
    policy = np.asarray(policy).reshape(-1)
    ax.imshow(np.where(mdp.terminal, 0.75, 1.0).reshape(rows, cols), cmap="gray", vmin=0,
              vmax=1)  # fmt: skip
    live = np.flatnonzero(~mdp.terminal)
    r, c = np.divmod(live, cols)
    step = mdp.moves[policy[live]]
    ax.quiver(c, r, step[:, 1], -step[:, 0], pivot="middle", angles="uv", scale_units="xy",
              scale=1.6, width=0.1 / max(rows, cols), color="tab:red")  # fmt: skip
    for s in np.flatnonzero(mdp.terminal):
        rr, cc = divmod(int(s), cols)
        ax.text(cc, rr, _letter(mdp, rr, cc) or "T", ha="center", va="center", fontsize=10)
    _cells(ax, rows, cols)
    ax.set_title("policy")


def _grid(mdp: FiniteMDP) -> tuple[int, int]:
    if mdp.shape is None or mdp.shape[0] * mdp.shape[1] != mdp.n_states:
        raise InputError(
            f"tabular figures: the MDP's {mdp.n_states} states are not the cells of a grid "
            "(FiniteMDP.shape); draw the grid world, FrozenLake or CliffWalking"
        )
    return mdp.shape


def _letter(mdp: FiniteMDP, r: int, c: int) -> str:
    letter = mdp.layout[r][c] if mdp.layout is not None else ""
    return "" if letter in ".F" else letter


def _cells(ax: Axes, rows: int, cols: int) -> None:
    ax.set_xticks(np.arange(-0.5, cols), minor=True)
    ax.set_yticks(np.arange(-0.5, rows), minor=True)
    ax.grid(which="minor", color="black", linewidth=0.5)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
