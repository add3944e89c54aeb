"""The fit-gap check reads over- and underfitting."""

from __future__ import annotations

import pytest

from striate.train.doctor import doctor
from tests.train.doctor.helpers import FAST, convnet


def test_fit_gap_reads_overfitting_and_underfitting_from_a_history(digits):
    def gap(train_acc, val_acc):
        history = [{"train_acc": train_acc, "val_acc": val_acc}]
        return doctor(convnet(), digits, checks=["fit_gap"], history=history, **FAST)["fit_gap"]

    over = gap(0.99, 0.70)
    assert over.status == "warn" and "overfitting" in over.advice
    assert over.value == pytest.approx(0.29)
    under = gap(0.40, 0.39)
    assert under.status == "warn" and "underfitting" in under.advice
    assert gap(0.95, 0.93).status == "pass"
