"""The activation checks catch dead ReLUs and saturated tanh units."""

from __future__ import annotations

import torch
from torch import nn

from striate.train.doctor import doctor
from tests.train.doctor.helpers import FAST, convnet


def test_dead_relus_are_caught(digits):
    model = convnet()
    with torch.no_grad():
        model.classifier[0].bias.fill_(-100.0)  # every hidden unit of the FC layer is off
    report = doctor(model, digits, checks=["activations"], **FAST)
    check = report["dead_relus"]
    assert check.status == "fail"
    assert check.value == 1.0 and "classifier.1" in check.detail
    assert report["activation_scale"].status == "fail"  # that layer outputs a constant 0
    by_name = {s.name: s for s in report.activations}
    assert by_name["classifier.1"].dead_frac == 1.0 and by_name["features.2"].dead_frac < 0.25


def test_saturated_tanh_is_caught(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 100), nn.Tanh(), nn.Linear(100, 10))
    with torch.no_grad():
        model[1].weight.normal_(0, 1.0)  # N(0, 1) weights on 64 inputs: |z| ~ 8, tanh at ±1
    check = doctor(model, digits, checks=["saturation"], **FAST)["saturation"]
    assert check.status == "fail" and check.value > 0.5
