"""Steps and wall time to solve CartPole-v1 (mean return ≥ 475 over 10 greedy evaluation episodes)
for striate's agents and Stable-Baselines3's, same environment, seeds, settings and machine, in one
run (issue 19).

    OMP_NUM_THREADS=1 python benchmarks/rl.py --algos ppo dqn a2c --seeds 0 1 2
    python benchmarks/rl.py --table              # the table of the recorded results only
    python benchmarks/rl.py --quick              # a smoke test: records nothing

Both sides get the same hyper-parameters and one CPU thread: for PPO striate's defaults
(CleanRL's ppo.py), for A2C SB3's defaults (striate's too), for DQN RL Zoo's settings tuned for
SB3 on CartPole (CleanRL's dqn.py settings, striate's defaults, need 200k+ steps); where SB3
cannot be told striate's setting striate is given SB3's (`STRIATE_OPTIONS`). The SB3 arguments are
written out below. Every `--eval-every` environment steps (2,000) both are evaluated with
striate's `evaluate`: 10 greedy episodes with seeds 1000…1009. Training stops at the first
evaluation ≥ 475 or at `--budget` steps. Time counts training only (not the evaluations). Appends
to results/rl.jsonl, rewrites the ``rl``
table of BENCHMARKS.md and draws the evaluation curves in docs/rl/cartpole_vs_sb3.png.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from _common import RESULTS, append_record, cpu_name, print_machine, read_record, write_table
from striate._atomic import save_figure
from striate.rl.run import RLConfig, build_agent, evaluate

RECORD = RESULTS / "rl.jsonl"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "rl" / "cartpole_vs_sb3.png"
ENV = "CartPole-v1"
SOLVED = 475.0


# DQN: RL Zoo's settings tuned for SB3's DQN on CartPole-v1 (rl-baselines3-zoo,
# hyperparams/dqn.yml), the peer at its best; ε falls over 16 % of the zoo's 50,000 steps
ZOO_DQN = {"learning_rate": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
           "learning_starts": 1_000, "gamma": 0.99, "train_freq": 256, "gradient_steps": 128,
           "target_update_interval": 10, "exploration_steps": 8_000, "final_eps": 0.04,
           "net_arch": [256, 256]}  # fmt: skip

# where SB3 cannot be given striate's setting, striate is given SB3's: for DQN its Huber loss
# and gradients clipped at norm 10, for PPO an unclipped value loss
STRIATE_OPTIONS = {
    "dqn": {"learning_rate": ZOO_DQN["learning_rate"], "batch_size": ZOO_DQN["batch_size"],
            "buffer_size": ZOO_DQN["buffer_size"], "learning_starts": ZOO_DQN["learning_starts"],
            "gamma": ZOO_DQN["gamma"], "train_frequency": ZOO_DQN["train_freq"],
            "gradient_steps": ZOO_DQN["gradient_steps"],
            "target_network_frequency": ZOO_DQN["target_update_interval"],
            "exploration_fraction": 1.0, "total_steps": ZOO_DQN["exploration_steps"],
            "end_e": ZOO_DQN["final_eps"], "hidden": ZOO_DQN["net_arch"], "loss": "huber",
            "max_grad_norm": 10.0},
    "ppo": {"clip_vloss": False},
}  # fmt: skip


def run_striate(algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    options = STRIATE_OPTIONS.get(algo, {})
    agent = build_agent(RLConfig(algo=algo, env=ENV, seed=seed, options=options))
    trained, steps_at, curve = 0.0, None, []
    while agent.env_steps < args.budget:
        start = time.perf_counter()
        agent.train(args.eval_every, progress=False)
        trained += time.perf_counter() - start
        score = evaluate(agent, ENV, 10, 1_000)
        curve.append([agent.env_steps, score["mean"]])
        print(f"  striate {algo} seed {seed}: {agent.env_steps:,} steps, {score['mean']:.1f}")
        if score["mean"] >= SOLVED:
            steps_at = agent.env_steps
            break
    return {"steps": steps_at, "seconds": trained, "last_steps": agent.env_steps, "curve": curve}


def sb3_model(algo: str, env: Any, seed: int, budget: int) -> Any:
    """SB3's agent with striate's settings for `algo` (see each striate Config's docstring)."""
    import stable_baselines3 as sb3

    # CleanRL ppo.py: 4 envs × 128 steps, 4 minibatches, 4 epochs, lr annealed; SB3's value loss
    # is the plain mean squared error where CleanRL's is half of it, hence vf_coef 0.5 / 2
    if algo == "ppo":
        return sb3.PPO("MlpPolicy", env, learning_rate=lambda f: 2.5e-4 * f, n_steps=128,
                       batch_size=128, n_epochs=4, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                       ent_coef=0.01, vf_coef=0.25, max_grad_norm=0.5, seed=seed,
                       device="cpu")  # fmt: skip
    if algo == "dqn":
        z = ZOO_DQN
        return sb3.DQN("MlpPolicy", env, learning_rate=z["learning_rate"],
                       batch_size=z["batch_size"], buffer_size=z["buffer_size"],
                       learning_starts=z["learning_starts"], gamma=z["gamma"],
                       train_freq=z["train_freq"], gradient_steps=z["gradient_steps"],
                       target_update_interval=z["target_update_interval"],
                       exploration_fraction=z["exploration_steps"] / budget,
                       exploration_final_eps=z["final_eps"],
                       policy_kwargs={"net_arch": z["net_arch"]}, seed=seed,
                       device="cpu")  # fmt: skip
    if algo == "a2c":  # SB3's defaults
        return sb3.A2C("MlpPolicy", env, seed=seed, device="cpu")
    raise SystemExit(f"no SB3 counterpart for {algo}")


def run_sb3(algo: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV, n_envs=4 if algo in ("ppo", "a2c") else 1, seed=seed)
    model = sb3_model(algo, env, seed, args.budget)

    class Policy:
        def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
            return model.predict(obs, deterministic=deterministic)[0]

    result: dict[str, Any] = {"steps": None, "eval_seconds": 0.0, "curve": []}

    class EvaluateEvery(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next = args.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next:
                return True
            self.next += args.eval_every
            start = time.perf_counter()
            score = evaluate(Policy(), ENV, 10, 1_000)
            result["eval_seconds"] += time.perf_counter() - start
            result["curve"].append([self.num_timesteps, score["mean"]])
            print(f"  sb3 {algo} seed {seed}: {self.num_timesteps:,} steps, {score['mean']:.1f}")
            if score["mean"] >= SOLVED:
                result["steps"] = self.num_timesteps
                return False
            return True

    start = time.perf_counter()
    model.learn(total_timesteps=args.budget, callback=EvaluateEvery())
    result["seconds"] = time.perf_counter() - start - result.pop("eval_seconds")
    result["last_steps"] = model.num_timesteps
    return result


def table(entries: list[dict[str, Any]]) -> str:
    """The latest run of each (algorithm, library, seed), and per algorithm the ratios: of the
    steps and time to 475 (both mostly the luck of 3 seeds), and of the training time per step
    (the speed, whatever the luck)."""
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for e in entries:
        latest[(e["algo"], e["library"], e["seed"])] = e
    lines = ["| algorithm | library | seeds solved | steps to 475 (mean) | training time (mean) "
             "| ms per step | steps ratio (striate / SB3) | time ratio | time per step ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for algo in sorted({k[0] for k in latest}):
        rows = {}
        for lib in ("striate", "stable-baselines3"):
            runs = [e for k, e in latest.items() if k[0] == algo and k[1] == lib]
            solved = [e for e in runs if e["steps"] is not None]
            steps = np.mean([e["steps"] for e in solved]) if solved else float("nan")
            secs = np.mean([e["seconds"] for e in solved]) if solved else float("nan")
            per_step = 1e3 * np.mean([e["seconds"] / e["last_steps"] for e in runs])
            rows[lib] = (len(solved), len(runs), steps, secs, per_step)
        s, b = rows["striate"], rows["stable-baselines3"]
        for lib, (n, total, steps, secs, per_step) in rows.items():
            ratios = [f"{s[i] / b[i]:.2f}" if lib == "striate" else "" for i in (2, 3, 4)]
            lines.append(f"| {algo} | {lib} | {n}/{total} | {steps:,.0f} | {secs:.0f} s "
                         f"| {per_step:.2f} | {' | '.join(ratios)} |")  # fmt: skip
    return "\n".join(lines)


def figure(entries: list[dict[str, Any]]) -> Figure:
    """Per algorithm, every seed's evaluation return against environment steps, striate and SB3
    (the latest run of each), up to the evaluation that reached 475."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    latest = {(e["algo"], e["library"], e["seed"]): e for e in entries if "curve" in e}
    algos = sorted({k[0] for k in latest})
    styles = {"striate": "-", "stable-baselines3": "--"}
    fig = Figure(figsize=(4.2 * len(algos), 3.4), layout="constrained")
    for ax, algo in zip(np.atleast_1d(fig.subplots(1, len(algos))), algos, strict=True):
        for (a, lib, seed), e in sorted(latest.items()):
            if a == algo:
                steps, mean = np.asarray(e["curve"], dtype=float).T
                ax.plot(steps, mean, styles[lib], marker="o", ms=3, color=f"C{seed}")
        ax.axhline(SOLVED, color="grey", lw=0.8)
        ax.set_title(f"{algo.upper()} on {ENV}")
        ax.set_xlabel("environment steps")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1000:g}k"))
    seeds = sorted({k[2] for k in latest})
    handles = [Line2D([], [], color="black", ls=style, label=lib) for lib, style in styles.items()]
    handles += [Line2D([], [], color=f"C{s}", marker="o", label=f"seed {s}") for s in seeds]
    fig.axes[0].set_ylabel("evaluation return (10 episodes)")
    fig.axes[0].legend(handles=handles, fontsize=7, loc="lower right")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algos", nargs="+", default=["ppo", "dqn", "a2c"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=int, default=500_000, help="steps at most per run")
    ap.add_argument("--eval-every", type=int, default=2_000)
    ap.add_argument("--table", action="store_true", help="only the table of recorded results")
    ap.add_argument("--quick", action="store_true", help="smoke test: 2,000 steps, no record")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.budget, args.eval_every, args.seeds = 2_000, 1_000, args.seeds[:1]
    if not args.table:
        for algo in args.algos:
            for seed in args.seeds:
                for lib, fn in (("striate", run_striate), ("stable-baselines3", run_sb3)):
                    r = fn(algo, seed, args)
                    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                    row = {"date": now, "device": cpu_name(1), "algo": algo, "library": lib,
                           "seed": seed, "budget": args.budget, "eval_every": args.eval_every,
                           "matched": STRIATE_OPTIONS.get(algo, {}), **r}  # fmt: skip
                    print(row)
                    if not args.quick:
                        append_record(RECORD, [row])
    if args.quick:
        return
    entries = read_record(RECORD)
    text = table(entries)
    print(text)
    write_table("rl", text)
    save_figure(figure(entries), FIGURE)
    print(f"figure: {FIGURE}")


if __name__ == "__main__":
    print_machine()
    main()
