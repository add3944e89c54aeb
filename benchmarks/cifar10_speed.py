"""The `cifar10-fast` recipe against the clock: CIFAR-10 (JPEG copy) test accuracy after a budget
of training wall time, over seeds.

    python benchmarks/cifar10_speed.py                          # 2.5, 5 and 10 min, seeds 0-2
    python benchmarks/cifar10_speed.py --budgets 45 --seeds 0   # the long budget
    python benchmarks/cifar10_speed.py --widths 32,128,128      # a narrower network for a CPU
    python benchmarks/cifar10_speed.py --quick                  # a smoke test: 5 s, 2,000 images

Each budget is a run of its own, because the recipe's warm-up/decay schedule is laid over the whole
run: the steps that fit in the budget are estimated from a short probe (10 timed steps after 3
warm-up steps), and the run trains for that many steps. The same script runs unchanged on a GPU
(`--device cuda`). Training time is the sum of the epoch times (evaluation excluded).

Every run (not --quick) is appended to benchmarks/results/cifar10_speed.jsonl, and the table in
BENCHMARKS.md between the `cifar10_speed` markers is rewritten from all recorded runs: one row per
device, budget, batch size, network and augmentation, with the seeds' accuracies and their mean.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from _common import RESULTS, print_machine, print_table, read_record, shared_data, write_table
from striate.engine import Callback
from striate.train.assembly import load_run_data, prepare
from striate.train.config import TrainConfig
from striate.train.recipes import recipe_config


def seconds_per_step(config, data, probe_steps: int = 10, warmup: int = 3) -> float:
    """Wall time of one training step of `config`'s model on this machine (the first steps are
    slower while memory and kernels are set up: they are left out)."""
    times: list[float] = []

    class Clock(Callback):
        def on_step_end(self, trainer, loss):
            times.append(time.perf_counter())

    probe = TrainConfig.from_dict(
        {
            **config.to_dict(),
            "epochs": None,
            "steps": warmup + probe_steps,
            "schedule": "constant",
            "schedule_options": {},
        }
    )
    run = prepare(probe, progress=False, data=data, callbacks=[Clock()])
    run.trainer.fit(run.model, run.train)
    return (times[-1] - times[warmup - 1]) / probe_steps


def run(config, data, budget_s: float) -> dict:
    per_step = seconds_per_step(config, data)
    steps = max(1, int(budget_s / per_step))
    cfg = TrainConfig.from_dict({**config.to_dict(), "epochs": None, "steps": steps})
    prepared = prepare(cfg, progress=False, data=data)
    trainer, train, test = prepared.trainer, prepared.train, prepared.test
    history = trainer.fit(prepared.model, train)
    trained = sum(h["time"] for h in history)
    metrics = trainer.evaluate(trainer.eval_model, test)
    return {
        "acc": metrics["acc"],
        "seconds": trained,
        "steps": steps,
        "per_step": per_step,
        "epochs": steps / len(train),
    }


RECORD = RESULTS / "cifar10_speed.jsonl"


def device_name(config) -> str:
    if str(config.device).startswith("cuda") or (
        config.device == "auto" and torch.cuda.is_available()
    ):
        return torch.cuda.get_device_name()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "CPU",
    )
    return f"{model}, {torch.get_num_threads()} threads"


def record(path: Path, config, budget_s: float, seed: int, r: dict) -> None:
    """Append one run to the JSON-lines record at `path`."""
    widths = (config.model_options or {}).get("widths")
    entry = {
        "date": datetime.date.today().isoformat(),
        "device": device_name(config),
        "torch": torch.__version__,
        "budget_min": budget_s / 60,
        "batch": config.batch_size,
        "network": ",".join(map(str, widths)) if widths else "full",
        "augment": config.augment,
        "tta": config.tta,
        "seed": seed,
        **{k: r[k] for k in ("acc", "seconds", "epochs", "steps")},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def table(entries: list[dict]) -> str:
    """The markdown table of all recorded runs, one row per setting (latest run of each seed)."""
    groups: dict[tuple, dict[int, dict]] = {}
    for e in entries:
        key = (e["device"], e["budget_min"], e["batch"], e["network"], e["augment"], e["tta"])
        groups.setdefault(key, {})[e["seed"]] = e
    lines = [
        "| device | budget | batch | network | augment | TTA | seeds | test accuracy | mean | "
        "epochs | trained | date |",
        "| --- | ---: | ---: | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    order = sorted(groups, key=lambda k: (k[0], -k[1], k[2], k[3], k[4], k[5]))
    for key in order:
        runs = [groups[key][s] for s in sorted(groups[key])]
        accs = [100 * r["acc"] for r in runs]
        mean = f"{statistics.mean(accs):.2f}"
        if len(accs) > 1:
            mean += f" ± {statistics.stdev(accs):.2f}"
        epochs = _span([f"{r['epochs']:.1f}" for r in runs])
        secs = _span([f"{r['seconds']:.0f}" for r in runs])
        device, budget, batch, network, augment, tta = key
        lines.append(
            f"| {device} | {budget:g} min | {batch} | {network} | {augment} | {tta} | "
            f"{', '.join(str(r['seed']) for r in runs)} | "
            f"{', '.join(f'{a:.2f}' for a in accs)} % | **{mean} %** | "
            f"{epochs} | {secs} s | "
            f"{max(r['date'] for r in runs)} |"
        )
    return "\n".join(lines)


def _span(values: list[str]) -> str:
    low, high = min(values, key=float), max(values, key=float)
    return low if low == high else f"{low}–{high}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="2.5,5,10", help="minutes of training per run")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--widths", default=None, help="the network's widths, e.g. 32,128,128")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument(
        "--record",
        type=Path,
        default=RECORD,
        help="the JSON-lines file runs are appended to (e.g. $OUT/... on a lent GPU machine, "
        "then appended to the default one here)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {
        "data": str(shared_data() / "cifar10" / "cifar10-jpeg.zip"),
        "device": args.device,
        "batch_size": args.batch_size,
    }
    if args.widths:
        overrides["model_options"] = {"widths": [int(w) for w in args.widths.split(",")]}
    budgets = [float(b) * 60 for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick:
        overrides.update(
            train_size=2000,
            test_size=500,
            batch_size=args.batch_size or 256,
            model_options={"widths": [16, 32, 32]},
        )
        budgets, seeds = [5.0], [0]
    rows = []
    for budget in budgets:
        results = []
        for seed in seeds:
            config = recipe_config("cifar10-fast", **overrides, seed=seed)
            data = load_run_data(config)
            r = run(config, data, budget)
            results.append(r)
            if not args.quick:
                record(args.record, config, budget, seed, r)
            print(
                f"budget {budget / 60:g} min, seed {seed}: {r['acc']:.2%} in {r['seconds']:.0f} s "
                f"({r['steps']} steps, {r['epochs']:.2f} epochs, {r['per_step']:.3f} s/step)",
                flush=True,
            )
        accs = [r["acc"] * 100 for r in results]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        rows.append(
            {
                "section": f"{budget / 60:g} min",
                "program": "cifar10-fast",
                "value": statistics.mean(accs),
                "unit": "%",
                "note": f"mean of {len(accs)} seed(s){spread}; "
                f"{statistics.mean(r['epochs'] for r in results):.2f} epochs, "
                f"{statistics.mean(r['seconds'] for r in results):.0f} s trained",
            }
        )
    print_table(rows)
    if not args.quick:
        write_table("cifar10_speed", table(read_record(args.record)))


if __name__ == "__main__":
    print_machine()
    main()
