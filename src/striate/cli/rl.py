"""`striate rl train|eval|envs`: agents (DQN, REINFORCE, A2C, PPO, tabular Q-learning) trained in
gymnasium environments, evaluated with fixed seeds, and watched as a GIF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from striate.cli.options import OVERWRITE, RESUME
from striate.progress import output_console

console = output_console()
app = typer.Typer(
    help="Reinforcement learning: train an agent in a gymnasium environment, evaluate it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

RUN = typer.Argument(metavar="RUN", help="Run folder made by striate rl train.")


def _opt(flag: str, help: str, show_default: bool = True) -> typer.models.OptionInfo:  # noqa: A002
    return typer.Option(flag, help=help, show_default=show_default)


@app.command()
def train(
    algo: Annotated[
        str | None,
        typer.Argument(
            metavar="ALGO",
            help="dqn, reinforce, a2c, ppo, q-learning, value-iteration or policy-iteration.",
            show_default=False,
        ),
    ] = None,
    env: Annotated[str, _opt("--env", "A gymnasium environment id.")] = "CartPole-v1",
    steps: Annotated[
        int, _opt("--steps", "Environment steps to train for (planners take none).")
    ] = 100_000,
    seed: Annotated[int, _opt("--seed", "Seed of the networks, the environment and actions.")] = 0,
    eval_every: Annotated[
        int, _opt("--eval-every", "Evaluate (greedy, fixed seeds) after this many steps.")
    ] = 10_000,
    eval_episodes: Annotated[int, _opt("--eval-episodes", "Episodes per evaluation.")] = 10,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            show_default=False,
            help="An algorithm setting KEY=VALUE (VALUE read as JSON), e.g. -o "
            "learning_rate=1e-3; repeat for more.",
        ),
    ] = None,
    device: Annotated[str, _opt("--device", "cpu, cuda or cuda:N.")] = "cpu",
    out: Annotated[
        Path | None, _opt("--out", "Run folder [default: runs/rl/ALGO-ENV, or -2, -3, ...].", False)
    ] = None,
    overwrite: Annotated[bool, OVERWRITE] = False,
    resume: Annotated[Path | None, RESUME] = None,
) -> None:
    """Train an agent; the run folder gets checkpoints, episodes.csv, evaluations.csv,
    learning_curve.png, eval.json and, for tabular agents on a grid (striate/GridWorld-v0,
    FrozenLake-v1, CliffWalking-v1), policy_value.png. Ctrl-C keeps a checkpoint (--resume RUN
    continues it exactly). value-iteration and policy-iteration plan on the environment's model
    instead of stepping it."""
    from striate.cli.models import parse_options
    from striate.errors import ConfigError
    from striate.outputs import default_folder, slug
    from striate.rl.run import ALGORITHMS, train_agent

    if resume is not None:
        result = train_agent(out=resume, resume=True)
    else:
        if algo is None:
            raise ConfigError(f"give the ALGO to train: {', '.join(ALGORITHMS)}")
        out = out or default_folder(Path("runs/rl"), slug(f"{algo}-{env}"))
        result = train_agent(
            algo, env, out=out, overwrite=overwrite, steps=steps, seed=seed, device=device,
            eval_every=eval_every, eval_episodes=eval_episodes,
            options=parse_options(option or []),
        )  # fmt: skip
    if result.interrupted:
        return
    last = result.evaluations[-1]
    solution = getattr(result.agent, "solution", None)
    if solution is not None:
        console.print(
            f"{solution.iterations:,} iterations, Bellman residual {solution.residual:.1e}; "
            f"evaluation return {last['mean']:.2f} ± {last['std']:.2f}"
        )
    else:
        console.print(
            f"{result.agent.env_steps:,} steps, {len(result.agent.history):,} episodes; "
            f"evaluation return {last['mean']:.1f} ± {last['std']:.1f}"
        )
    console.print(f"run: {escape(str(result.out))}")


@app.command("eval")
def evaluate(
    run: Annotated[Path, RUN],
    episodes: Annotated[int, _opt("--episodes", "Greedy episodes to play.")] = 10,
    seed: Annotated[
        int | None, _opt("--seed", "Seed of the first episode [default: the run's].", False)
    ] = None,
    video: Annotated[
        Path | None, _opt("--video", "Save the first episode as this GIF file.", False)
    ] = None,
    overwrite: Annotated[bool, _opt("--overwrite", "Replace an existing --video file.")] = False,
) -> None:
    """Play a trained agent's greedy policy for some seeded episodes: mean return ± std."""
    from striate.errors import InputError
    from striate.rl.run import evaluate_run

    if video is not None and video.exists() and not overwrite:
        raise InputError(f"{video} exists; choose another --video or pass --overwrite")
    score = evaluate_run(run, episodes, seed, video)
    plural = "s" if episodes != 1 else ""
    console.print(
        f"{episodes} episode{plural}: return {score['mean']:.1f} ± {score['std']:.1f} "
        f"(min {score['min']:.0f}, max {score['max']:.0f}), mean length {score['mean_length']:.0f}"
    )
    if video is not None:
        console.print(f"video: {escape(str(video))}")


@app.command()
def envs(
    contains: Annotated[
        str | None,
        typer.Argument(metavar="TEXT", help="Only ids containing TEXT.", show_default=False),
    ] = None,
) -> None:
    """The environment ids gymnasium knows (ale-py's Atari games as ALE/...)."""
    from striate.rl.envs import env_ids

    ids = [i for i in env_ids() if contains is None or contains.lower() in i.lower()]
    for i in ids:
        console.print(i)
    console.print(f"{len(ids)} environments")
