"""What the benchmark scripts share: the table they print, the command line, timing, data."""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from striate import allocator
from striate._atomic import atomic_write

T = TypeVar("T")


RESULTS = Path(__file__).resolve().parent / "results"
# striate's Trainer keeps the memory a CPU step frees for the next while it trains
# (striate.engine.allocator); a peer's training loop timed beside it runs under the same setting
# by `same_malloc_as_trainer`
same_malloc_as_trainer = allocator.reusing_freed_memory
MALLOC_KEPT = allocator.applies()
BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def read_record(path: Path) -> list[dict]:
    """The runs appended to a JSON-lines record, oldest first."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def memory_kb(key: str) -> int:
    """A memory line of /proc/self/status (VmRSS, VmHWM), in kB."""
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def in_fresh_process(script: str, job: dict) -> dict:
    """`script --worker JOB` run in a fresh Python process: the JSON its last line prints."""
    out = subprocess.run(
        [sys.executable, script, "--worker", json.dumps(job)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_name(threads: int) -> str:
    """The CPU's model name and the threads used, for a record's `device`."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "CPU",
    )
    return f"{model}, {threads} threads"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# the CPU flags that decide which kernels run (vector width, native bf16, AMX tiles)
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "fma")


def machine() -> dict:
    """What decides speed here: the CPU (model, cores, the flags of SPEED_FLAGS it has, native
    bf16 as striate decides it), torch and its oneDNN/MKL, torch's threads now, the GPUs.
    Recorded with every benchmark's results and printed at the top of its output."""
    threads = torch.get_num_threads()
    return {**_machine(), "threads": threads, "malloc_kept_in_training": MALLOC_KEPT}


@functools.cache
def _machine() -> dict:
    from striate.environment.facts import cpu_facts, cuda_facts

    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    config = torch.__config__.show()
    onednn = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    capability = re.search(r"CPU capability usage: (\w+)", config)
    cpu = cpu_facts()
    gpus = cuda_facts()["devices"]
    return {
        "cpu": cpu["model"],
        "cores": cpu["usable_cores"],
        "flags": [f for f in SPEED_FLAGS if f in flags],
        "native_bf16": cpu["native_bf16"],
        "bf16_forced_by": cpu["bf16_forced_by"],  # STRIATE_CPU_BF16, when it overrode the check
        "torch": torch.__version__,
        "kernels": capability.group(1) if capability else None,  # the ATen CPU kernels used
        "onednn": onednn.group(1) if onednn else None,
        "mkl": mkl.group(1) if mkl else None,
        "gpus": [g.get("name") for g in gpus],
    }


def print_machine() -> None:
    """One line of `machine()`, at the top of a benchmark's output."""
    m = machine()
    libs = ", ".join(f"{k} {m[k]}" for k in ("kernels", "onednn", "mkl") if m[k])
    gpus = f"; GPU {', '.join(m['gpus'])}" if m["gpus"] else ""
    print(
        f"machine: {m['cpu']}, {m['cores']} cores [{' '.join(m['flags']) or 'no SPEED_FLAGS'}], "
        f"native bf16 {'yes' if m['native_bf16'] else 'no'}"
        f"{' (' + m['bf16_forced_by'] + ')' if m['bf16_forced_by'] else ''}; torch {m['torch']}"
        f"{' (' + libs + ')' if libs else ''}, {m['threads']} threads{gpus}; malloc "
        f"{'keeps freed memory while training' if MALLOC_KEPT else 'glibc defaults'}",
        flush=True,
    )


def append_record(path: Path, entries: list[dict]) -> None:
    """Append the entries to the JSON-lines record at `path`, each with `machine()` (unless it
    holds its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for e in entries:
            f.write(json.dumps({**e, "machine": e.get("machine", machine())}) + "\n")


def write_table(name: str, table: str) -> None:
    """Put `table` between BENCHMARKS.md's markers ``<!-- NAME table: written by
    benchmarks/NAME.py -->`` and the next ``<!-- end -->`` (atomically); say so when the markers
    are missing."""
    begin, end = f"<!-- {name} table: written by benchmarks/{name}.py -->", "<!-- end -->"
    text = BENCHMARKS.read_text()
    if begin not in text or end not in text.split(begin, 1)[1]:
        print(f"{BENCHMARKS.name} has no {name} markers: the table is not written")
        return
    head, rest = text.split(begin, 1)
    with atomic_write(BENCHMARKS, "w") as f:
        f.write(f"{head}{begin}\n{table}\n{end}{rest.split(end, 1)[1]}")
    print(f"wrote the {name} table to {BENCHMARKS}")


def stratified_subset(ds, size: int, seed: int = 0):
    """A stratified random subset of `size` images of an ImageSet (all when not smaller)."""
    from striate.data import stratified_split

    if size >= len(ds):
        return ds
    _, keep = stratified_split(ds, size, seed)
    return ds[keep]


@functools.cache
def cifar10_jpeg(train_size: int, test_size: int | None = None, seed: int = 0):
    """(train subset, test set or subset, Normalizer fitted on the train subset) of the CIFAR-10
    JPEG copy in ../shared/data."""
    from striate import load_dataset
    from striate.data import Normalizer

    path = shared_data() / "cifar10" / "cifar10-jpeg.zip"
    train = stratified_subset(load_dataset(path, "train", progress=False), train_size, seed)
    test = load_dataset(path, "test", progress=False)
    if test_size is not None:
        test = stratified_subset(test, test_size, seed)
    return train, test, Normalizer().fit(train)


def row(section: str, program: str, value: float, unit: str, note: str = "") -> dict:
    """One line of the table `print_table` prints."""
    return {"section": section, "program": program, "value": value, "unit": unit, "note": note}


@functools.cache
def results_dir(quick: bool) -> Path:
    """benchmarks/results for a real run; a temporary folder for --quick (keeps the real PNGs)."""
    if quick:
        return Path(tempfile.mkdtemp(prefix="striate-bench-"))
    RESULTS.mkdir(exist_ok=True)
    return RESULTS


def print_table(rows: Sequence[Mapping[str, object]]) -> None:
    """Print rows as aligned columns, after a line naming torch, its threads and the load."""
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load}")
    header = ("section", "program", "value", "unit", "note")
    cells = [header] + [
        (
            str(r["section"]),
            str(r["program"]),
            _fmt(float(r["value"]), str(r["unit"])),  # type: ignore[arg-type]
            str(r["unit"]),
            str(r.get("note", "")),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for k, c in enumerate(cells):
        line = "  ".join(
            v.ljust(w) if i != 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(c, widths, strict=True))
        )
        print(line.rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: float, unit: str) -> str:
    if unit in ("×", "s"):
        return f"{value:.3f}"
    if unit == "fraction":
        return f"{value:.4f}"
    if unit in ("lr", "loss"):
        return f"{value:.4g}"
    if unit == "%":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def shared_data() -> Path:
    """The real datasets: $STRIATE_SHARED_DATA, default ../shared/data beside the repository."""
    return Path(
        os.environ.get(
            "STRIATE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """fn's result and its wall time in seconds."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_sections(
    doc: str,
    sections: Mapping[str, Callable[[bool], list[dict]]],
    argv: list[str] | None = None,
    record: Path | None = None,
) -> None:
    """The command line every benchmark script shares: --sections, --quick, --threads. A real
    run (not --quick) appends its rows, dated, to the JSON-lines `record` when one is given."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--sections",
        default=",".join(sections),
        help=f"comma-separated sections (default all: {', '.join(sections)})",
    )
    parser.add_argument("--quick", action="store_true", help="subsets: a smoke test")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in names if s not in sections]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(sections)}")
    rows: list[dict] = []
    for name in names:
        rows += sections[name](args.quick)
    print_table(rows)
    if record is not None and not args.quick:
        date = datetime.date.today().isoformat()
        append_record(record, [{**r, "date": date} for r in rows])
