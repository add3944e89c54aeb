"""How the search modules read and show values: a finite number, a value in a line of text, a
value in a CSV cell."""

from __future__ import annotations

import math
from typing import Any

from striate.checks import is_number


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
