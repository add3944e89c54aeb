"""striate: deep learning for computer vision, from the data to trained and understood models."""

from striate.data import ImageSet, load_dataset
from striate.errors import DataError, DownloadError, StriateError

__version__ = "0.1.0"

__all__ = ["DataError", "DownloadError", "ImageSet", "StriateError", "__version__", "load_dataset"]
