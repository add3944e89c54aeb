"""The doctor's shared fixtures: the digits, a healthy ConvNet's report, a converged ConvNet
(each made once for the package)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.data import ImageSet, load_dataset
from striate.train.doctor import DoctorReport, doctor
from tests.train.doctor.helpers import FAST, convnet


@pytest.fixture(scope="package")
def digits() -> ImageSet:
    return load_dataset("digits", "train")


@pytest.fixture(scope="package")
def healthy(digits) -> tuple[nn.Module, dict, DoctorReport]:
    model = convnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = doctor(model, digits, lr=0.01, **FAST)
    return model, before, report


@pytest.fixture(scope="package")
def converged(digits) -> nn.Module:
    """The ConvNet trained on the digits to a training loss near 0 (Adam, 8 epochs)."""
    from striate.data import Normalizer

    model = convnet()
    x, y = Normalizer().fit(digits)(digits.images), digits.labels
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        for idx in torch.randperm(len(x), generator=g).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return model
