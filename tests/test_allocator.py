"""The malloc settings `Trainer.fit` and the attribution methods' batches apply on a CPU: freed
buffers are reused instead of being returned to the system and faulted in again (counted by the
kernel: minor page faults), and the user's own choice is left alone. The page counts are taken
in a fresh interpreter, since the settings are process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import partial

import pytest
import torch
from torch import nn

from striate import allocator
from striate.interpret.faithfulness import deletion_curve
from striate.interpret.gradients import integrated_gradients, smooth_grad
from striate.interpret.perturbation import occlusion

GLIBC = platform.libc_ver()[0] == "glibc"

# a training-like loop: 64 MiB buffers allocated and freed; prints the minor page faults of the
# last 10 rounds and whether striate applied its settings. With the imports of a training process:
# in a bare one (torch and striate.allocator alone) glibc took 8 rounds to reuse a freed block.
PROGRAM = """
import contextlib, resource, sys, torch
import striate.engine
from striate import allocator

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def rounds(size=16 << 20):
    for i in range(13):
        if i == 3:
            start = faults()
        x = torch.ones(size)  # 64 MiB, every page written
        del x
    return faults() - start

on = sys.argv[1] == "striate"
scope = allocator.reusing_freed_memory() if on else contextlib.nullcontext(False)
with scope as applied:
    inside = rounds()
after = rounds(64 << 20) // 4  # 256 MiB, larger than any freed block: glibc's settings again
print(bool(applied), inside, after)
"""


def run(mode: str, **env: str) -> tuple[bool, int, int]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    clean.pop("GLIBC_TUNABLES", None)
    clean.pop("STRIATE_MALLOC", None)
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


PAGES = 10 * (64 << 20) // 4096  # what glibc's mmap of each buffer faults in over 10 rounds


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_freed_buffers_are_reused_while_training_and_glibc_restored_after():
    applied, inside, after = run("striate")
    _, default, _ = run("plain")
    assert applied
    assert default > PAGES // 2, default  # the defaults: a fresh mmap every round
    assert inside < PAGES // 100, inside  # kept: the same pages reused
    assert after > PAGES // 2, after  # restored: large blocks mmapped (and unmapped) again


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
@pytest.mark.parametrize(
    "env",
    [
        {"STRIATE_MALLOC": "system"},
        {"MALLOC_MMAP_THRESHOLD_": "65536"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
    ],
)
def test_the_users_choice_is_left_alone(env):
    applied, inside, _ = run("striate", **env)
    assert not applied
    if "STRIATE_MALLOC" in env:
        assert inside > PAGES // 2  # glibc's own behaviour


def test_nested_scopes_share_the_outer_one():
    with allocator.reusing_freed_memory() as outer:
        with allocator.reusing_freed_memory() as inner:
            assert inner == outer
        assert allocator._depth == (1 if allocator.applies() else 0)
    assert allocator._depth == 0


def test_user_chose_names_the_variable(monkeypatch):
    for name in [n for n in os.environ if n.startswith("MALLOC_")] + ["GLIBC_TUNABLES"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("STRIATE_MALLOC", raising=False)
    assert allocator.user_chose() is None
    monkeypatch.setenv("MALLOC_ARENA_MAX_", "2")
    assert allocator.user_chose() == "MALLOC_ARENA_MAX_"
    monkeypatch.delenv("MALLOC_ARENA_MAX_")
    monkeypatch.setenv("STRIATE_MALLOC", "System")
    assert allocator.user_chose() == "STRIATE_MALLOC=system"


def _probe(seen: list[int]) -> nn.Module:
    """A model that records, at each forward pass, how many scopes are open."""

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(allocator._depth)
            return x.flatten(1)[:, :3] * 2.0

    return Probe()


def _deletion(model: nn.Module, x: torch.Tensor, target: int, **options) -> torch.Tensor:
    return deletion_curve(model, x, torch.rand_like(x), target, steps=6, **options)[1]


@pytest.mark.parametrize(
    "method",
    [integrated_gradients, partial(occlusion, patch=4, stride=4), smooth_grad, _deletion],
)
def test_the_attribution_batches_keep_freed_memory_on_a_cpu(method, monkeypatch):
    monkeypatch.delenv("STRIATE_MALLOC", raising=False)
    seen: list[int] = []
    method(_probe(seen), torch.rand(1, 3, 8, 8), 0, internal_batch_size=2)
    assert len(seen) > 2 and seen[-1] == (1 if allocator.applies() else 0)
    assert allocator._depth == 0
    monkeypatch.setenv("STRIATE_MALLOC", "system")  # the user's choice wins here too
    seen.clear()
    method(_probe(seen), torch.rand(1, 3, 8, 8), 0, internal_batch_size=2)
    assert set(seen) == {0}
