"""Data layer: ImageSet, dataset sources, splits, preprocessing, batched augmentation, loaders."""

from striate.data.imageset import ImageSet
from striate.data.registry import load_dataset

__all__ = ["ImageSet", "load_dataset"]
