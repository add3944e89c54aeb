"""The job behind `striate rl train|eval`: an agent trained in a gymnasium environment into a run
folder, evaluated every so often with fixed seeds, stoppable with Ctrl-C and resumable exactly.

    run = train_agent("ppo", "CartPole-v1", steps=100_000, out="runs/rl/ppo")
    train_agent(out="runs/rl/ppo", resume=True)                    # after Ctrl-C
    scores = evaluate_run("runs/rl/ppo", episodes=10, video="runs/rl/ppo/episode.gif")

The run folder holds config.json, checkpoint.safetensors (the agent: networks, optimisers,
counters, random generators, a replay buffer, and the environment mid-episode where it can be
captured), episodes.csv (every training episode's return and length), evaluations.csv (the mean
and spread of `eval_episodes` greedy episodes after every `eval_every` steps, seeds
`eval_seed`, `eval_seed` + 1, …), learning_curve.png, eval.json, and for tabular agents on a
grid policy_value.png (the values as a heat map, the policy as arrows). A planner (value or
policy iteration) solves the environment's model instead: no steps, one evaluation.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from striate._atomic import atomic_write, save_figure, write_json
from striate.checks import one_of, positive_int
from striate.errors import ConfigError, InputError, StriateError
from striate.interrupt import stop_on_ctrl_c
from striate.outputs import check_folder, clear_folder
from striate.progress import output_console, progress_bar
from striate.rl import env_state
from striate.rl.atari import is_atari, make_atari
from striate.rl.envs import make_env
from striate.rl.planning import Planner
from striate.state_file import load_state, save_state

# the agents the job can train: name -> (module, class)
ALGORITHMS = {
    "dqn": ("striate.rl.dqn", "DQN"),
    "reinforce": ("striate.rl.reinforce", "Reinforce"),
    "a2c": ("striate.rl.a2c", "A2C"),
    "ppo": ("striate.rl.ppo", "PPO"),
    "q-learning": ("striate.rl.tabular", "QLearning"),
    "value-iteration": ("striate.rl.planning", "ValueIteration"),
    "policy-iteration": ("striate.rl.planning", "PolicyIteration"),
}
MADE_BY = "striate rl train"
UNIT = 1_000  # environment steps between looks at Ctrl-C
CHECKPOINT = "checkpoint.safetensors"


@dataclass
class RLConfig:
    """The settings of `train_agent` (config.json). `options` are the algorithm's own
    hyper-parameters (its Config dataclass's fields) by name."""

    algo: str = "ppo"
    env: str = "CartPole-v1"
    steps: int = 100_000
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_seed: int = 1_000
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RLRun:
    out: Path | None
    agent: Any
    evaluations: list[dict[str, float]]
    interrupted: bool


def build_agent(config: RLConfig) -> Any:
    """The untrained agent of `config`."""
    algo = one_of("rl train", "algorithm", config.algo, ALGORITHMS)
    module, name = ALGORITHMS[algo]
    cls = getattr(importlib.import_module(module), name)
    return cls(config.env, seed=config.seed, device=config.device, **config.options)


def evaluate(agent: Any, env_id: str, episodes: int = 10, seed: int = 1_000,
             frames: list[np.ndarray] | None = None) -> dict[str, Any]:  # fmt: skip
    """`episodes` greedy episodes with seeds seed, seed + 1, …: mean, std, min and max return.
    With `frames`, the first episode's rendered frames are appended to it."""
    episodes = positive_int("rl eval", "episodes", episodes, error=InputError)
    returns, lengths = [], []
    for i in range(episodes):
        record = frames is not None and i == 0
        make = make_atari if is_atari(env_id) else make_env  # the frames the agent learnt on
        env = make(env_id, render_mode="rgb_array") if record else make(env_id)
        obs, _ = env.reset(seed=seed + i)
        total, length, done = 0.0, 0, False
        while not done:
            if record:
                frames.append(env.render())
            action = agent.act(np.asarray(obs)[None], deterministic=True)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total, length, done = total + float(reward), length + 1, terminated or truncated
        env.close()
        returns.append(total)
        lengths.append(length)
    r = np.asarray(returns)
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()),
            "max": float(r.max()), "mean_length": float(np.mean(lengths)),
            "returns": returns}  # fmt: skip


def train_agent(
    algo: str = "ppo",
    env: str = "CartPole-v1",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> RLRun:
    """Train `algo` in `env` (settings: `RLConfig`'s fields), evaluating every `eval_every`
    steps; with `out`, write the run folder (module docstring). `resume=True` continues the run
    stopped in `out` exactly."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("rl train: resume needs the run folder (out=...)")
        config = _saved_config(out)
    else:
        unknown = set(settings) - set(RLConfig.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"rl train: unknown settings {sorted(unknown)}")
        config = RLConfig(algo=algo, env=env, **settings)
        positive_int("rl train", "steps", config.steps)
        positive_int("rl train", "eval_every", config.eval_every)
        positive_int("rl train", "eval_episodes", config.eval_episodes)
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    agent = build_agent(config)
    evaluations: list[dict[str, float]] = []
    if resume:
        evaluations = _load_checkpoint(out, agent)
    elif out is not None:
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"made_by": MADE_BY, "config": asdict(config)})
    if isinstance(agent, Planner):
        return _plan(agent, config, out)
    console = output_console()
    pressed = threading.Event()  # set by the first Ctrl-C
    with stop_on_ctrl_c(pressed.set):
        while agent.env_steps < config.steps and not pressed.is_set():
            start, target = time.perf_counter(), _next_evaluation(agent.env_steps, config)
            with progress_bar(f"{config.algo} {config.env}", target - agent.env_steps, "steps",
                              enabled=progress) as advance:  # fmt: skip
                while agent.env_steps < target and not pressed.is_set():
                    before = agent.env_steps
                    agent.train(min(UNIT, target - agent.env_steps), progress=False)
                    # an agent steps in whole rollouts: the last may pass the target
                    advance(min(agent.env_steps, target) - before)
            if agent.env_steps >= target:
                score = evaluate(agent, config.env, config.eval_episodes, config.eval_seed)
                evaluations.append({"env_steps": agent.env_steps, **_summary(score),
                                    "seconds": time.perf_counter() - start})  # fmt: skip
                if progress:
                    console.print(
                        f"{config.algo} {config.env}: {agent.env_steps:,} steps, evaluation "
                        f"return {score['mean']:.1f} ± {score['std']:.1f} "
                        f"({config.eval_episodes} episodes)"
                    )
            if out is not None:
                _save_checkpoint(out, agent, evaluations)
    interrupted = pressed.is_set()
    if interrupted and out is not None:
        console.print(f"interrupted; continue with: striate rl train --resume {out}")
    if out is not None and not interrupted:
        _write_results(out, config, agent, evaluations)
    return RLRun(out, agent, evaluations, interrupted)


def _plan(agent: Planner, config: RLConfig, out: Path | None) -> RLRun:
    """A planner solves its MDP at once (no environment steps, nothing to resume) and is
    evaluated like the learners."""
    start = time.perf_counter()
    agent.solve()
    score = evaluate(agent, config.env, config.eval_episodes, config.eval_seed)
    evaluations = [{"env_steps": 0, **_summary(score), "seconds": time.perf_counter() - start}]
    if out is not None:
        _save_checkpoint(out, agent, evaluations)
        _write_results(out, config, agent, evaluations)
    return RLRun(out, agent, evaluations, False)


def _next_evaluation(steps: int, config: RLConfig) -> int:
    return min((steps // config.eval_every + 1) * config.eval_every, config.steps)


def _summary(score: dict[str, Any]) -> dict[str, float]:
    return {k: score[k] for k in ("mean", "std", "min", "max")}


def _saved_config(out: Path) -> RLConfig:
    path = out / "config.json"
    try:
        saved = json.loads(path.read_text())
        if saved.get("made_by") != MADE_BY:
            raise ValueError("not made by " + MADE_BY)
        return RLConfig(**saved["config"])
    except FileNotFoundError:
        raise InputError(f"no run at {out}: give a folder made by {MADE_BY}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise InputError(f"{path} is not a readable {MADE_BY} run ({e}); train it again") from e


def _env_of(agent: Any) -> Any:
    return getattr(agent, "envs", None) or getattr(agent, "env", None)


def _save_checkpoint(out: Path, agent: Any, evaluations: list[dict[str, float]]) -> None:
    state: dict[str, Any] = {"agent": agent.state_dict(), "evaluations": evaluations,
                             "history": agent.history}  # fmt: skip
    env = _env_of(agent)
    if env is not None:
        with contextlib.suppress(InputError):  # an emulator: the resumed run starts a new episode
            state["env"] = env_state.capture(env)
    save_state(out / CHECKPOINT, state)


def _load_checkpoint(out: Path, agent: Any) -> list[dict[str, float]]:
    path = out / CHECKPOINT
    if not path.is_file():
        raise InputError(f"{out} has no {CHECKPOINT} to resume from; start the run again")
    try:
        state = load_state(path)
        agent.load_state_dict(state["agent"])
        agent.history[:] = state.get("history", [])
        if "env" in state and _env_of(agent) is not None:
            env_state.restore(_env_of(agent), state["env"])
    except (StriateError, KeyError, RuntimeError, ValueError) as e:
        raise InputError(f"{path} does not fit this run ({e}); start the run again") from e
    return list(state.get("evaluations", []))


def _write_results(out: Path, config: RLConfig, agent: Any,
                   evaluations: list[dict[str, float]]) -> None:  # fmt: skip
    _write_csv(out / "episodes.csv", agent.history)
    _write_csv(out / "evaluations.csv", evaluations)
    if agent.history:
        title = f"{config.algo} on {config.env}"
        save_figure(learning_curve(agent.history, evaluations, title), out / "learning_curve.png")
    for name, figure in getattr(agent, "figures", dict)().items():
        save_figure(figure, out / name)
    final = {k: v for k, v in (evaluations[-1] if evaluations else {}).items() if k != "env_steps"}
    summary = {"env_steps": agent.env_steps, "episodes": len(agent.history), **final}
    write_json(out / "eval.json", summary)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(path, "w") as f:
        f.write(buffer.getvalue())


def learning_curve(history: list[dict[str, Any]], evaluations: list[dict[str, float]],
                   title: str) -> Figure:  # fmt: skip
    """Training episodes' returns (and their moving mean over 20) and the evaluations' mean ± std
    against environment steps."""
    fig = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    if history:
        steps = np.array([h["env_steps"] for h in history])
        returns = np.array([h["return"] for h in history], dtype=float)
        ax.plot(steps, returns, ".", ms=2, alpha=0.3, color="tab:blue", label="training episode")
        window = min(20, len(returns))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, color="tab:blue", label=f"mean of {window}")
    if evaluations:
        e_steps = np.array([e["env_steps"] for e in evaluations])
        mean = np.array([e["mean"] for e in evaluations])
        std = np.array([e["std"] for e in evaluations])
        ax.errorbar(e_steps, mean, yerr=std, color="tab:red", marker="o", ms=3, capsize=2,
                    label="evaluation (greedy)")  # fmt: skip
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def load_agent(run: str | os.PathLike) -> tuple[Any, RLConfig]:
    """The trained agent of a run folder and its settings."""
    run = Path(run)
    if not run.is_dir():
        raise InputError(f"no run folder at {run}: give a folder made by {MADE_BY}")
    config = _saved_config(run)
    agent = build_agent(config)
    _load_checkpoint(run, agent)
    return agent, config


def evaluate_run(run: str | os.PathLike, episodes: int = 10, seed: int | None = None,
                 video: str | Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Evaluate a run's agent greedily over `episodes` seeded episodes (seed: the run's
    eval_seed); with `video`, the first episode as an animated GIF."""
    agent, config = load_agent(run)
    frames: list[np.ndarray] | None = [] if video is not None else None
    score = evaluate(agent, config.env, episodes, config.eval_seed if seed is None else seed,
                     frames)  # fmt: skip
    if video is not None and frames:
        save_gif(frames, Path(video))
    return score


def save_gif(frames: list[np.ndarray], path: Path, fps: int = 25) -> None:
    """RGB frames (H×W×3 uint8) as an animated GIF, written atomically (GIF times frames in
    hundredths of a second, so 25 fps is exact)."""
    from PIL import Image

    if path.suffix.lower() != ".gif":
        raise InputError(f"--video {path}: name a .gif file")
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    with atomic_write(path, "wb") as f:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)  # fmt: skip
