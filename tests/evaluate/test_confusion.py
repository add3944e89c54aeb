"""Confusion matrix against scikit-learn's, and its figure."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix as sk_confusion

from striate.errors import InputError
from striate.evaluate import confusion_matrix, plot_confusion


def test_matches_scikit_learn():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    np.testing.assert_array_equal(confusion_matrix(t, p, 7), sk_confusion(t, p, labels=range(7)))
    np.testing.assert_array_equal(
        confusion_matrix(torch.from_numpy(t), torch.from_numpy(p), 9),
        sk_confusion(t, p, labels=range(9)),
    )


def test_bad_labels():
    with pytest.raises(InputError, match="3 true labels but 2"):
        confusion_matrix([0, 1, 2], [0, 1])
    with pytest.raises(InputError, match="negative"):
        confusion_matrix([0, -1], [0, 1])
    with pytest.raises(InputError, match="num_classes=2"):
        confusion_matrix([0, 2], [0, 1], 2)


def test_figure_shows_the_accuracy():
    cm = confusion_matrix([0, 0, 1, 1, 2], [0, 1, 1, 1, 2], 3)
    fig = plot_confusion(cm, ["a", "b", "c"])
    assert isinstance(fig, Figure)
    assert "accuracy 80.0%" in fig.axes[0].get_title()
