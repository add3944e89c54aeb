"""striate: deep learning for computer vision, from the data to trained and understood models."""

from striate import models
from striate.data import ImageSet, load_dataset
from striate.errors import ConfigError, DataError, DownloadError, StriateError
from striate.models.io import load_model
from striate.train import Trainer

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "DownloadError",
    "ImageSet",
    "StriateError",
    "Trainer",
    "__version__",
    "load_dataset",
    "load_model",
    "models",
]
