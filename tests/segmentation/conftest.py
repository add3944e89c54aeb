"""Tiny digit scenes for the segmentation tests: MNIST digits on noise backgrounds, 32 px."""

import pytest
import torch

from striate.data import ImageSet, load_dataset
from striate.data.scenes import digit_scenes


def tiny_scenes(shared_data, n: int, seed: int = 0, size: int = 32):
    digits = load_dataset("mnist", "test", root=shared_data)[:200]
    g = torch.Generator().manual_seed(seed)
    noise = (torch.rand(16, 3, 8, 8, generator=g) * 255).to(torch.uint8)
    backgrounds = ImageSet(noise, torch.zeros(16, dtype=torch.int64), ("noise",), source="noise")
    return digit_scenes(digits, backgrounds, n, size=size, digit_size=(12, 24), seed=seed)


@pytest.fixture(scope="session")
def scenes(shared_data):
    """(train, test): 40 and 12 scenes of 32×32 pixels with instance masks."""
    return tiny_scenes(shared_data, 40, seed=0), tiny_scenes(shared_data, 12, seed=1)
