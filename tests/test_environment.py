"""striate.environment: the machine's facts against independent sources (torch, os, /proc,
shutil), the advice on constructed throughputs, and short real measurements of the in-memory and
the streaming loader against training, bounded by their budget (on a fake clock)."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from striate.engine.precision import cpu_has_bf16
from striate.environment import Situation, advice, machine_facts, measure, memory_bytes, throughput
from striate.environment import facts as facts_module
from striate.errors import StriateError

GIB = 2**30


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def test_versions_and_devices_match_torch():
    facts = machine_facts()
    assert facts["torch"] == torch.__version__
    assert facts["cuda"]["built_with"] == torch.version.cuda
    assert facts["cuda"]["available"] == torch.cuda.is_available()
    assert len(facts["cuda"]["devices"]) == (
        torch.cuda.device_count() if torch.cuda.is_available() else 0
    )
    assert facts["threads"]["torch"] == torch.get_num_threads()
    assert facts["cpu"]["cores"] == os.cpu_count()
    assert facts["cpu"]["usable_cores"] == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("forced", ["0", "1"])
def test_cpu_bf16_is_the_precision_modules_decision(monkeypatch, forced):
    monkeypatch.setenv("STRIATE_CPU_BF16", forced)
    cpu = machine_facts()["cpu"]
    assert cpu["native_bf16"] is cpu_has_bf16() is (forced == "1")
    assert cpu["bf16_forced_by"] == f"STRIATE_CPU_BF16={forced}"
    assert cpu["precision_auto"] == ("bf16" if forced == "1" else "fp32")


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux's /proc")
def test_memory_against_sysconf_and_meminfo():
    mem = memory_bytes()
    page = os.sysconf("SC_PAGE_SIZE")
    assert mem["total"] == pytest.approx(os.sysconf("SC_PHYS_PAGES") * page, rel=0.01)
    # available memory moves while the test runs
    assert abs(mem["available"] - _meminfo_kib("MemAvailable") * 1024) < 0.5 * GIB
    assert 0 < mem["available"] <= mem["total"]


def test_disk_of_the_runs_folder_or_its_nearest_parent(tmp_path):
    usage = shutil.disk_usage(tmp_path)
    disk = machine_facts(tmp_path / "not" / "yet")["disk"]
    assert disk["path"] == str(tmp_path / "not" / "yet")
    assert disk["total"] == usage.total
    assert abs(disk["free"] - usage.free) < 0.5 * GIB


def test_cpu_model_is_read_from_proc_cpuinfo():
    model = facts_module.cpu_model()
    assert model
    info = Path("/proc/cpuinfo")
    if info.exists() and "model name" in info.read_text():
        assert f": {model}\n" in info.read_text()


@pytest.mark.parametrize(("number", "text"), [(90100, "9.1.0"), (8907, "8.9.7"), (None, None)])
def test_cudnn_version_text(number, text):
    assert facts_module.cudnn_text(number) == text


# ---------------------------------------------------------------------------------- advice


def test_slow_streaming_advises_workers_and_the_cache():
    s = Situation("cuda", cuda_available=True, precision="bf16", streaming=True, workers=2, cores=8)
    lines = advice(1000, 3000, s)
    assert lines[0].startswith("data loading is the bottleneck: it is 3.0× slower than training")
    assert "(1,000 vs 3,000 images/s)" in lines[0]
    assert any("--workers; 2 now, 8 cores usable" in line for line in lines)
    assert any("decode once to the cache and keep the set in memory" in line for line in lines)


def test_slow_streaming_with_every_core_decoding_advises_the_cache_only():
    s = Situation("cuda", cuda_available=True, streaming=True, workers=8, cores=8)
    lines = advice(1000, 3000, s)
    assert not any("--workers" in line for line in lines)
    assert any("cache" in line for line in lines)


def test_slow_in_memory_loading_on_a_cpu_with_a_gpu_present():
    lines = advice(500, 2000, Situation("cpu", cuda_available=True))
    assert "4.0× slower" in lines[0]
    assert "lighter --augment" in lines[1] and "--device cuda" in lines[1]


def test_training_bottleneck_on_a_cpu():
    lines = advice(10_000, 1_000, Situation("cpu"))
    assert lines[0].startswith("training is the bottleneck: data loading delivers 10.0×")
    assert any("machine with a GPU" in line for line in lines)
    assert not any("bf16" in line for line in lines)
    bf16 = advice(10_000, 1_000, Situation("cpu", cpu_bf16=True, cuda_available=True))
    assert any("--device cuda" in line for line in bf16)
    assert any("--precision bf16" in line for line in bf16)


def test_training_bottleneck_on_a_gpu():
    fp32 = advice(10_000, 1_000, Situation("cuda", cuda_available=True, precision="fp32"))
    assert any("mixed precision" in line for line in fp32)
    bf16 = advice(10_000, 1_000, Situation("cuda", cuda_available=True, precision="bf16"))
    assert not any("mixed precision" in line for line in bf16)
    assert any("--batch-size" in line for line in bf16)


def test_balanced_and_nothing_measured():
    assert advice(1000, 1100, Situation("cpu"))[0].startswith(
        "data loading and training are balanced"
    )
    assert "more --seconds" in advice(0.0, 100.0, Situation("cpu"))[0]


# ---------------------------------------------------------------------------- measurements


def test_short_measurement_in_memory():
    m = measure("digits", seconds=1, device="cpu", batch_size=32, progress=False)
    assert m.loader == "BatchLoader" and not m.streaming
    assert m.images_in_set > 0 and m.image_shape == (1, 8, 8)
    assert m.loading.images_per_s > 0 and m.training.images_per_s > 0
    assert m.loading.images <= m.loading.batches * 32
    assert m.training.images == m.training.batches * 32
    assert m.precision == "fp32" and m.device == "cpu"


@pytest.fixture
def image_folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for split, cls in itertools.product(("train", "test"), ("a", "b")):
        (tmp_path / split / cls).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    return tmp_path


def test_short_measurement_streams_a_folder(image_folder):
    m = measure(str(image_folder), seconds=1, device="cpu", batch_size=8, workers=0, progress=False)
    assert m.loader == "StreamingLoader" and m.streaming
    assert m.images_in_set == 24 and m.image_shape == (3, 16, 16) and m.workers == 0
    assert m.loading.images_per_s > 0 and m.training.images_per_s > 0


def test_each_measurement_stops_at_its_share_of_the_budget(monkeypatch):
    ticks = itertools.count()
    monkeypatch.setattr(throughput, "now", lambda: next(ticks) * 0.01)  # 10 ms a reading
    m = measure("digits", seconds=0.2, device="cpu", batch_size=16, progress=False)
    # 0.1 s each: about 10 readings, a few per batch or step
    assert 1 <= m.loading.batches <= 10 and m.loading.seconds <= 0.1 + 1e-9
    assert 1 <= m.training.batches <= 10 and m.training.seconds <= 0.1 + 1e-9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seconds": -1}, "seconds must be a number in (0, 3600]"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"workers": -1}, "workers must be a non-negative integer"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"device": "xla"}, "striate env measures on auto, cpu, cuda or cuda:N"),
        ({"data": "no-such-set"}, "unknown dataset 'no-such-set'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(StriateError, match=None) as e:
        measure(**{"seconds": 1, "progress": False, **options})
    assert message in str(e.value)
