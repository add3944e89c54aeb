"""The doctor's batch-norm check: eval mode (running statistics) against train mode (batch
statistics), measured here independently with plain torch, on healthy and broken models."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from striate import models
from striate.data import Normalizer, load_dataset
from striate.train.doctor import doctor
from striate.train.doctor.checks.batchnorm import BN_FAIL, BN_STEPS, BN_WARN

FAST = dict(max_samples=600, overfit_steps=100, lr_steps=30, gap_epochs=6)


def convnet(norm: str = "batch") -> nn.Module:
    torch.manual_seed(0)
    return models.create("convnet-small", num_classes=10, in_shape=(1, 8, 8), norm=norm)


@pytest.fixture(scope="module")
def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Normalised digits: 500 training and 300 validation examples (floats: used as they are)."""
    digits = load_dataset("digits", "train")
    x, y = Normalizer().fit(digits)(digits.images), digits.labels
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    x, y = x[order], y[order]
    return (x[:500], y[:500]), (x[500:800], y[500:800])


@pytest.fixture(scope="module")
def trained(data) -> nn.Module:
    """The ConvNet trained with batch norm (Adam, 4 epochs at batch 64): healthy statistics."""
    (x, y), _ = data
    model = convnet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        for idx in torch.randperm(len(x), generator=g).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
    return model.eval()


def independent_gap(
    model: nn.Module, xv: torch.Tensor, yv: torch.Tensor, bs: int, order: torch.Tensor | None = None
) -> float:
    """Train-mode minus eval-mode accuracy, batches of `bs` (of the examples in `order`), with
    torch alone."""
    if order is not None:
        xv, yv = xv[order], yv[order]
    ev = copy.deepcopy(model).eval()
    tr = copy.deepcopy(model).train()
    with torch.no_grad():
        acc_eval = (ev(xv).argmax(1) == yv).float().mean()
        pred = torch.cat([tr(xb).argmax(1) for xb in xv.split(bs)])
    return float((pred == yv).float().mean() - acc_eval)


# the check scores random batches: the permutation of seed + 2 (doctor's seed 0)
ORDER = torch.randperm(300, generator=torch.Generator().manual_seed(2))


def expected_status(gap: float) -> str:
    return "fail" if abs(gap) > BN_FAIL else "warn" if abs(gap) > BN_WARN else "pass"


def bn_check(model, data, **kw):
    train, val = data
    return doctor(model, train, val=val, checks=["batchnorm"], **{**FAST, **kw})["batchnorm"]


def test_a_healthy_trained_model_passes_and_matches_torch(trained, data):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    c = bn_check(trained, data, pretrained=True)
    gap = independent_gap(trained, *data[1], 64, ORDER)
    assert c.status == "pass" and c.value == pytest.approx(gap, abs=1e-6)
    assert "300 examples" in c.detail and "2 batch-norm layers" in c.detail
    # the model passed in is never changed (train mode on a copy keeps the running statistics)
    for k, v in trained.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("corrupt", ["shift", "reset"])
def test_running_statistics_that_disagree_with_the_batch_are_flagged(trained, data, corrupt):
    broken = copy.deepcopy(trained)
    for m in broken.modules():
        if isinstance(m, nn.BatchNorm2d):
            if corrupt == "shift":
                m.running_mean += 1.0
            else:
                m.reset_running_stats()  # mean 0, variance 1: statistics of nothing
    c = bn_check(broken, data, pretrained=True)
    gap = independent_gap(broken, *data[1], 64, ORDER)
    assert gap > BN_WARN  # the broken case is broken, measured without the doctor
    assert c.value == pytest.approx(gap, abs=1e-6) and c.status == expected_status(gap)
    assert c.status in ("warn", "fail") and "running statistics disagree" in c.advice
    if corrupt == "shift":
        assert c.status == "fail"


def test_evaluating_in_train_mode_at_batch_one_is_flagged(trained, data):
    """A model left in train mode scores each example by its own statistics at batch 1."""
    c = bn_check(trained, data, pretrained=True, batch_size=1)
    gap = independent_gap(trained, *data[1], 1, ORDER)
    assert gap < -BN_WARN  # measured without the doctor: train mode loses accuracy
    assert c.value == pytest.approx(gap, abs=1e-6) and c.status == expected_status(gap)
    assert "model.eval()" in c.advice and "batches of 1" in c.detail


def test_a_validation_set_stored_class_by_class_is_scored_in_random_batches(trained, data):
    """Batches of one class would give batch norm that class's statistics: a false alarm."""
    train, (xv, yv) = data
    by_class = yv.argsort(stable=True)
    xs, ys = xv[by_class], yv[by_class]
    sorted_gap = independent_gap(trained, xs, ys, 64)  # in stored order: one class per batch
    assert sorted_gap < -BN_WARN
    c = doctor(trained, train, val=(xs, ys), checks=["batchnorm"], pretrained=True, **FAST)
    assert c["batchnorm"].status == "pass", c["batchnorm"].detail


def test_an_untrained_model_is_trained_briefly_and_passes(data):
    model = convnet()
    c = bn_check(model, data, lr=0.01)
    assert c.status == "pass", (c.detail, c.advice)
    assert f"after {BN_STEPS} training steps" in c.detail
    assert all(
        int(m.num_batches_tracked) == 0 for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )


@pytest.mark.parametrize("norm", ["group", "layer", "instance", "none"])
def test_models_without_running_statistics_are_skipped(data, norm):
    c = bn_check(convnet(norm), data)
    assert c.status == "skip" and "no batch-norm" in c.advice


def test_the_check_is_selected_by_its_aliases():
    from striate.train.doctor import CHECKS, select_checks

    assert "batchnorm" in CHECKS and CHECKS.index("batchnorm") == len(CHECKS) - 2
    assert select_checks("bn") == select_checks("batch-norm") == ["batchnorm"]
