"""The doctor catches planted faults, each on the check meant for it; a healthy ConvNet passes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from matplotlib.figure import Figure
from rich.console import Console
from torch import nn

from striate import models
from striate.data import ImageSet, load_dataset
from striate.errors import ConfigError
from striate.train import doctor
from striate.train.diagnostics import CHECKS, Check, DoctorReport

# small budgets: every test here runs in about a second on a loaded 2-core machine
FAST = dict(max_samples=600, overfit_steps=100, lr_steps=30, gap_epochs=6)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return load_dataset("digits", "train")


def convnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8))


@pytest.fixture(scope="module")
def healthy(digits) -> tuple[nn.Module, dict, DoctorReport]:
    model = convnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = doctor(model, digits, lr=0.01, **FAST)
    return model, before, report


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


def test_report_serialises_renders_and_plots(healthy):
    _, _, report = healthy
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["passed"] is True and len(d["checks"]) == len(CHECKS)
    assert {"name", "status", "value", "advice"} <= d["checks"][0].keys()
    assert d["activations"] and {"mean", "std", "dead_frac", "hist"} <= d["activations"][0].keys()
    console = Console(record=True, width=200)
    console.print(report.table())
    text = console.export_text()
    assert "initial_loss" in text and "pass" in text
    figs = report.figures()
    assert {"doctor_activations.png", "doctor_layer_stats.png", "doctor_curves.png"} <= set(figs)
    assert all(isinstance(f, Figure) for f in figs.values())


# --------------------------------------------------------------------------- planted faults


def test_wrong_initial_scale_fails_the_initial_loss_check(digits):
    model = convnet()
    with torch.no_grad():
        model.classifier[-1].weight.mul_(100)  # scores far from 0: loss far from ln 10
    report = doctor(model, digits, checks=["initial_loss"], **FAST)
    check = report["initial_loss"]
    assert check.status == "fail"
    assert check.value > 2 * math.log(10)
    assert "ln 10" in check.detail and "smaller scale" in check.advice


class _BadTanh(torch.autograd.Function):
    """tanh whose backward forgets the square: d tanh/dx is 1 - y², not 1 - y."""

    @staticmethod
    def forward(ctx, x):
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y)


class _GoodTanh(_BadTanh):
    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


class _Act(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x)


def _mlp_with(fn) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), _Act(fn), nn.Linear(32, 10))


def test_a_wrong_backward_fails_the_gradient_check(digits):
    check = doctor(_mlp_with(_BadTanh), digits, checks=["gradcheck"], **FAST)["gradcheck"]
    assert check.status == "fail", check
    assert check.value > 1e-2
    # the same layer with the right derivative passes: the check is about the backward
    good = doctor(_mlp_with(_GoodTanh), digits, checks=["gradcheck"], **FAST)["gradcheck"]
    assert good.status == "pass", good
    assert good.value < 1e-6


def test_a_learning_rate_1000x_too_large_is_caught(digits):
    report = doctor(convnet(), digits, lr=10.0, checks=["learning_rate", "update_ratio"], **FAST)
    assert report["learning_rate"].status == "fail"
    assert "too high" in report["learning_rate"].advice
    assert report["update_ratio"].status == "fail"


def test_a_learning_rate_far_too_small_reads_as_flat_loss(digits):
    check = doctor(convnet(), digits, lr=1e-7, checks=["learning_rate"], **FAST)["learning_rate"]
    assert check.status == "warn"
    assert "too low" in check.advice
    assert check.value == pytest.approx(1.0, abs=0.01)


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


def test_regularisation_raises_the_loss(digits):
    check = doctor(convnet(), digits, checks=["regularisation"], **FAST)["regularization"]
    assert check.status == "pass" and check.value > 0


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


# --------------------------------------------------------------------------- bad input


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
    with pytest.raises(ConfigError, match="unknown check 'vibes'"):
        doctor(convnet(), digits, checks=["vibes"])
    with pytest.raises(ConfigError, match="overfit_steps"):
        doctor(convnet(), digits, overfit_steps=0)
    with pytest.raises(ConfigError, match="lr"):
        doctor(convnet(), digits, lr=-1.0)


def test_check_status_is_validated():
    with pytest.raises(ValueError, match="status"):
        Check("x", "ok", None, "")


def test_the_run_report_gets_a_doctor_section(healthy, tmp_path):
    from striate.evaluate.report import add_section, doctor_section, write_report

    _, _, report = healthy
    d = report.to_dict()
    d["checks"][0]["advice"] = "<script>x</script>"  # user-visible text is escaped
    page = write_report(
        tmp_path / "report.html",
        title="t",
        config={},
        history=[],
        steps={},
        final={},
        classes=["a"],
        confusion=None,
        doctor=d,
    ).read_text()
    assert page.count("<h2>Doctor</h2>") == 1 and "&lt;script&gt;" in page
    assert "initial_loss" in page and "activation histograms per layer" in page
    # refreshing the section replaces it in place
    add_section(tmp_path / "report.html", "Doctor", doctor_section({"checks": [], "passed": False}))
    page = (tmp_path / "report.html").read_text()
    assert page.count("<h2>Doctor</h2>") == 1 and "a check failed" in page
    assert "initial_loss" not in page and page.rstrip().endswith("</html>")
    with pytest.raises(ConfigError, match="doctor"):
        write_report(
            tmp_path / "r2.html",
            title="t",
            config={},
            history=[],
            steps={},
            final={},
            classes=["a"],
            confusion=None,
            doctor={"nope": 1},
        )


def test_the_default_training_lr_warns_but_does_not_fail_the_update_ratio(digits):
    # `striate train`'s defaults (SGD, Nesterov, lr 0.1) train this model well: no false fail
    report = doctor(convnet(), digits, lr=0.1, nesterov=True, checks=["update_ratio"], **FAST)
    assert report["update_ratio"].status in ("pass", "warn")
    assert max(report.layer_ratios.values()) > 1e-2  # above the lectures' ~1e-3: a warning
