"""The checks of the untrained setup catch their planted faults: initial loss, regularisation,
overfitting a few examples."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.train.doctor import doctor
from tests.train.doctor.helpers import FAST, convnet


def test_wrong_initial_scale_fails_the_initial_loss_check(digits):
    model = convnet()
    with torch.no_grad():
        model.classifier[-1].weight.mul_(100)  # scores far from 0: loss far from ln 10
    report = doctor(model, digits, checks=["initial_loss"], **FAST)
    check = report["initial_loss"]
    assert check.status == "fail"
    assert check.value > 2 * math.log(10)
    assert "ln 10" in check.detail and "smaller scale" in check.advice


def test_trained_weights_skip_the_initial_loss_check(digits):
    report = doctor(convnet(), digits, checks=["initial_loss"], pretrained=True, **FAST)
    assert report["initial_loss"].status == "skip" and not report.failed


def test_plain_tensors_work_and_the_hinge_loss_expects_c_minus_1():
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    y = torch.arange(64) % 4
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        model[2].weight.mul_(0.01)
    check = doctor(model, (x, y), loss="hinge", checks=["initial_loss"])["initial_loss"]
    assert check.status == "pass" and check.value == pytest.approx(3.0, rel=0.05)


def test_regularisation_raises_the_loss(digits):
    check = doctor(convnet(), digits, checks=["regularisation"], **FAST)["regularization"]
    assert check.status == "pass" and check.value > 0


class _Blind(nn.Module):
    """Ignores its input: it cannot fit labels that vary."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))
        self.w = nn.Linear(64, 10)

    def forward(self, x):
        return self.w(torch.zeros_like(x.flatten(1))) + self.bias


def test_a_model_that_cannot_learn_fails_to_overfit(digits):
    check = doctor(_Blind(), digits, checks=["overfit"], **FAST)["overfit"]
    assert check.status == "fail"
    assert check.value <= 0.3
