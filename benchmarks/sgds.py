"""SGD-S (loss-based minibatch sampling, Zakka's "SGD on Steroids" v1) against uniform sampling:
optimiser steps and training time to a fixed test accuracy, on MNIST and CIFAR-10 (JPEG copy).

    OMP_NUM_THREADS=1 python benchmarks/sgds.py                      # both datasets, seeds 0-2
    OMP_NUM_THREADS=1 python benchmarks/sgds.py --datasets mnist     # one of them
    OMP_NUM_THREADS=1 python benchmarks/sgds.py --quick              # a smoke test: no record
    python benchmarks/sgds.py --table                                # table + figure of the record

The claim measured (reference 000, "Learning What to Learn and When to Learn It", section "SGD on
Steroids"): on MNIST, SGD-S v1 "reliably" speeds training up by a factor of 2 using 30 % of the
data. The post gives no table, no target accuracy and no model; this benchmark fixes them.

Three arms per dataset and seed, trained through `prepare(TrainConfig(...))` as `striate train`
trains (`--sampling`): ``uniform`` (a shuffled pass per epoch), ``sgds`` (the post's estimator:
after ``sgds_transient`` = 1 epoch of plain shuffled SGD, images drawn with replacement in
proportion to their last recorded training loss, the plain batch mean; after each such epoch the
10 % lowest-loss active images are set aside and 1 % of the active count comes back) and
``sgds-unbiased`` (the same draws, each loss weighted by 1/(N·p)). Within a seed the three arms
start from the same initial weights (``torch.manual_seed(seed)`` in `build_model`) on the same
data; the batch order comes from each arm's own generator.

Every `eval_every` optimiser steps a callback of this script evaluates test accuracy (all 10,000
MNIST test images; a stratified 2,000 of CIFAR-10's), and the run stops at the first evaluation
at or above the target, or at the step budget (then it counts as not reached: the table says so
and gives no number). Training time is the wall time of `Trainer.fit` up to that evaluation
minus the time spent evaluating, so it includes SGD-S's own costs (recording losses, drawing by
loss). The share of the training set still active is read from the sampler at that evaluation.

- MNIST: the post's setting — mnist_cnn (striate's small MNIST CNN, conv 9×9/7×7; the post names
  no network), SGD lr 0.01, momentum 0.5, no Nesterov, no weight decay, constant lr, batch 64,
  fp32, inputs normalised, all 60,000 training images (no validation split); target 98 % (uniform
  reaches it in 2-2.5 epochs), budget 4,500 steps (4.8 epochs), evaluation every 100 steps.
- CIFAR-10 (JPEG copy): what fits a shared 2-core CPU — a stratified 10,000-image training subset
  (the same for every seed), convnet_small, no augmentation, SGD lr 0.05, momentum 0.9
  (Nesterov), weight decay 5e-4, constant lr, batch 64, fp32; test accuracy on a stratified
  2,000 of the test images; target 52 % (uniform reaches it in 2-3 epochs), budget 1,400
  steps (9 epochs), evaluation every 40 steps.

Differences from the post: striate's SGD-S draws N images per epoch (not the active count:
`make_sampler`), so epochs keep their length in steps and the active set shrinks once per N
draws; the target, budget, networks and the CIFAR subset are this benchmark's; CPU, one torch
thread. Appends every run to results/sgds.jsonl, rewrites the ``sgds`` table of BENCHMARKS.md
from the latest recorded run of each dataset, arm and seed (so the datasets may run as separate
processes) and draws docs/sgds/steps_to_accuracy.png (test accuracy against optimiser step,
seed 0, one line per arm).
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure

from _common import (
    RESULTS,
    append_record,
    cifar10_jpeg,
    cpu_name,
    print_machine,
    read_record,
    shared_data,
    stratified_subset,
    write_table,
)
from striate._atomic import save_figure
from striate.engine import Callback
from striate.train.assembly import RunData, load_run_data, prepare
from striate.train.config import TrainConfig

RECORD = RESULTS / "sgds.jsonl"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "sgds" / "steps_to_accuracy.png"
ARMS = ("uniform", "sgds", "sgds-unbiased")
SEEDS = (0, 1, 2)
THREADS = 1

# per dataset: the TrainConfig options, the target, the step budget, evaluation cadence, sizes
SETTINGS: dict[str, dict[str, Any]] = {
    "mnist": {
        "config": {"data": "mnist", "model": "mnist_cnn", "lr": 0.01, "momentum": 0.5,
                   "nesterov": False, "weight_decay": 0.0, "augment": "none"},
        "target": 0.98, "budget": 4_500, "eval_every": 100,
        "train_size": None, "test_size": None,
    },
    "cifar10": {
        "config": {"data": "cifar10", "model": "convnet_small", "lr": 0.05, "momentum": 0.9,
                   "nesterov": True, "weight_decay": 5e-4, "augment": "none"},
        "target": 0.52, "budget": 1_400, "eval_every": 40,
        "train_size": 10_000, "test_size": 2_000,
    },
}  # fmt: skip
QUICK = {
    "mnist": {"target": 0.8, "budget": 60, "eval_every": 10, "train_size": 500, "test_size": 500},
    "cifar10": {"target": 0.3, "budget": 40, "eval_every": 10, "train_size": 500, "test_size": 500},
}
COMMON = {"schedule": "constant", "batch_size": 64, "precision": "fp32", "val_size": 0,
          "device": "cpu"}  # fmt: skip


class ToTarget(Callback):
    """Every `every` optimiser steps: test accuracy, training seconds so far (wall time since
    `on_fit_start` minus the evaluations) and the active share of the training set; stops the
    run at the first accuracy ≥ `target`."""

    def __init__(self, test: Any, target: float, every: int) -> None:
        self.test, self.target, self.every = test, target, every
        self.curve: list[tuple[int, float, float, float]] = []  # step, seconds, acc, active
        self.hit: tuple[int, float, float, float] | None = None

    def on_fit_start(self, trainer: Any) -> None:
        self.start, self.evaluating = time.perf_counter(), 0.0

    def on_step_end(self, trainer: Any, loss: float) -> None:
        if trainer.step % self.every:
            return
        t0 = time.perf_counter()
        seconds = t0 - self.start - self.evaluating
        acc = trainer.evaluate(trainer.eval_model, self.test)["acc"]
        trainer.model.train()  # evaluate() leaves the model in eval mode mid-epoch
        sampler = getattr(trainer.train_loader, "sampler", None)
        active = 1.0 if sampler is None else float(sampler.active.double().mean())
        self.curve.append((trainer.step, seconds, acc, active))
        print(f"  step {trainer.step:>5}  {seconds:6.1f} s  acc {100 * acc:.2f} %  "
              f"active {100 * active:.1f} %", flush=True)  # fmt: skip
        if acc >= self.target:
            self.hit = self.curve[-1]
            trainer.should_stop = True
        self.evaluating += time.perf_counter() - t0


def load_data(name: str, s: dict[str, Any]) -> RunData:
    """The training and test sets of `name`, loaded once for every arm and seed."""
    if name == "cifar10":
        train, test, norm = cifar10_jpeg(s["train_size"], s["test_size"])
        return RunData(train, None, test, norm)
    cfg = TrainConfig(**COMMON, **s["config"], root=str(shared_data()))
    data = load_run_data(cfg)
    if s["train_size"] is None and s["test_size"] is None:
        return data
    train = stratified_subset(data.train, s["train_size"] or len(data.train))
    test = stratified_subset(data.test, s["test_size"] or len(data.test))
    from striate.data import Normalizer

    return RunData(train, None, test, Normalizer().fit(train))


def run_once(name: str, s: dict[str, Any], data: RunData, arm: str, seed: int) -> dict:
    cfg = TrainConfig(**COMMON, **s["config"], sampling=arm, seed=seed, epochs=None,
                      steps=s["budget"])  # fmt: skip
    probe = ToTarget(None, s["target"], s["eval_every"])
    run = prepare(cfg, progress=False, data=data, callbacks=[probe])
    probe.test = run.test
    print(f"{name} {arm} seed {seed}:", flush=True)
    run.trainer.fit(run.model, run.train)
    hit = probe.hit
    return {
        "dataset": name, "arm": arm, "seed": seed, "target": s["target"],
        "budget": s["budget"], "eval_every": s["eval_every"],
        "train_images": len(data.train), "test_images": len(data.test),
        "config": {**COMMON, **s["config"], "sgds_transient": cfg.sgds_transient,
                   "sgds_drop": cfg.sgds_drop},
        "reached": hit is not None,
        "steps": hit[0] if hit else None,
        "seconds": hit[1] if hit else None,
        "epochs": hit[0] / math.ceil(len(data.train) / cfg.batch_size) if hit else None,
        "active_share": probe.curve[-1][3] if probe.curve else None,
        "last_step": probe.curve[-1][0] if probe.curve else 0,
        "last_seconds": probe.curve[-1][1] if probe.curve else 0.0,
        "curve": [list(c) for c in probe.curve],
    }  # fmt: skip


def median_or_inf(values: list[float | None]) -> float:
    """The median with a run that never reached the target counted as infinitely long."""
    return statistics.median(math.inf if v is None else v for v in values)


def datasets(rows: list[dict]) -> list[str]:
    """The datasets of `rows`, in the order of SETTINGS."""
    return [name for name in SETTINGS if any(r["dataset"] == name for r in rows)]


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset (target, budget) | sampling | reached | steps to target (median) "
        "| training time to target (median) | ms per step | steps ratio (/ uniform) "
        "| time ratio (/ uniform) | active share at target (median) | per seed: steps |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name in datasets(rows):
        runs = [r for r in rows if r["dataset"] == name]
        base = {k: median_or_inf([r[k] for r in runs if r["arm"] == "uniform"])
                for k in ("steps", "seconds")}  # fmt: skip
        first = runs[0]
        label = (f"{name} ({first['train_images']:,} train, {100 * first['target']:g} % on "
                 f"{first['test_images']:,} test, ≤ {first['budget']:,} steps)")  # fmt: skip
        for arm in ARMS:
            mine = sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])
            if not mine:
                continue
            steps = median_or_inf([r["steps"] for r in mine])
            secs = median_or_inf([r["seconds"] for r in mine])
            per_step = statistics.median(
                1e3 * r["last_seconds"] / r["last_step"] for r in mine if r["last_step"]
            )
            reached = sum(r["reached"] for r in mine)

            def ratio(a: float, b: float, arm: str = arm) -> str:
                if arm == "uniform" or not (math.isfinite(a) and math.isfinite(b)):
                    return "" if arm == "uniform" else "—"
                return f"{a / b:.2f}"

            seeds = ", ".join(
                f"{r['seed']}: {r['steps']:,}" if r["reached"] else f"{r['seed']}: not reached"
                for r in mine
            )
            lines.append(
                f"| {label} | {arm} | {reached}/{len(mine)} | "
                + (f"{steps:,.0f}" if math.isfinite(steps) else "not reached")
                + " | "
                + (f"{secs:.1f} s" if math.isfinite(secs) else "not reached")
                + f" | {per_step:.1f} | {ratio(steps, base['steps'])} | "
                f"{ratio(secs, base['seconds'])} | "
                f"{100 * statistics.median(r['active_share'] for r in mine):.0f} % | {seeds} |"
            )
    return "\n".join(lines)


def figure(rows: list[dict]) -> Figure:
    """Test accuracy against optimiser step, seed 0 (the lowest seed run), one line per arm."""
    names = datasets(rows)
    fig = Figure(figsize=(4.6 * len(names), 3.4), layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        runs = [r for r in rows if r["dataset"] == name]
        seed = min(r["seed"] for r in runs)
        for k, arm in enumerate(ARMS):
            for r in runs:
                if r["arm"] == arm and r["seed"] == seed and r["curve"]:
                    steps = [c[0] for c in r["curve"]]
                    accs = [100 * c[2] for c in r["curve"]]
                    ax.plot(steps, accs, marker="o", ms=2, lw=1, color=f"C{k}", label=arm)
        ax.axhline(100 * runs[0]["target"], color="grey", lw=0.8, ls="--")
        ax.set_title(f"{name}, seed {seed}: to {100 * runs[0]['target']:g} % test accuracy")
        ax.set_xlabel("optimiser steps")
        ax.set_ylabel("test accuracy (%)")
        lo = 100 * runs[0]["target"] - 10
        ax.set_ylim(lo, None)
        ax.legend(fontsize=8, loc="lower right")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 seed: no record")
    ap.add_argument("--table", action="store_true", help="only the table and figure of the record")
    args = ap.parse_args()
    if args.table:
        return publish()
    torch.set_num_threads(THREADS)
    seeds = args.seeds[:1] if args.quick else args.seeds
    t_start = time.perf_counter()
    rows = []
    for name in args.datasets:
        s = {**SETTINGS[name], **(QUICK[name] if args.quick else {})}
        data = load_data(name, s)
        for seed in seeds:
            for arm in ARMS:
                now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                r = run_once(name, s, data, arm, seed)
                row = {"date": now, "device": cpu_name(THREADS), "torch": torch.__version__,
                       "quick": args.quick, **r}  # fmt: skip
                print({k: v for k, v in row.items() if k not in ("curve", "config")}, flush=True)
                rows.append(row)
                if not args.quick:
                    append_record(RECORD, [row])
    text = table(rows)
    print(text)
    print(f"wall time {time.perf_counter() - t_start:.0f} s")
    if args.quick:
        return
    publish()


def publish() -> None:
    """BENCHMARKS.md's table and the figure, from the latest recorded run of each dataset, arm
    and seed."""
    latest = {(e["dataset"], e["arm"], e["seed"]): e for e in read_record(RECORD)}
    recorded = list(latest.values())
    text = table(recorded)
    print(text)
    write_table("sgds", text)
    save_figure(figure(recorded), FIGURE)
    print(f"figure: {FIGURE}")


if __name__ == "__main__":
    print_machine()
    main()
