"""`doctor` as a whole: a healthy ConvNet passes every check and is left unchanged; bad input is
a ConfigError; the checks come from one registry."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate import models
from striate.errors import ConfigError
from striate.train.doctor import CHECKS, Check, doctor
from tests.train.doctor.helpers import FAST, convnet


def test_a_healthy_convnet_passes_every_check(healthy):
    _, _, report = healthy
    assert [c.name for c in report.checks] == list(CHECKS)
    statuses = {c.name: c.status for c in report.checks}
    assert not report.failed, report.table_text()
    assert statuses["saturation"] == "skip"  # ReLU network: nothing to saturate
    assert all(s == "pass" for n, s in statuses.items() if n != "saturation"), statuses
    # the initial loss of a fresh softmax classifier is ln C
    assert report["initial_loss"].value == pytest.approx(math.log(10), rel=0.2)
    assert report["overfit"].value == 1.0
    assert 1e-4 <= min(report.layer_ratios.values()) <= max(report.layer_ratios.values()) <= 1e-2


def test_the_model_passed_in_is_left_unchanged(healthy):
    model, before, _ = healthy
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_wrong_data_type_is_a_config_error():
    with pytest.raises(ConfigError, match="ImageSet .* or an \\(x, y\\) pair"):
        doctor(convnet(), [1, 2, 3])
    with pytest.raises(ConfigError, match="integer tensor"):
        doctor(convnet(), (torch.randn(8, 1, 8, 8), torch.randn(8)))
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        doctor("convnet-small", (torch.randn(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)))


def test_empty_dataset_is_a_config_error(digits):
    with pytest.raises(ConfigError, match="empty"):
        doctor(convnet(), digits[:0])
    with pytest.raises(ConfigError, match="non-empty"):
        doctor(convnet(), (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))


def test_class_count_mismatch_is_a_config_error(digits):
    five = models.create("convnet-small", num_classes=5, in_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="10 classes but the model has 5 outputs"):
        doctor(five, digits)
    with pytest.raises(ConfigError, match="num_classes=7"):
        doctor(five, (torch.randn(8, 1, 8, 8), torch.arange(8) % 7))
    wrong_shape = models.create("convnet-small", num_classes=10, in_shape=(3, 32, 32))
    with pytest.raises(ConfigError, match="cannot take inputs"):
        doctor(wrong_shape, digits)


def test_unknown_check_and_bad_budget_are_config_errors(digits):
    with pytest.raises(ConfigError, match="check must be one of .*got 'vibes'"):
        doctor(convnet(), digits, checks=["vibes"])
    with pytest.raises(ConfigError, match="overfit_steps"):
        doctor(convnet(), digits, overfit_steps=0)
    with pytest.raises(ConfigError, match="lr"):
        doctor(convnet(), digits, lr=-1.0)


# --------------------------------------------------------------------------- the registry


def test_the_checks_are_listed_and_selected_from_one_registry():
    from striate.train.doctor import DOCTOR_CHECKS, checks_help, select_checks

    entries = DOCTOR_CHECKS.entries()
    assert set(CHECKS) == {e.name for e in entries} and len(CHECKS) == len(entries) == 11
    orders = [DOCTOR_CHECKS.entry(n).meta["order"] for n in CHECKS]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert all(e.summary for e in entries)
    assert CHECKS[:3] == ("initial_loss", "regularization", "overfit") and CHECKS[-1] == "fit_gap"
    assert select_checks(None) == list(CHECKS)
    # a group by its name, aliases and other spellings; always in report order
    assert select_checks("activations") == ["dead_relus", "saturation", "activation_scale"]
    assert select_checks("fit-gap, LR ,regularisation") == [
        "regularization",
        "learning_rate",
        "fit_gap",
    ]
    with pytest.raises(ConfigError, match="did you mean 'dead_relus'"):
        select_checks("dead_relu")
    with pytest.raises(ConfigError, match="at least one"):
        select_checks(" , ")
    text = checks_help()
    assert all(name in text for name in CHECKS) and "activations (dead_relus" in text


def test_a_group_is_measured_once_for_its_checks(digits, monkeypatch):
    from striate.train.doctor.checks import activations

    calls = []
    real = activations.activation_stats
    monkeypatch.setattr(activations, "activation_stats", lambda *a: calls.append(1) or real(*a))
    report = doctor(convnet(), digits, checks=["activations"], **FAST)
    assert [c.name for c in report.checks] == ["dead_relus", "saturation", "activation_scale"]
    assert len(calls) == 1 and report.activations
    # the group's time is shared among its checks
    assert len({c.seconds for c in report.checks}) == 1


def test_the_short_runs_step_through_the_engine_step(digits, monkeypatch):
    from striate.engine import step
    from striate.train.doctor.checks import context

    calls = []

    def counted(optimizer, closure, **kw):
        calls.append(type(optimizer).__name__)
        return step.optimizer_step(optimizer, closure, **kw)

    monkeypatch.setattr(context, "optimizer_step", counted)
    doctor(convnet(), digits, checks=["overfit"], max_samples=600, overfit_steps=10)
    assert len(calls) == 10 and set(calls) == {"SGD"}


def test_lbfgs_overfits_a_few_examples():
    # L-BFGS calls the closure for its line search: the doctor's steps go through the engine's
    torch.manual_seed(0)
    x, y = torch.randn(64, 20), torch.arange(64) % 4
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))
    report = doctor(
        model, (x, y), opt="lbfgs", lr=1.0, weight_decay=0.0, checks=["overfit"], overfit_steps=20
    )
    assert report["overfit"].status == "pass" and report["overfit"].value == 1.0


def test_the_old_import_path_warns_and_forwards(monkeypatch):
    import importlib
    import sys

    # (`import striate.train.doctor.api as api` would find the function striate.train.doctor)
    from striate.train.doctor.api import doctor as api_doctor

    monkeypatch.delitem(sys.modules, "striate.train.diagnostics", raising=False)
    with pytest.warns(DeprecationWarning, match="striate.train.doctor"):
        old = importlib.import_module("striate.train.diagnostics")
    assert old.doctor is api_doctor and old.CHECKS == CHECKS and old.Check is Check
