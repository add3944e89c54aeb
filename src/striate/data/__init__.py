"""Data layer: ImageSet, dataset sources, splits, preprocessing, batched augmentation, loaders."""

from striate.data.imageset import ImageSet
from striate.data.loader import BatchLoader, StreamingLoader
from striate.data.preprocess import PCA, ZCA, MeanImage, Normalizer
from striate.data.registry import SOURCES, load_dataset
from striate.data.splits import kfold, stratified_split, train_val_split

__all__ = [
    "PCA",
    "SOURCES",
    "ZCA",
    "BatchLoader",
    "ImageSet",
    "MeanImage",
    "Normalizer",
    "StreamingLoader",
    "kfold",
    "load_dataset",
    "stratified_split",
    "train_val_split",
]
