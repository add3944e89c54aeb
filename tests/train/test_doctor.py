"""The doctor catches planted faults, each on the check meant for it; a healthy ConvNet passes."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch
from matplotlib.figure import Figure
from rich.console import Console
from torch import nn

from striate import models
from striate.data import ImageSet, load_dataset
from striate.engine.schedules import Schedule
from striate.errors import ConfigError
from striate.train import doctor
from striate.train.diagnostics import CHECKS, Check, DoctorReport, measure_errors
from striate.train.diagnostics.thresholds import (
    LR_FLAT,
    LR_RISE,
    LR_SPIKE,
    LR_UNTRAINED,
    RATIO_HIGH,
    RATIO_LOW,
)
from striate.train.error_analysis import analyze_errors

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


# --------------------------------------------------------------------------- verdicts agree with
#                                                                             their numbers

_LR_DETAIL = re.compile(r"^(\S+) → (?:peak (\S+) \(step \d+\) → )?(\S+) in ")


def assert_lr_verdict_follows_its_numbers(check: Check, curve: list[float]) -> None:
    """The learning_rate check prints "start → [peak P (step k) →] end": its status must follow
    from those numbers by the documented thresholds (an untrained model: the scale is the start
    loss), and the peak is printed whenever the curve rose a quarter above the start."""
    m = _LR_DETAIL.match(check.detail)
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


def test_the_default_training_settings_pass_the_lr_checks(digits):
    # `striate train`'s defaults (SGD, Nesterov, lr 0.1, 1cycle) reach 98.6 % test accuracy on
    # digits: neither check may call that lr too high. 1cycle starts at lr/10.
    # (the doctor's own budgets, as the CLI: the learning-rate check warms up over 25 steps)
    report = doctor(
        convnet(),
        digits,
        lr=0.1,
        nesterov=True,
        schedule="onecycle",
        checks=["update_ratio", "learning_rate"],
        max_samples=600,
    )
    ratio = report["update_ratio"]
    assert ratio.status == "pass", ratio
    assert RATIO_LOW < ratio.value < RATIO_HIGH and "lr 0.01" in ratio.detail
    assert "median" in ratio.detail  # the verdict is on the typical layer, and says so
    check = report["learning_rate"]
    assert check.status == "pass", check
    assert "warm-up" in check.detail
    assert_lr_verdict_follows_its_numbers(check, report.curves["learning_rate"])


class _Tenth(Schedule):
    """A tenth of the base lr at every step."""

    def factor(self, step: int) -> float:
        return 0.1


def test_the_update_ratio_takes_the_lr_of_the_schedule(digits):
    # the first steps of a schedule at lr/10 are the steps of a constant lr/10
    scheduled = doctor(
        convnet(), digits, lr=0.1, schedule=_Tenth(), checks=["update_ratio"], **FAST
    )
    constant = doctor(convnet(), digits, lr=0.01, checks=["update_ratio"], **FAST)
    assert scheduled.layer_ratios == pytest.approx(constant.layer_ratios, rel=1e-4)


@pytest.mark.parametrize(
    ("lr", "status", "words"), [(1e-3, "warn", "too low"), (3.0, "fail", "far too high")]
)
def test_the_update_ratio_flags_an_lr_far_outside_the_calibrated_band(digits, lr, status, words):
    # calibration (module docstring): on digits this ConvNet trains to 97.8 % at lr 1e-3 (it is
    # best at 0.1, 98.9 %) and diverges at lr 3
    report = doctor(
        convnet(),
        digits,
        lr=lr,
        nesterov=True,
        schedule="onecycle",
        checks=["update_ratio"],
        **FAST,
    )
    assert report["update_ratio"].status == status and words in report["update_ratio"].advice


@pytest.fixture(scope="module")
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


def test_a_converged_model_is_not_a_flat_loss(digits, converged):
    # a converged run's loss cannot fall further: "flat: raise the lr 10×" would be wrong
    report = doctor(
        converged, digits, lr=0.1, nesterov=True, pretrained=True, checks=["lr"], **FAST
    )
    check = report["learning_rate"]
    assert check.status == "pass", check
    assert "converged" in check.advice and "too low" not in check.advice
    before, after = (float(v) for v in _LR_DETAIL.match(check.detail).group(1, 3))
    assert before < 0.1 * math.log(10) and after < 0.1 * math.log(10)


def test_a_converged_model_has_small_updates_not_a_low_lr(digits, converged):
    report = doctor(
        converged,
        digits,
        lr=0.1,
        nesterov=True,
        schedule="onecycle",
        pretrained=True,
        checks=["update_ratio"],
        **FAST,
    )
    ratio = report["update_ratio"]
    assert ratio.value < RATIO_LOW  # small updates: the gradient is near 0 ...
    assert ratio.status == "pass" and "converged" in ratio.advice  # ... not a too-low lr


def test_a_loss_spike_is_printed_with_the_verdict_it_causes():
    # the MLP at lr 0.5 (the CLI's data; a constant lr): the loss jumps to about 6.6 at
    # step 8 and then falls to about 0.1. The old check printed "1.6 → 0.235" next to "fail: the
    # loss explodes"; the jump must be printed, and a loss that recovers is a warning.
    from striate.train.config import TrainConfig
    from striate.train.run import build_model, load_run_data

    cfg = TrainConfig(model="mlp", lr=0.5, precision="fp32", device="cpu")
    data = load_run_data(cfg)
    net = build_model(cfg, data.train)
    report = doctor(
        net,
        data.train,
        val=data.val,
        normalize=data.normalizer,
        lr=0.5,
        nesterov=True,
        checks=["learning_rate"],
        device="cpu",
    )
    check, curve = report["learning_rate"], report.curves["learning_rate"]
    assert max(curve) > LR_SPIKE * curve[0]  # the spike is there
    assert f"peak {max(curve):.3g}" in check.detail
    assert check.status == "warn" and "jumps" in check.advice
    assert_lr_verdict_follows_its_numbers(check, curve)


def test_a_learning_rate_10x_too_large_fails_without_contradiction(digits):
    report = doctor(convnet(), digits, lr=3.0, checks=["learning_rate"], **FAST)
    assert report["learning_rate"].status == "fail"
    assert_lr_verdict_follows_its_numbers(report["learning_rate"], report.curves["learning_rate"])


# --------------------------------------------------------------------------- error analysis


class _Always(nn.Module):
    """Answers class `k` for every image."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10) + self.w
        out[:, self.k] = 1.0
        return out


def test_measure_errors_counts_wrong_answers_and_matches_classes_by_name(digits):
    from striate.models.io import ImageClassifier

    model = ImageClassifier(_Always(3), digits.classes, (1, 8, 8))
    errors, sizes = measure_errors(model, {"train": digits})
    assert errors["train"] == pytest.approx(float((digits.labels != 3).float().mean()))
    assert sizes == {"train": len(digits)}
    # the same images with the classes listed in reverse order: relabelled by name
    reverse = ImageSet(digits.images, 9 - digits.labels, classes=tuple(reversed(digits.classes)))
    assert measure_errors(model, {"dev": reverse})[0]["dev"] == errors["train"]
    other = ImageSet(digits.images, digits.labels, classes=tuple("abcdefghij"))
    with pytest.raises(ConfigError, match="classes"):
        measure_errors(model, {"dev": other})


def test_the_error_analysis_is_a_check_and_goes_into_the_report(healthy, tmp_path):
    from striate.evaluate.report import write_report

    _, _, report = healthy
    report = DoctorReport(checks=list(report.checks))
    analysis = analyze_errors(
        human=0.01, train=0.08, train_dev=0.10, sizes={"train": 2000, "train_dev": 2000}
    )
    check = report.add_error_analysis(analysis)
    assert report["error_analysis"] is check and check.status == "warn"  # 7 % bias: act on it
    assert check.value == pytest.approx(0.07) and "avoidable bias +7.00%" in check.detail
    assert not report.failed  # advice, never a failure
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["error_analysis"]["largest"] == "avoidable bias"
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
    assert "error_analysis" in page and "avoidable bias" in page
    # a second analysis replaces the first
    report.add_error_analysis(analyze_errors(human=0.02, train=0.01))
    assert [c.name for c in report.checks].count("error_analysis") == 1
    assert report["error_analysis"].status == "pass"


def test_a_zero_initialised_weight_is_no_reason_to_fail(digits):
    # ‖Δw‖/‖w‖ of a weight that starts at 0 is undefined, not an infinitely high lr
    model = convnet()
    with torch.no_grad():
        model.classifier[-1].weight.zero_()
    report = doctor(model, digits, lr=0.01, checks=["update_ratio"], **FAST)
    assert report["update_ratio"].status != "fail", report["update_ratio"]
    assert "classifier.2.weight" not in report.layer_ratios
    assert len(report.layer_ratios) == 3 and all(map(math.isfinite, report.layer_ratios.values()))
