"""torch's threads on a busy machine (`striate.threads`), against counts of processes started
here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import pytest
import torch

import striate.threads as threads
from striate.threads import others_running, spare_busy_cores, threads_for_load


@pytest.mark.parametrize(
    "torch_threads, cores, others, expected",
    [
        (2, 2, 0, 2),  # idle: torch's own count
        (2, 2, 1, 1),  # one core busy
        (2, 2, 2, 1),  # no core left: one, which waits on no other
        (2, 2, 5, 1),
        (4, 16, 3, 4),  # enough free cores beyond torch's
        (16, 16, 3, 13),
        (8, 8, None, 8),  # load unknown: unchanged
        (1, 2, 0, 1),  # never more than torch's
    ],
)
def test_threads_for_load(torch_threads, cores, others, expected):
    assert threads_for_load(torch_threads, cores, others) == expected


@pytest.fixture
def spinners():
    """Start n processes that keep a core busy each; killed after the test."""
    procs: list[subprocess.Popen] = []

    def start(n: int) -> None:
        procs.extend(subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n))
        time.sleep(0.5)  # past the interpreter's start-up

    yield start
    for p in procs:
        p.kill()
        p.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_others_running_counts_busy_processes_and_not_this_ones_threads(spinners):
    spinners(2)
    assert others_running() >= 2  # both are runnable all the time; this process is left out


def test_others_running_is_none_where_proc_cannot_say(monkeypatch):
    def missing() -> int:
        raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(threads, "_runnable", missing)
    assert others_running() is None


@pytest.fixture
def torch_threads(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_lowered", None)
    yield
    torch.set_num_threads(before)


def test_spare_busy_cores_lowers_torch_threads_with_a_warning(monkeypatch, torch_threads):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    torch.set_num_threads(2)
    monkeypatch.setattr(threads, "others_running", lambda: 1)
    message = "running 1 thread on this machine's 2 cores: training with 1 torch thread, not 2"
    with pytest.warns(UserWarning, match=message):
        assert spare_busy_cores() == 1
    assert torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "others_running", lambda: 0)
    assert spare_busy_cores() == 2  # the load has gone: torch's count again
    assert torch.get_num_threads() == 2


def test_spare_busy_cores_keeps_a_count_the_user_set(monkeypatch, torch_threads):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(threads, "others_running", lambda: 2)
    torch.set_num_threads(4)
    with pytest.warns(UserWarning):
        assert spare_busy_cores() == 2
    torch.set_num_threads(1)  # the user's own choice after it
    monkeypatch.setattr(threads, "others_running", lambda: 0)
    assert spare_busy_cores() == 1


def test_spare_busy_cores_warns_when_torch_came_first_and_threads_spin(monkeypatch, torch_threads):
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(threads, "others_running", lambda: 2)
    torch.set_num_threads(8)

    def spin_warnings() -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert spare_busy_cores() == 6
        return [str(w.message) for w in caught if "imported before striate" in str(w.message)]

    monkeypatch.setattr(threads, "_spinning", True)
    assert len(spin_warnings()) == 1
    monkeypatch.setattr(threads, "_spinning", False)
    assert spin_warnings() == []


@pytest.mark.parametrize(
    ("code", "spinning"),
    [
        ("import striate, torch", False),
        ("import torch, striate", True),
        ("import os; os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'; import torch, striate", False),
    ],
)
def test_set_passive_wait_knows_when_it_comes_too_late(code, spinning):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; from striate import threads; print(threads._spinning)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(spinning)
