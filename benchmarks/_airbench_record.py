"""The pairs in `results/cifar10_vs_airbench.jsonl`, from JSON alone: shared by the benchmark
(which seeds a machine lacks, its table) and `summary.py` (which imports no torch-heavy code)."""

from __future__ import annotations

PROGRAMS = ("airbench94 port", "striate cifar10-fast")


def _key(e: dict) -> tuple:
    """What makes runs comparable: the machine, its thread count and the budget."""
    return (e["device"], e["threads"], e.get("budget", ""))


def recorded_pairs(entries: list[dict]) -> dict[tuple, dict[int, tuple[dict, dict]]]:
    """Per machine, thread count and budget, each seed's latest pair of runs (both programs
    from one invocation): seeds run by different invocations on the same machine combine."""
    runs: dict[tuple, dict[int, dict[str, dict]]] = {}
    for e in entries:
        runs.setdefault((*_key(e), e["invocation"]), {}).setdefault(e["seed"], {})[e["program"]] = e
    out: dict[tuple, dict[int, tuple[dict, dict]]] = {}
    for (*key, _inv), seeds in runs.items():  # in record order: a later pair replaces
        for seed, p in seeds.items():
            if len(p) == 2:
                pair = (p[PROGRAMS[0]], p[PROGRAMS[1]])
                out.setdefault(tuple(key), {})[seed] = pair
    return out
