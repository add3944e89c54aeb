"""torch's CPU threads on a machine that other work is using.

torch's CPU threads meet at the end of every parallel operation, so a thread that shares its core
with another busy process holds up the others until the scheduler gives it the core back. On a
2-core machine beside one busy process, training steps took 1.05–1.12× as long with 2 threads as
with 1 at batch 256, 2.0× at batch 64 and 3.6× at batch 16 (with ``OMP_WAIT_POLICY=PASSIVE``,
which `striate` sets; 1.29× at batch 256 without it; ``benchmarks/threads_under_load.py``). A run
that sets no thread count (`TrainConfig.threads`) trains with torch's one per core, less one for
each core that other processes keep busy when it starts (`threads_for_load`); the count goes into
its config.json, and a resumed run keeps it (the thread count changes the last bits of the sums).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import warnings
from pathlib import Path

__all__ = ["others_running", "set_passive_wait", "spare_busy_cores", "threads_for_load"]

_spinning = False  # torch's OpenMP threads spin while they wait (set_passive_wait came too late)


def set_passive_wait() -> None:
    """OpenMP threads that sleep while they wait instead of spinning (``OMP_WAIT_POLICY=PASSIVE``,
    unless the variable is set): no cost on an idle machine, and on a loaded 2-core one training
    ran 3.6x faster (29 s -> 8 s), because a spinning thread no longer holds the core its partner
    needs. OpenMP reads it when torch loads, so `import striate` calls this first; after torch
    has loaded it cannot apply, and `spare_busy_cores` says so on a busy machine."""
    global _spinning
    _spinning = "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def spare_busy_cores() -> int:
    """Leave out of torch's threads (for this process) the cores that other processes keep busy
    now, with a warning that says so; the count it trains with (torch's, on an idle machine). A
    count this lowered before is raised again when the load has gone."""
    global _lowered
    import torch  # here: the base modules load without torch

    threads = torch.get_num_threads()
    if _lowered is not None and threads == _lowered[1]:
        threads = _lowered[0]  # set here, not by the user: from torch's count before
    cores = os.cpu_count() or threads
    others = others_running()
    n = threads_for_load(threads, cores, others)
    torch.set_num_threads(n)
    _lowered = (threads, n) if n < threads else None
    if n < threads:
        warnings.warn(
            f"other processes are running {others} thread{'s' * (others != 1)} on this "
            f"machine's {cores} cores: training with {n} torch thread{'s' * (n != 1)}, not "
            f"{threads} that would wait on each other (--threads {threads} to use them all)",
            stacklevel=2,
        )
    if others and n > 1 and _spinning:
        warnings.warn(
            "torch was imported before striate, so its threads spin while they wait for each "
            "other, on cores that other processes need (beside one busy process, 2 threads took "
            "1.29x the time of 1 per step spinning, 1.05-1.11x sleeping): import striate first, "
            "or set OMP_WAIT_POLICY=PASSIVE (ACTIVE to keep them spinning without this warning)",
            stacklevel=2,
        )
    return n


_lowered: tuple[int, int] | None = None  # (torch's count, the count set) by spare_busy_cores


def others_running(samples: int = 5, interval: float = 0.01) -> int | None:
    """The threads of other processes that are running or waiting for a core now: the median of
    `samples` reads, `interval` seconds apart, of the kernel's count of runnable threads
    (/proc/stat's ``procs_running``) less this process's own. None where /proc cannot say (not
    Linux)."""
    counts = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        try:
            counts.append(max(0, _runnable() - _own_runnable()))
        except (OSError, ValueError):
            return None
    return round(statistics.median(counts))


def threads_for_load(threads: int, cores: int, others: int | None) -> int:
    """`threads` less the cores (of `cores`) that `others` runnable threads keep busy, at least
    one; all of them when the load is unknown (None). With no core left, one: on 2 cores beside 2
    busy processes, 2 threads took 0.92–0.95× the time of 1 at batch 64–256 but 7.3× at batch 16,
    where the many small operations make them wait on each other most."""
    if others is None:
        return threads
    return max(1, min(threads, cores - others))


def _runnable() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("procs_running "):
            return int(line.split()[1])
    raise ValueError("/proc/stat has no procs_running line")


def _own_runnable() -> int:
    """This process's threads in state R (running or runnable), the calling one included."""
    n = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread has ended
            continue
        n += text[text.rindex(")") + 2] == "R"  # the state follows the name in parentheses
    return n
