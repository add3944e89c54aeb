"""What the doctor's tests share: small budgets, the ConvNet under test, and the reading of the
learning-rate check's verdict from the numbers it prints (also used by tests/cli)."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from striate import models
from striate.train.doctor import Check
from striate.train.doctor.checks.thresholds import LR_FLAT, LR_RISE, LR_SPIKE, LR_UNTRAINED

FAST = dict(max_samples=600, overfit_steps=100, lr_steps=30, gap_epochs=6)


def convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8))


LR_DETAIL = re.compile(r"^(\S+) → (?:peak (\S+) \(step \d+\) → )?(\S+) in ")


def assert_lr_verdict_follows_its_numbers(check: Check, curve: list[float]) -> None:
    """The learning_rate check prints "start → [peak P (step k) →] end": its status must follow
    from those numbers by the documented thresholds (an untrained model: the scale is the start
    loss), and the peak is printed whenever the curve rose a quarter above the start."""
    m = LR_DETAIL.match(check.detail)
    assert m, check.detail
    before, after = float(m[1]), float(m[3])
    peak = float(m[2]) if m[2] else None
    if peak is None:
        assert max(curve) <= 1.25 * before
    else:
        assert peak == pytest.approx(max(curve), rel=5e-3)
    spiked = peak is not None and peak > LR_SPIKE * before
    if after > LR_RISE * before or (spiked and after > LR_UNTRAINED * before):
        expected = "fail"
    elif spiked or after > (1 - LR_FLAT) * before:
        expected = "warn"
    else:
        expected = "pass"
    assert check.status == expected, (check.detail, check.advice)
