"""Deprecated: the hyper-parameter search is `striate.train.search` (this name goes in the next
release)."""

import warnings

from striate.train.search import *  # noqa: F403
from striate.train.search import __all__  # noqa: F401

warnings.warn(
    "striate.train.hpsearch has moved to striate.train.search; the old name goes in the next "
    "release",
    DeprecationWarning,
    stacklevel=2,
)
