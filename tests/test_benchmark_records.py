"""The CIFAR-10 benchmark's records (benchmarks/_airbench_record.py, benchmarks/summary.py): runs
pair only with the port's runs of the same machine, and a CPU whose bf16 check STRIATE_CPU_BF16
overrode counts as another machine."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ZEN4 = ["avx2", "avx512f", "avx512_bf16", "fma"]


@pytest.fixture
def records(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("_airbench_record")


def run(program, invocation, seed, forced=None, **extra):
    machine = {"flags": ZEN4, "native_bf16": forced is None, "bf16_forced_by": forced}
    return {
        "device": "AMD EPYC, 2 threads",
        "threads": 2,
        "machine": machine,
        "program": program,
        "invocation": invocation,
        "seed": seed,
        **extra,
    }


def test_a_forced_precision_is_labelled_and_an_old_record_is_not(records):
    label = records.machine_label
    assert label(run("x", "a", 0)) == "AMD EPYC, 2 threads [avx2 avx512f avx512_bf16 fma]"
    forced = label(run("x", "a", 0, forced="STRIATE_CPU_BF16=0"))
    assert forced == "AMD EPYC, 2 threads [avx2 avx512f avx512_bf16 fma] STRIATE_CPU_BF16=0"
    old = {"device": "AMD EPYC, 2 threads", "machine": {"flags": ["avx2"]}}  # before the key
    assert label(old) == "AMD EPYC, 2 threads [avx2]"
    assert label({"device": "NVIDIA H200", "machine": {"bf16_forced_by": "x"}}) == "NVIDIA H200"


def test_fp32_runs_on_a_bf16_cpu_neither_replace_nor_pair_with_its_bf16_runs(records):
    fp32 = "STRIATE_CPU_BF16=0"
    entries = [
        run(records.PORT, "bf16", 0),
        run("striate cifar10-quick", "bf16", 0),
        run(records.PORT, "fp32", 0, forced=fp32),
        run("striate cifar10-quick", "fp32", 0, forced=fp32),
        # an fp32 striate run told to reuse the bf16 port's run of its seed: not a pair
        run("striate cifar10-muon", "late", 0, forced=fp32, port_invocation="bf16"),
    ]
    pairs = records.recorded_pairs(entries)
    assert len(pairs) == 2  # the bf16 pair and the fp32 pair, each under its own machine
    for (label, *_), seeds in pairs.items():
        port, striate = seeds[0]
        assert port["invocation"] == striate["invocation"]
        assert label.endswith(fp32) == (port["invocation"] == "fp32")


def test_the_summary_names_the_override_beside_native_bf16(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    summary = importlib.import_module("summary")
    entry = run("x", "a", 0, forced="STRIATE_CPU_BF16=0")
    entry["machine"].update(cpu="AMD EPYC", threads=2)
    assert summary.machine([entry]) == "AMD EPYC, native bf16 no (STRIATE_CPU_BF16=0), 2 threads"
    entry = run("x", "a", 0)
    entry["machine"].update(cpu="AMD EPYC", threads=2)
    assert summary.machine([entry]) == "AMD EPYC, native bf16 yes, 2 threads"
