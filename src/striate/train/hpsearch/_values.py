"""Small value helpers shared by the search modules: finite numbers, short forms, JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


def is_number(v: Any) -> bool:
    """An int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def finite(v: Any) -> bool:
    """A number that is neither NaN nor infinite."""
    return is_number(v) and math.isfinite(v)


def short(v: Any) -> str:
    """A value for a line of text: floats to 3 significant digits."""
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def cell(v: Any) -> Any:
    """A value for a CSV cell: floats to 6 significant digits, None empty."""
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def jsonable(o: Any) -> Any:
    """`default=` for json.dump: NumPy scalars, tuples, sets and paths."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
