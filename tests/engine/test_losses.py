"""Losses against torch's own functions, the lecture's worked example and finite differences."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from striate.engine.losses import LOSSES, cross_entropy, make_loss, multiclass_hinge
from striate.errors import ConfigError, StriateError


def _batch(n=16, c=7, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g, dtype=dtype) * 3
    target = torch.randint(0, c, (n,), generator=g)
    soft = torch.rand(n, c, generator=g, dtype=dtype).softmax(1)
    return logits, target, soft


# ------------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_cross_entropy_hard_matches_torch(eps):
    logits, target, _ = _batch()
    ours = cross_entropy(logits, target, label_smoothing=eps)
    ref = F.cross_entropy(logits, target, label_smoothing=eps)
    assert ours.dtype == torch.float32 and ours.ndim == 0
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_soft_matches_torch(eps):
    logits, _, soft = _batch(seed=1)
    ref = F.cross_entropy(logits, soft, label_smoothing=eps)
    torch.testing.assert_close(cross_entropy(logits, soft, label_smoothing=eps), ref)


def test_cross_entropy_formula_written_out():
    # the lecture's cat example: scores 3.2, 5.1, -1.7, true class cat -> -log(0.13) ≈ 2.04
    logits = torch.tensor([[3.2, 5.1, -1.7]])
    loss = cross_entropy(logits, torch.tensor([0]))
    e = [math.exp(v) for v in (3.2, 5.1, -1.7)]
    assert loss.item() == pytest.approx(-math.log(e[0] / sum(e)), rel=1e-6)
    assert loss.item() == pytest.approx(2.04, abs=0.01)
    # smoothing by hand: q = (1-ε)·onehot + ε/C
    eps = 0.3
    q = torch.tensor([[1 - eps + eps / 3, eps / 3, eps / 3]])
    ref = -(q * torch.log(torch.tensor([e]) / sum(e))).sum()
    assert cross_entropy(logits, torch.tensor([0]), eps).item() == pytest.approx(ref.item())


def test_one_hot_soft_target_equals_hard_target():
    logits, target, _ = _batch(seed=2)
    onehot = F.one_hot(target, logits.shape[1]).float()
    for eps in (0.0, 0.1):
        torch.testing.assert_close(
            cross_entropy(logits, onehot, eps), cross_entropy(logits, target, eps)
        )


def test_cross_entropy_gradcheck_float64():
    logits, target, soft = _batch(n=5, c=4, dtype=torch.float64)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: cross_entropy(x, target, 0.1), (logits,))
    assert torch.autograd.gradcheck(lambda x: cross_entropy(x, soft, 0.1), (logits,))
    assert cross_entropy(logits, target).dtype == torch.float64


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_logits_give_float32_loss(half):
    logits, target, soft = _batch(n=64, c=10)
    low = logits.to(half)
    for t in (target, soft):
        loss = cross_entropy(low, t, 0.1)
        assert loss.dtype == torch.float32
        # the only error left is rounding the logits to half precision
        ref = cross_entropy(low.float(), t, 0.1)
        torch.testing.assert_close(loss, ref)
        assert loss.item() == pytest.approx(cross_entropy(logits, t, 0.1).item(), rel=2e-2)
    h = multiclass_hinge(low, target)
    assert h.dtype == torch.float32
    assert h.item() == pytest.approx(multiclass_hinge(logits, target).item(), rel=2e-2)


def test_cross_entropy_under_cpu_autocast():
    logits, target, _ = _batch(n=32, c=10)
    w = torch.randn(10, 10, generator=torch.Generator().manual_seed(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = logits @ w
        assert out.dtype == torch.bfloat16
        loss = cross_entropy(out, target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(F.cross_entropy(out.float(), target).item(), rel=1e-5)


def test_cross_entropy_large_logits_are_finite():
    logits = torch.tensor([[1000.0, -1000.0, 0.0]])
    loss = cross_entropy(logits, torch.tensor([1]))
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(2000.0)


# ------------------------------------------------------------------------------------- hinge


def test_hinge_lecture_example():
    # CS231n lecture 3: columns are the three examples (cat, car, frog); losses 2.9, 0, 12.9
    scores = torch.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    loss = multiclass_hinge(scores, torch.tensor([0, 1, 2]))
    assert loss.item() == pytest.approx((2.9 + 0 + 12.9) / 3, rel=1e-6)


@pytest.mark.parametrize("margin", [1.0, 0.5, 2.5])
def test_hinge_matches_multi_margin_loss_times_c(margin):
    logits, target, _ = _batch(n=20, c=6, seed=4)
    ref = F.multi_margin_loss(logits, target, margin=margin) * logits.shape[1]
    torch.testing.assert_close(multiclass_hinge(logits, target, margin), ref)


def test_hinge_formula_written_out():
    logits, target, _ = _batch(n=9, c=5, seed=5)
    total = 0.0
    for s, y in zip(logits.tolist(), target.tolist(), strict=True):
        total += sum(max(0.0, s[j] - s[y] + 1.0) for j in range(len(s)) if j != y)
    assert multiclass_hinge(logits, target).item() == pytest.approx(total / 9, rel=1e-6)


def test_hinge_gradcheck_float64():
    logits, target, _ = _batch(n=6, c=5, seed=6, dtype=torch.float64)
    # keep every margin away from its kink, where the finite difference is not a gradient
    margins = logits - logits.gather(1, target[:, None]) + 1.0
    logits = logits + 0.5 * (margins.abs() < 0.05).double()
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: multiclass_hinge(x, target, 1.0), (logits,))


def test_hinge_gradient_matches_analytic():
    # d/ds_j = 1[margin_j > 0] for j != y, and minus their count for y (lecture 3)
    logits = torch.tensor([[3.2, 5.1, -1.7]], requires_grad=True)
    multiclass_hinge(logits, torch.tensor([0])).backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[-1.0, 1.0, 0.0]]))


def test_hinge_rejects_soft_targets():
    logits, _, soft = _batch()
    with pytest.raises(ConfigError, match="mixup/cutmix"):
        multiclass_hinge(logits, soft)


# -------------------------------------------------------------------------------- make_loss


def test_make_loss_names_and_aliases():
    logits, target, _ = _batch(seed=7)
    assert LOSSES.names() == ["cross_entropy", "hinge"]
    ce = F.cross_entropy(logits, target, label_smoothing=0.1)
    for name in ("cross_entropy", "ce", "softmax", "CE"):
        torch.testing.assert_close(make_loss(name, label_smoothing=0.1)(logits, target), ce)
    hinge = F.multi_margin_loss(logits, target, margin=2.0) * logits.shape[1]
    for name in ("hinge", "svm"):
        torch.testing.assert_close(make_loss(name, margin=2.0)(logits, target), hinge)
    torch.testing.assert_close(make_loss()(logits, target), F.cross_entropy(logits, target))


def test_make_loss_unknown_name_lists_choices():
    with pytest.raises(ConfigError, match="cross_entropy, hinge") as e:
        make_loss("focal")
    assert "svm" in str(e.value) and "'focal'" in str(e.value)
    assert isinstance(e.value, StriateError) and isinstance(e.value, ValueError)


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_bad_label_smoothing(eps):
    with pytest.raises(ConfigError, match=r"label_smoothing must be a number in \[0, 1\)"):
        make_loss("ce", label_smoothing=eps)
    logits, target, _ = _batch()
    with pytest.raises(ConfigError, match="label_smoothing"):
        cross_entropy(logits, target, label_smoothing=eps)


def test_label_smoothing_with_hinge_is_an_error():
    with pytest.raises(ConfigError, match="cross_entropy only"):
        make_loss("svm", label_smoothing=0.1)


@pytest.mark.parametrize("margin", [0.0, -1.0, float("inf"), None])
def test_bad_margin(margin):
    with pytest.raises(ConfigError, match="margin must be a positive number"):
        make_loss("hinge", margin=margin)


@pytest.mark.parametrize(
    ("logits", "target"),
    [
        (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long)),  # wrong N
        (torch.zeros(4, 3), torch.zeros(4, 4)),  # soft target with wrong C
        (torch.zeros(4, 3), torch.zeros(4)),  # float 1-D target
        (torch.zeros(4, 3), torch.zeros(4, 3, dtype=torch.long)),  # integer 2-D target
        (torch.zeros(4, 3), [0, 1, 2, 0]),  # not a tensor
        (torch.zeros(12), torch.zeros(12, dtype=torch.long)),  # 1-D logits
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long)),  # int logits
    ],
)
def test_bad_shapes(logits, target):
    for fn in (cross_entropy, multiclass_hinge):
        with pytest.raises(ConfigError, match="must be"):
            fn(logits, target)


def test_reduction_none_gives_the_per_sample_losses_whose_mean_is_the_loss():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
    soft = torch.softmax(torch.randn(6, 4), 1)
    for name, target in (("cross_entropy", y), ("cross_entropy", soft), ("hinge", y)):
        per_sample = make_loss(name, reduction="none")(logits, target)
        assert per_sample.shape == (6,)
        torch.testing.assert_close(per_sample.mean(), make_loss(name)(logits, target))
    smoothed = make_loss("ce", label_smoothing=0.2, reduction="none")(logits, y)
    expected = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.2, reduction="none")
    torch.testing.assert_close(smoothed, expected)
    with pytest.raises(ConfigError, match="reduction must be 'mean' or 'none', got 'sum'"):
        make_loss("ce", reduction="sum")
