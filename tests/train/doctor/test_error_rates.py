"""A trained model's error rates for the error analysis."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.data import ImageSet
from striate.errors import ConfigError
from striate.train.doctor import measure_errors


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
