"""CIFAR-10 time-to-accuracy: striate's `--recipe cifar10-fast` against a CPU port of airbench94,
on the same machine, in the same process, with the same threads and the same images.

    python benchmarks/cifar10_vs_airbench.py                      # seeds 0 1 2, both programs
    python benchmarks/cifar10_vs_airbench.py --seeds 0 --threads 1
    python benchmarks/cifar10_vs_airbench.py --skip-recorded  # the seeds this machine lacks
    python benchmarks/cifar10_vs_airbench.py --quick     # smoke test: 512 images, no record
    python benchmarks/cifar10_vs_airbench.py --recipe cifar10-muon --seeds 0 --reuse-port
    python benchmarks/cifar10_vs_airbench.py --recipe cifar10-quick --seeds 2
    python benchmarks/cifar10_vs_airbench.py --peer airbench94_muon --recipe cifar10-quick

The peer is a port of Keller Jordan's airbench94 ("94% on CIFAR-10 in 3.29 seconds on a single
GPU", 2024, arXiv:2404.00498; github.com/KellerJordan/cifar10-airbench, `legacy/airbench94.py` at
commit f1c599c4af24aca803e3e65a6a7e52a502e09d0e; line numbers below refer to that file), written
here from its description and code, not copied. What is the same: the hyper-parameters (L38-65:
9.9 epochs, batch 1024, decoupled lr 11.5 / momentum 0.85 / weight decay 0.0153 per 1024 examples
turned into torch SGD's by ``1024·(1 + 1/(1-μ))`` with the decay scaled by the batch size, L359-
362; 64× lr for the batch-norm biases; label smoothing 0.2 on the summed loss, L364, L422;
Nesterov, L379), the network (L160-236: a 2×2 whitening conv of 24 filters with a bias and GELU,
three conv groups of widths 64/256/256, each conv→maxpool 2→BN→GELU→conv→BN→GELU with BN eps 1e-12,
momentum 0.4 in torch's terms, frozen scales; dirac-initialised 3×3 convs without bias; maxpool 3,
a bias-free linear layer and ×1/9; channels-last), the whitening initialisation from 5,000
training images (L242-257, eps 5e-4; its bias trains for 3 epochs only, L410), the lr schedule
(L381-390: linear 0.2→1 over 23 % of the steps, then 1→0.07), Lookahead every 5 steps with decay
``0.95⁵·(t/T)³`` on all float state, batch-norm statistics included, and a final copy at the last
step (L263-271, L392-393, L430-436), the data (L69-70 normalisation; L126-154: one random
left-right flip per image drawn once, reflect padding by 2, a fresh random ±2 translation per
image each epoch, all images mirrored every other epoch, a random order and the last incomplete
batch dropped), and TTA (L307-340: the mean of the logits of the image and its mirror, averaged
with those of the 1-pixel up-left and down-right reflect-padded translations; test batches of
2,000).

What differs on a CPU: where airbench runs the network in fp16 (L231, batch norm in fp32) the port
trains under bf16 autocast when the CPU computes bf16 natively (striate's own check,
`striate.engine.precision.cpu_has_bf16`) and in fp32 otherwise (the run says which; parameters stay
fp32 under autocast); the data are kept in that precision too. Evaluation runs in fp32 (bf16 has
three mantissa bits fewer than airbench's fp16 evaluation; striate evaluates in fp32 as well). The
images are the CIFAR-10 JPEG copy in ../shared/data loaded through `striate.load_dataset` (the same
uint8 images striate trains on), not torchvision's. Both run under the malloc settings striate's
Trainer applies while it trains on a CPU (`striate.engine.allocator`; the port by `port_run`).
Each run is seeded (airbench is not). Times:
training wall time includes the whitening initialisation and each epoch's augmentation, as
airbench's timer does (L400-406, L416-440), but not evaluation (airbench adds its final TTA pass,
L457-461). airbench evaluates without TTA after each epoch (L449): here test accuracy *with* TTA
is measured at the end of every epoch from ``--eval-from`` on (and always after the last), its
time left out of the training time, and the time to ``--target`` (90.5 %, airbench94's accuracy on
the JPEG copy) is the training time up to the end of the first epoch whose accuracy reaches it
(epoch granularity: a run that reaches it inside an epoch is credited at that epoch's end).

striate's side is `recipe_config("cifar10-fast", data=..., seed=...)` trained by `prepare(...)`'s
Trainer, as `benchmarks/cifar10_speed.py` does, with the same evaluation callback. With
`--recipe cifar10-muon` it is airbench94_muon's recipe instead (Muon, batch 2000, 8 epochs; see
`striate.train.recipes`), and with `--recipe cifar10-quick` that recipe with its first 2 epochs on
28×28 crops (progressive resizing), against the same airbench94 port: the table's rows say which
recipe.

`--peer airbench94_muon` runs a port of airbench94_muon instead (``airbench94_muon.py`` of the same
repository at commit 096d14d9aa92dcc837ab4f1f288dffea2bbe41b7, 94.01 % in 2.59 s on an A100; in
`_airbench_port.py`, with its lines cited): airbench94's network, data and TTA with the logits ÷256
and the head's weights scaled to std 1; 8 epochs of batch 2000; `Muon` on the 3×3 filters (lr
0.24, momentum 0.6, Nesterov, each filter bank renormalised to norm √(out channels) before its
step, 3 quintic Newton–Schulz iterations in bf16 as airbench does) and Nesterov SGD (momentum
0.85) on the whitening and batch-norm biases (lr 0.053 per example of the summed loss) and the head
(0.67), weight decay 2e-6 per example; every lr decays linearly to 0, the whitening bias's over
its first 3 epochs, after which it stops training; no Lookahead. It is the Muon recipes' own peer
(`cifar10-muon` is the same recipe in striate's terms). What differs on a CPU is what differs for
the airbench94 port.
`--reuse-port` pairs striate's run with the port's run of the same seed recorded earlier on this
machine instead of running the port again (marked † in the table). The two programs
run one after the other for each seed, alternating which goes first. A real run appends one line
per program as soon as each seed's pair is done to benchmarks/results/cifar10_vs_airbench.jsonl
(with the CPU facts) and rewrites the table in BENCHMARKS.md between the `cifar10_vs_airbench`
markers: per machine (GPU model, or CPU model and its speed flags), thread count and budget,
each seed's latest pair and their means. On a 2-core CPU one pair takes about 1.5 h, so
`--skip-recorded` runs only the seeds this machine has not recorded yet, and the 3-seed table
can be built over several sittings.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
import uuid
from functools import partial
from math import ceil
from pathlib import Path

import torch

from _airbench_port import HYP, PEERS, check_pieces, port_run, summary
from _airbench_record import comparable, recorded_pairs
from _common import (
    RESULTS,
    append_record,
    cpu_name,
    machine,
    print_machine,
    read_record,
    shared_data,
    write_table,
)
from striate.engine import Callback
from striate.train.assembly import RunData, load_run_data, prepare
from striate.train.recipes import RECIPES, recipe_config

RECORD = RESULTS / "cifar10_vs_airbench.jsonl"


# --------------------------------------------------------------------------- striate's side


class _EpochEval(Callback):
    """Step timestamps, and test accuracy with the run's TTA at the end of each epoch from
    `eval_from` on and after the last (its time kept apart)."""

    def __init__(self, eval_from: int, gpu: bool = False) -> None:
        self.eval_from = eval_from
        self.gpu = gpu
        self.test = None
        self.start = 0.0
        self.eval_s = 0.0
        self.evals: list[dict] = []
        self.gaps: list[float] = []
        self._last: float | None = None

    def on_epoch_start(self, trainer) -> None:
        self._last = None

    def clock(self) -> float:
        if self.gpu:
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_step_end(self, trainer, loss) -> None:
        if self.gpu:  # a GPU's steps are timed by the epoch (no sync per step)
            return
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    def on_epoch_end(self, trainer, metrics) -> None:
        trained = self.clock() - self.start - self.eval_s
        if trainer.epoch >= self.eval_from or trainer.step >= trainer.total_steps:
            t = self.clock()
            acc = trainer.evaluate(trainer.eval_model, self.test)["acc"]
            self.eval_s += self.clock() - t
            self.evals.append({"epoch": trainer.epoch, "seconds": trained, "acc": acc})
            print(f"  striate          epoch {trainer.epoch}: {acc:.2%} after {trained:.1f} s")


def train_striate(
    data: RunData,
    seed: int,
    overrides: dict,
    eval_from: int,
    target: float,
    recipe: str,
    label: str | None = None,
):
    """One run of striate's `recipe` with `overrides`, recorded as ``striate <label>`` (the
    recipe's name unless given)."""
    config = recipe_config(recipe, **overrides, seed=seed)
    cb = _EpochEval(eval_from, gpu=str(overrides.get("device", "")).startswith("cuda"))
    run = prepare(config, progress=False, data=data, callbacks=[cb])
    cb.test = run.test
    cb.start = cb.clock()
    run.trainer.fit(run.model, run.train)
    trained = cb.clock() - cb.start - cb.eval_s
    return summary(
        f"striate {label or recipe}",
        run.trainer.precision.name,  # what precision="auto" resolved to
        seed,
        trained,
        cb.evals,
        run.trainer.step,
        cb.gaps or [trained / run.trainer.step],
        target,
    )


# --------------------------------------------------------------------------- reporting


def budget(epochs: float, images: int) -> str:
    """A run's training budget in words; the full one is airbench94's."""
    if epochs == HYP["epochs"] and images == 50_000:
        return ""
    return f"{epochs:g} epoch{'s' if epochs != 1 else ''} of {images:,} images"


def table(entries: list[dict]) -> str:
    """Per machine, thread count, budget and striate recipe, one row per seed (its latest pair)
    and their means (a shortened budget is named beside the machine; a seed whose port run was
    reused from an earlier invocation is marked †)."""
    lines = [
        "| machine | port of | striate | precision | seed | port: acc | time | to 90.5 % | "
        "striate: acc | time | to 90.5 % | ratio time | ratio to 90.5 % | date |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| --- |",
    ]

    def fmt(v):
        return "—" if v is None else f"{v:,.0f} s" if v >= 100 else f"{v:.1f} s"

    def ratio(a, b):
        return "—" if a is None or b is None else f"{a / b:.3f}×"

    reused = False
    for (label, _threads, short, port, program), seeds in sorted(recorded_pairs(entries).items()):
        device = f"{label} ({short})" if short else label
        recipe = program.removeprefix("striate ")
        peer = port.removesuffix(" port")
        pairs = [(seed, a, s) for seed, (a, s) in sorted(seeds.items())]
        for seed, a, s in pairs:
            mark = "†" if "port_invocation" in s else ""
            reused = reused or bool(mark)
            lines.append(
                f"| {device} | {peer} | {recipe} | {a['precision']}/{s['precision']} | "
                f"{seed}{mark} | {100 * a['acc']:.2f} % "
                f"| {fmt(a['seconds'])} | {fmt(a['time_to_target'])} | {100 * s['acc']:.2f} % | "
                f"{fmt(s['seconds'])} | {fmt(s['time_to_target'])} | "
                f"{ratio(s['seconds'], a['seconds'])} | "
                f"{ratio(s['time_to_target'], a['time_to_target'])} | {s['date']} |"
            )
        if len(pairs) > 1:

            def mean(xs):
                xs = list(xs)
                return None if any(x is None for x in xs) else statistics.mean(xs)

            a_acc = mean(100 * a["acc"] for _, a, _ in pairs)
            s_acc = mean(100 * s["acc"] for _, _, s in pairs)
            a_t, s_t = (
                mean(a["seconds"] for _, a, _ in pairs),
                mean(s["seconds"] for *_, s in pairs),
            )
            a_r = mean(a["time_to_target"] for _, a, _ in pairs)
            s_r = mean(s["time_to_target"] for *_, s in pairs)
            lines.append(
                f"| {device} | {peer} | {recipe} | | **mean** | **{a_acc:.2f} %** | {fmt(a_t)} | "
                f"{fmt(a_r)} | **{s_acc:.2f} %** | {fmt(s_t)} | {fmt(s_r)} | "
                f"**{ratio(s_t, a_t)}** | **{ratio(s_r, a_r)}** | |"
            )
    if reused:
        lines.append(
            "\n† the port's run of that seed is reused from an earlier invocation on the same "
            "machine (`--reuse-port`), not run beside striate's."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def gpu_name(device: str) -> str:
    """The GPU's name, for a record's `device`."""
    return torch.cuda.get_device_name(torch.device(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both")
    parser.add_argument("--target", type=float, default=0.905, help="accuracy to time")
    parser.add_argument(
        "--eval-from", type=int, default=8, help="first epoch whose end is evaluated (TTA)"
    )
    parser.add_argument(
        "--recipe",
        default="cifar10-fast",
        choices=list(RECIPES),
        help="striate's side: airbench94's recipe (default), airbench94_muon's (cifar10-muon) "
        "or that with progressive resizing (cifar10-quick)",
    )
    parser.add_argument(
        "--peer",
        default="airbench94",
        choices=list(PEERS),
        help="the port striate runs against: airbench94 (default, the issue's peer) or its "
        "later airbench94_muon (Muon, batch 2000, 8 epochs), the Muon recipes' own",
    )
    parser.add_argument(
        "--augment",
        default=None,
        help="an experiment: striate's augmentation spec instead of the recipe's (recorded and "
        "tabled as its own program, '<recipe> --augment SPEC')",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="pair striate's run with the port's (--peer) run of the same seed recorded on this "
        "machine (same threads and budget) instead of training it again; the table marks it",
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda[:N]: both programs run there (default cpu)"
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="a shorter run for both, in airbench94's epochs (default 9.9; the muon port and "
        "striate's recipe train their own in proportion, striate's rounded up: 10 or 8 for "
        "9.9): its per-step ratio, not its accuracy, is what it measures",
    )
    parser.add_argument("--train-size", type=int, default=None, help="a subset of the 50,000")
    parser.add_argument("--test-size", type=int, default=None, help="a subset of the 10,000")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--record", type=Path, default=RECORD)
    parser.add_argument(
        "--skip-recorded",
        action="store_true",
        help="leave out the seeds this machine (CPU or GPU model, threads, budget) has recorded: "
        "a table longer than one sitting is built over several",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print_machine()
    threads = torch.get_num_threads()
    print(f"load average {', '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)

    path = shared_data() / "cifar10" / "cifar10-jpeg.zip"
    device = args.device
    gpu = device.startswith("cuda")
    if gpu:
        # both programs: cuDNN autotunes its kernels for the fixed shapes, as airbench sets (L24)
        torch.backends.cudnn.benchmark = True
    # the port's thread count, given: a run that sets none trains with fewer on a busy machine
    overrides = {"data": str(path), "threads": threads, "device": device}
    label = args.recipe
    if args.augment is not None:
        overrides["augment"] = args.augment
        label = f"{args.recipe} --augment {args.augment}"
    peer, train_peer, peer_epochs = PEERS[args.peer]
    epochs, eval_from, seeds, port_options = HYP["epochs"], args.eval_from, args.seeds, {}
    if args.epochs is not None:
        peer_epochs = round(peer_epochs * args.epochs / HYP["epochs"], 6)
        epochs, eval_from = args.epochs, min(eval_from, ceil(args.epochs))
        overrides["epochs"] = ceil(args.epochs * RECIPES[args.recipe]["epochs"] / 10 - 1e-9)
    for name in ("train_size", "test_size"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.quick:
        # 16 steps of 32 (striate's one-cycle schedule needs at least 9), one epoch
        epochs, peer_epochs, eval_from, seeds, port_options = 1, 1, 1, [0], {"batch_size": 32}
        overrides.update(train_size=512, test_size=128, batch_size=32, epochs=1)
    # loaded once: the same images for every run and both programs
    data = load_run_data(recipe_config("cifar10-fast", **overrides, seed=0))
    if args.quick:
        check_pieces(data)
    invocation = uuid.uuid4().hex[:12]
    name = gpu_name(device) if gpu else cpu_name(threads)
    run_budget = budget(epochs, len(data.train))
    key = comparable(
        {"device": name, "threads": threads, "budget": run_budget, "machine": machine()}
    )
    ports = {}
    if args.reuse_port:
        recorded = read_record(args.record) if args.record.exists() else []
        ports = {  # the latest run of each seed
            e["seed"]: e for e in recorded if e["program"] == peer and comparable(e) == key
        }
        missing = [s for s in seeds if s not in ports]
        if missing:
            raise SystemExit(f"--reuse-port: no recorded {peer} run of seed(s) {missing} here")
    if args.skip_recorded and args.record.exists():
        pairs = recorded_pairs(read_record(args.record))
        done = pairs.get((*key, peer, f"striate {label}"), {})
        seeds = [s for s in seeds if s not in done]
        print(f"seeds already recorded on this machine: {sorted(done) or 'none'}; to run: {seeds}")
    if gpu:
        # airbench's warm-up run (L367-369; its call at L473 is commented out there): the CUDA
        # context and cuDNN's autotuning paid before any timed run, for both programs
        print("warm-up: one epoch of each, not recorded", flush=True)
        train_peer(data, 0, epochs=1, eval_from=1, target=1.0, device=device)
        train_striate(data, 0, {**overrides, "epochs": 1}, 1, 1.0, args.recipe, label)
    results = []
    for i, seed in enumerate(seeds):
        port = partial(
            port_run,
            train_peer,
            data,
            seed,
            epochs=peer_epochs,
            eval_from=eval_from,
            target=args.target,
            device=device,
            **port_options,
        )
        ours = partial(
            train_striate, data, seed, overrides, eval_from, args.target, args.recipe, label
        )
        jobs = [ours] if args.reuse_port else [port, ours] if i % 2 == 0 else [ours, port]
        new = []
        for job in jobs:
            r = job()
            print(
                f"{r['program']}, seed {seed} ({r['precision']}): {r['acc']:.2%} with TTA, "
                f"{r['seconds']:.1f} s trained, {r['steps']} steps, {r['per_step']:.3f} s/step, "
                f"to {args.target:.1%}: "
                + (
                    "not reached" if r["time_to_target"] is None else f"{r['time_to_target']:.1f} s"
                ),
                flush=True,
            )
            new.append(r)
        if args.reuse_port:
            new[0]["port_invocation"] = ports[seed]["invocation"]
            new.append(ports[seed])
        results += new
        if not args.quick:  # each pair as soon as it is done: a long run stopped keeps them
            stamp = {
                "date": datetime.date.today().isoformat(),
                "invocation": invocation,
                "device": name,
                "threads": threads,
                "budget": run_budget,
                "target": args.target,
                "load_average": os.getloadavg(),
            }
            ran = [r for r in new if not (args.reuse_port and r["program"] == peer)]
            append_record(args.record, [{**stamp, **r} for r in ran])
            write_table("cifar10_vs_airbench", table(read_record(args.record)))
    for seed in seeds:
        a, s = (
            next(r for r in results if r["seed"] == seed and r["program"] == p)
            for p in (peer, f"striate {label}")
        )
        tt = (
            f"{s['time_to_target'] / a['time_to_target']:.3f}"
            if a["time_to_target"] and s["time_to_target"]
            else "—"
        )
        print(
            f"seed {seed}: striate/{args.peer} total time {s['seconds'] / a['seconds']:.3f}, "
            f"time to {args.target:.1%} {tt}"
        )


if __name__ == "__main__":
    main()
