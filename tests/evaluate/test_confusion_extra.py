"""Per-class accuracy against scikit-learn's recall; most confused pairs against a hand-built
matrix and a brute-force ranking."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import recall_score

from striate.errors import ConfigError
from striate.evaluate.confusion import confusion_matrix, most_confused, per_class_accuracy


def test_per_class_accuracy_is_recall():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 6, 400), rng.integers(0, 6, 400)
    t[t == 4] = 5  # class 4 never occurs as a true label: NaN, as scikit-learn's zero_division
    cm = confusion_matrix(t, p, 7)  # class 6 never occurs at all
    expected = recall_score(t, p, labels=range(7), average=None, zero_division=np.nan)
    got = per_class_accuracy(cm)
    np.testing.assert_allclose(got, expected)
    assert np.isnan(got[[4, 6]]).all() and not np.isnan(got[:4]).any()
    np.testing.assert_allclose(per_class_accuracy(torch.from_numpy(cm)), expected)


def test_per_class_accuracy_by_hand():
    cm = [[3, 1], [0, 0]]
    np.testing.assert_array_equal(per_class_accuracy(cm), [0.75, np.nan])


def test_most_confused_hand_built_matrix():
    classes = ["cat", "dog", "ship"]
    cm = np.array(
        [
            [50, 7, 0],  # cat: 7 as dog
            [9, 40, 2],  # dog: 9 as cat, 2 as ship
            [0, 2, 60],  # ship: 2 as dog (ties with dog→ship; row-major order first)
        ]
    )
    assert most_confused(cm, classes) == [
        ("dog", "cat", 9),
        ("cat", "dog", 7),
        ("dog", "ship", 2),
        ("ship", "dog", 2),
    ]
    assert most_confused(cm, classes, n=2) == [("dog", "cat", 9), ("cat", "dog", 7)]
    assert most_confused(cm, classes, n=0) == []
    assert most_confused(np.diag([5, 5, 5]), classes) == []  # zeros are left out
    assert all(type(c) is int for _, _, c in most_confused(cm.astype(float), classes))


def test_most_confused_matches_brute_force():
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 4, (12, 12)) * rng.integers(0, 2, (12, 12))
    classes = [f"c{i}" for i in range(12)]
    pairs = [(-cm[i, j], i, j) for i in range(12) for j in range(12) if i != j and cm[i, j] > 0]
    expected = [(classes[i], classes[j], -c) for c, i, j in sorted(pairs)][:15]
    assert most_confused(cm, classes, n=15) == expected


def test_bad_matrices_and_arguments():
    with pytest.raises(ConfigError, match=r"square K×K matrix .* got shape \(2, 3\)"):
        per_class_accuracy(np.ones((2, 3)))
    with pytest.raises(ConfigError, match="non-negative"):
        per_class_accuracy([[1, -1], [0, 1]])
    with pytest.raises(ConfigError, match="non-negative"):
        per_class_accuracy([[1, np.nan], [0, 1]])
    with pytest.raises(ConfigError, match="K×K matrix of counts"):
        per_class_accuracy([["a", "b"], ["c", "d"]])
    with pytest.raises(ConfigError, match="2 class names for a 3×3"):
        most_confused(np.eye(3), ["a", "b"])
    with pytest.raises(ConfigError, match="n must be a non-negative integer"):
        most_confused(np.eye(2), ["a", "b"], n=-1)
    with pytest.raises(ConfigError, match="n must be"):
        most_confused(np.eye(2), ["a", "b"], n=2.5)
    with pytest.raises(ConfigError, match="before normalising"):
        most_confused([[0.5, 0.5], [0.25, 0.75]], ["a", "b"])
