"""torch's CPU threads on a machine that other work is using: training steps with one thread and
with one per core, on an idle machine and beside busy processes.

    python benchmarks/threads_under_load.py          # batch 256, 5 steps, 3 rounds (~2 min)
    python benchmarks/threads_under_load.py --quick  # a smoke test; records nothing

torch's CPU threads meet at the end of every parallel operation, so a thread that shares its core
with another busy process holds up the others until the scheduler gives it the core back. This
times the same training steps (``cifar_fast``, the CIFAR-10 recipes' network, forward, backward
and an SGD step at batch 256, channels-last, in the precision ``precision="auto"`` picks, under
the Trainer's malloc setting and ``OMP_WAIT_POLICY=PASSIVE`` as `striate` sets it) with 1 thread and
with one per usable core, while 0, 1, 2 busy processes (``while True: pass``) run beside them; the
rounds alternate the thread counts.
It also shows how many threads a run that sets none trains with there (`striate.threads`), and
whether that was the faster choice. Rows: seconds per step, and the ratio many/one (above 1: one
thread faster).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `striate` sets it before torch loads

import argparse  # noqa: E402
import datetime  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

from _common import (  # noqa: E402
    RESULTS,
    append_record,
    machine,
    median_time,
    print_machine,
    print_table,
    row,
    same_malloc_as_trainer,
)
from striate.engine.precision import resolve_precision  # noqa: E402
from striate.models import create  # noqa: E402
from striate.threads import others_running, threads_for_load  # noqa: E402

RECORD = RESULTS / "threads_under_load.jsonl"


def training_step(batch: int):
    """One forward, backward and SGD step of cifar_fast on a random batch."""
    torch.manual_seed(0)
    model = create("cifar_fast", num_classes=10).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    dtype = resolve_precision("auto", torch.device("cpu")).dtype

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    return step


def busy_processes(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(batch: int, steps: int, rounds: int, loads: list[int]) -> list[dict]:
    cores = len(os.sched_getaffinity(0))
    counts = sorted({1, cores})
    step = training_step(batch)
    rows = []
    for busy in loads:
        procs = busy_processes(busy)
        try:
            time.sleep(1.0)  # let the scheduler spread them
            others = others_running()
            chosen = threads_for_load(cores, os.cpu_count() or cores, others)
            times: dict[int, list[float]] = {n: [] for n in counts}
            for r in range(rounds):
                for n in counts if r % 2 == 0 else counts[::-1]:
                    torch.set_num_threads(n)
                    times[n].append(median_time(step, steps))
        finally:
            for p in procs:
                p.kill()
                p.wait()
        best = {n: min(t) for n, t in times.items()}
        section = f"{busy} busy process{'es' * (busy != 1)} ({others} other runnable seen)"
        for n in counts:
            rows.append(row(section, f"{n} thread{'s' * (n != 1)}", best[n], "s", "per step"))
        if len(counts) > 1:
            rows.append(row(section, f"{cores} threads / 1", best[cores] / best[1], "×"))
        fastest = min(counts, key=lambda n: best[n])
        rows.append(
            row(
                section,
                "a run that sets no threads trains with",
                chosen,
                "threads",
                "the faster choice" if best[chosen] <= 1.05 * best[fastest] else "not the faster",
            )
        )
    torch.set_num_threads(cores)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="steps timed per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loads", type=int, nargs="+", default=None, help="busy processes beside (default: 0 1 2)"
    )
    parser.add_argument("--quick", action="store_true", help="batch 16, 1 round; records nothing")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.rounds = 16, 2, 1
    loads = args.loads or [0, 1, 2]
    print_machine()
    with same_malloc_as_trainer():
        rows = measure(args.batch, args.steps, args.rounds, loads)
    print_table(rows)
    if not args.quick:
        meta = {"date": datetime.date.today().isoformat(), "machine": machine()}
        meta.update(batch=args.batch, steps=args.steps, rounds=args.rounds)
        append_record(RECORD, [{**meta, **r} for r in rows])


if __name__ == "__main__":
    main()
