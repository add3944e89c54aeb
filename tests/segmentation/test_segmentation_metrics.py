"""Confusion matrix, IoU, mIoU, pixel and class accuracy against scikit-learn, with ignored
pixels and classes absent from truth and prediction; accumulation equals one pass."""

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from striate.errors import ConfigError
from striate.segmentation.metrics import (
    ConfusionMatrix,
    class_accuracy,
    confusion_matrix,
    iou_per_class,
    scores,
)

K = 6


def _maps(seed, shape=(3, 10, 12), absent=(4,)):
    """Random truth and prediction maps (agreeing on ~half the pixels), some truth ignored
    (255), class 4 nowhere, class 5 only in the prediction."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, 4, shape, generator=g)
    pred = torch.where(
        torch.rand(shape, generator=g) < 0.5, truth, torch.randint(0, 4, shape, generator=g)
    )
    pred[0, 0, :3] = 5
    truth[torch.rand(shape, generator=g) < 0.1] = 255
    return pred, truth


def test_the_confusion_matrix_is_scikit_learn_s():
    pred, truth = _maps(0)
    keep = truth != 255
    expected = sk_confusion(truth[keep].numpy(), pred[keep].numpy(), labels=list(range(K)))
    got = confusion_matrix(pred, truth, K)
    assert got.dtype == torch.int64 and np.array_equal(got.numpy(), expected)
    # without ignore_index, 255 is a class out of range: one clear line
    with pytest.raises(ConfigError, match=r"classes must be 0..5.*got truth 0..255"):
        confusion_matrix(pred, truth, K, ignore_index=None)
    with pytest.raises(ConfigError, match="same shape"):
        confusion_matrix(pred[:1], truth, K)


def test_iou_and_miou_are_scikit_learn_s_over_the_present_classes():
    pred, truth = _maps(1)
    keep = truth != 255
    t, p = truth[keep].numpy(), pred[keep].numpy()
    cm = confusion_matrix(pred, truth, K)
    iou = iou_per_class(cm)
    present = [0, 1, 2, 3, 5]  # 4 is in neither: no IoU, out of the mean
    assert torch.isnan(iou[4]) and not torch.isnan(iou[present]).any()
    expected = jaccard_score(t, p, labels=present, average=None)
    np.testing.assert_allclose(iou[present].numpy(), expected, rtol=1e-12)
    assert iou[5] == 0  # predicted only: IoU 0, counted in the mean
    s = scores(cm)
    assert s["miou"] == pytest.approx(
        jaccard_score(t, p, labels=present, average="macro"), rel=1e-12
    )
    assert s["acc"] == pytest.approx(accuracy_score(t, p), rel=1e-12)
    recall = class_accuracy(cm)
    assert torch.isnan(recall[4]) and torch.isnan(recall[5])  # not in the truth
    in_truth = [0, 1, 2, 3]
    assert s["class_acc"] == pytest.approx(
        recall_score(t, p, labels=in_truth, average="macro"), rel=1e-12
    )


def test_a_perfect_prediction_scores_one_and_an_empty_one_nan():
    _, truth = _maps(2)
    s = scores(confusion_matrix(truth.clamp(max=3), truth.clamp(max=3), K))
    assert s == {"acc": 1.0, "class_acc": 1.0, "miou": 1.0}
    empty = scores(torch.zeros(K, K, dtype=torch.int64))
    assert all(np.isnan(v) for v in empty.values())


def test_accumulating_batches_equals_one_pass():
    pred, truth = _maps(3, shape=(8, 9, 7))
    acc = ConfusionMatrix(K)
    for p, t in zip(pred.split(3), truth.split(3), strict=True):
        acc.update(p, t)
    acc.reduce()  # one process: nothing to sum
    assert torch.equal(acc.matrix, confusion_matrix(pred, truth, K))
    assert acc.compute() == scores(confusion_matrix(pred, truth, K))
    assert ConfusionMatrix(K).compute() == {}
