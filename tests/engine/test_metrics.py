"""Metrics against scikit-learn, per-sample loss weighting, soft targets and no host syncs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, confusion_matrix, top_k_accuracy_score

from striate.engine.metrics import MetricTracker, accuracy, per_class_accuracy, topk_accuracy
from striate.errors import ConfigError


def _data(n=200, c=10, seed=0, absent=()):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=g)
    for a in absent:  # make class a absent from the targets
        target[target == a] = (a + 1) % c
    # scores correlated with the target, so accuracies are far from 0 and from 1
    logits = torch.randn(n, c, generator=g) + 1.5 * F.one_hot(target, c)
    return logits, target


def _sk_recall(y, pred, c):
    cm = confusion_matrix(y, pred, labels=list(range(c)))
    with np.errstate(invalid="ignore"):
        return np.diag(cm) / cm.sum(1)


# ------------------------------------------------------------------------------- functions


def test_accuracy_matches_sklearn():
    logits, target = _data()
    ref = accuracy_score(target.numpy(), logits.argmax(1).numpy())
    assert 0.2 < ref < 0.9
    assert accuracy(logits, target) == pytest.approx(ref)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 9])
def test_topk_accuracy_matches_sklearn(k):
    logits, target = _data(seed=1)
    ref = top_k_accuracy_score(target.numpy(), logits.numpy(), k=k, labels=list(range(10)))
    assert topk_accuracy(logits, target, k) == pytest.approx(ref)
    assert topk_accuracy(logits, target, 10) == 1.0


def test_per_class_accuracy_matches_sklearn_recall():
    logits, target = _data(seed=2, absent=(3, 7))
    pred = logits.argmax(1)
    ref = _sk_recall(target.numpy(), pred.numpy(), 10)
    for p in (pred, logits):
        got = per_class_accuracy(p, target, 10)
        assert got.dtype == torch.float64 and got.shape == (10,)
        assert torch.isnan(got[[3, 7]]).all()
        np.testing.assert_allclose(got.numpy(), ref, equal_nan=True)


def test_soft_targets_count_as_their_argmax():
    logits, target = _data(seed=3)
    # a mixup-like soft target whose largest weight is on the true class
    other = (target + 1) % 10
    soft = 0.7 * F.one_hot(target, 10).float() + 0.3 * F.one_hot(other, 10).float()
    assert accuracy(logits, soft) == accuracy(logits, target)
    assert topk_accuracy(logits, soft, 3) == topk_accuracy(logits, target, 3)
    torch.testing.assert_close(
        per_class_accuracy(logits, soft, 10),
        per_class_accuracy(logits, target, 10),
        equal_nan=True,
    )


def test_function_errors():
    logits, target = _data(n=8, c=4)
    with pytest.raises(ConfigError, match=r"k must be an integer in 1\.\.4"):
        topk_accuracy(logits, target, 5)
    with pytest.raises(ConfigError, match="k must be"):
        topk_accuracy(logits, target, 0)
    with pytest.raises(ConfigError, match=r"shape \(8,\)"):
        accuracy(logits, target[:5])
    with pytest.raises(ConfigError, match="soft targets of shape"):
        accuracy(logits, torch.zeros(8, 3))
    with pytest.raises(ConfigError, match="N×C"):
        accuracy(logits[0], target)
    with pytest.raises(ConfigError, match="empty"):
        accuracy(logits[:0], target[:0])
    with pytest.raises(ConfigError, match=r"labels must lie in 0\.\.2"):
        per_class_accuracy(target, target, 3)
    with pytest.raises(ConfigError, match="num_classes must be"):
        per_class_accuracy(target, target, -1)


# --------------------------------------------------------------------------------- tracker


def _feed(tracker, logits, target, sizes, losses):
    start = 0
    for size in sizes:
        sl = slice(start, start + size)
        loss = losses[sl].mean() if losses is not None else None
        tracker.update(logits[sl], target[sl], loss)
        start += size
    assert start == len(target)


def test_tracker_matches_sklearn_with_uneven_batches():
    logits, target = _data(n=250, c=10, seed=4, absent=(6,))
    per_sample = F.cross_entropy(logits, target, reduction="none")
    sizes = [64, 64, 100, 1, 21]
    t = MetricTracker(10)
    _feed(t, logits, target, sizes, per_sample)
    assert t.n == 250
    out = t.compute()
    assert set(out) == {"loss", "acc", "top5"}
    # the per-sample mean, not the mean of the five batch means
    assert out["loss"] == pytest.approx(per_sample.mean().item(), rel=1e-6)
    batch_means = [c.mean().item() for c in per_sample.split(sizes)]
    assert abs(np.mean(batch_means) - out["loss"]) > 1e-3
    y, s = target.numpy(), logits.numpy()
    assert out["acc"] == pytest.approx(accuracy_score(y, s.argmax(1)))
    assert out["top5"] == pytest.approx(top_k_accuracy_score(y, s, k=5, labels=range(10)))
    np.testing.assert_allclose(
        t.per_class().numpy(), _sk_recall(y, s.argmax(1), 10), equal_nan=True
    )
    assert math.isnan(t.per_class()[6])


def test_tracker_topk_keys_and_soft_targets():
    logits, target = _data(n=90, c=6, seed=5)
    soft = 0.6 * F.one_hot(target, 6).float() + 0.4 / 6
    t = MetricTracker(6, topk=(1, 2, 3, 6, 9))
    _feed(t, logits, soft, [30, 30, 30], None)
    out = t.compute()
    assert set(out) == {"loss", "acc", "top2", "top3"}  # k ≥ num_classes is always 1: dropped
    assert math.isnan(out["loss"])  # no loss was given
    y, s = target.numpy(), logits.numpy()
    for k in (2, 3):
        assert out[f"top{k}"] == pytest.approx(top_k_accuracy_score(y, s, k=k, labels=range(6)))
    assert out["acc"] == pytest.approx(accuracy_score(y, s.argmax(1)))


def test_tracker_reset_and_empty():
    t = MetricTracker(4, topk=(1, 3))
    out = t.compute()
    assert set(out) == {"loss", "acc", "top3"} and all(math.isnan(v) for v in out.values())
    assert torch.isnan(t.per_class()).all() and t.per_class().shape == (4,)
    logits, target = _data(n=20, c=4, seed=6)
    t.update(logits, target, torch.tensor(2.0))
    t.update(logits[:0], target[:0], torch.tensor(5.0))  # an empty batch changes nothing
    assert t.n == 20 and t.compute()["loss"] == pytest.approx(2.0)
    t.reset()
    assert t.n == 0 and math.isnan(t.compute()["acc"])
    t.update(logits[:5], target[:5], 1.5)  # a Python float loss is fine
    assert t.n == 5 and t.compute()["loss"] == pytest.approx(1.5)
    assert t.compute()["acc"] == pytest.approx(accuracy(logits[:5], target[:5]))


def test_tracker_bf16_logits_and_loss():
    logits, target = _data(n=64, c=10, seed=7)
    t = MetricTracker(10)
    t.update(logits.bfloat16(), target, torch.tensor(1.25, dtype=torch.bfloat16))
    out = t.compute()
    assert out["loss"] == pytest.approx(1.25)
    assert out["acc"] == pytest.approx(accuracy(logits.bfloat16().float(), target))


def test_tracker_update_does_not_read_values_back(monkeypatch):
    logits, target = _data(n=40, c=10, seed=8)
    t = MetricTracker(10)

    def sync(*args, **kwargs):
        raise AssertionError("MetricTracker.update read a value back to the host")

    with monkeypatch.context() as m:
        for attr in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
            m.setattr(torch.Tensor, attr, sync)
        t.update(logits[:20], target[:20], torch.tensor(0.5))
        t.update(logits[20:], target[20:], torch.tensor(0.7))
    assert t.compute()["loss"] == pytest.approx(0.6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tracker_on_cuda_without_sync():
    logits, target = _data(n=300, c=10, seed=9, absent=(2,))
    losses = F.cross_entropy(logits, target, reduction="none")
    ref = MetricTracker(10)
    _feed(ref, logits, target, [128, 128, 44], losses)
    t = MetricTracker(10)
    lc, tc, sc = logits.cuda(), target.cuda(), losses.cuda()
    t.update(lc[:1], tc[:1], sc[:1].mean())  # allocate the state before watching for syncs
    t.reset()  # zeroes the state in place, on the device
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _feed(t, lc, tc, [128, 128, 44], sc)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got, want = t.compute(), ref.compute()
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6)
    torch.testing.assert_close(t.per_class(), ref.per_class(), equal_nan=True)


def test_tracker_errors():
    with pytest.raises(ConfigError, match="num_classes must be"):
        MetricTracker(0)
    with pytest.raises(ConfigError, match=r"topk must be positive integers"):
        MetricTracker(10, topk=(1, 0))
    with pytest.raises(ConfigError, match=r"topk must be positive integers"):
        MetricTracker(10, topk=(1, 2.5))
    t = MetricTracker(10)
    logits, target = _data(n=8, c=10)
    with pytest.raises(ConfigError, match="num_classes=10"):
        t.update(logits[:, :5], target)
    with pytest.raises(ConfigError, match=r"shape \(8,\)"):
        t.update(logits, target[:3])
    with pytest.raises(ConfigError, match="mean loss"):
        t.update(logits, target, torch.ones(8))
    assert t.n == 0
