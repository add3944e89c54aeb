"""The pairs in `results/cifar10_vs_airbench.jsonl`, from JSON alone: shared by the benchmark
(which seeds a machine lacks, its table) and `summary.py` (which imports no torch-heavy code)."""

from __future__ import annotations

PORT = "airbench94 port"
PORT_MUON = "airbench94_muon port"
PORTS = (PORT, PORT_MUON)


def comparable(e: dict) -> tuple:
    """What makes runs comparable: the machine, its thread count and the budget. A CPU is named
    by its model and the flags that pick its kernels (`machine`'s ``flags``): CPUs that report
    one model name ("AMD EPYC") may differ, one with native bf16 and one without."""
    return (machine_label(e), e["threads"], e.get("budget", ""))


def machine_label(e: dict) -> str:
    """A record's device, with its CPU's speed flags when it ran on a CPU, and the
    STRIATE_CPU_BF16 setting when one overrode the bf16 check (a CPU with native bf16 told to
    train in fp32 is another machine for these tables)."""
    device = e["device"]
    if device.startswith("NVIDIA"):
        return device
    m = e.get("machine", {})
    flags = m.get("flags") or []
    label = f"{device} [{' '.join(flags)}]" if flags else device
    forced = m.get("bf16_forced_by")
    return f"{label} {forced}" if forced else label


def recorded_pairs(entries: list[dict]) -> dict[tuple, dict[int, tuple[dict, dict]]]:
    """Per machine, thread count, budget, port (the peer) and striate program (its recipe), each
    seed's latest pair of runs: a striate run and the port's run of the same seed from its
    invocation, or from the earlier invocation it names (``port_invocation``: the port's run
    reused). Seeds run by different invocations on the same machine combine."""
    ports = {(e["invocation"], e["seed"]): e for e in entries if e["program"] in PORTS}
    out: dict[tuple, dict[int, tuple[dict, dict]]] = {}
    for e in entries:  # in record order: a later pair replaces
        if e["program"] in PORTS:
            continue
        port = ports.get((e.get("port_invocation", e["invocation"]), e["seed"]))
        if port is not None and comparable(port) == comparable(e):
            key = (*comparable(e), port["program"], e["program"])
            out.setdefault(key, {})[e["seed"]] = (port, e)
    return out
