"""Argument checks shared by every part of striate, so each mistake is worded one way.

    positive_int("Trainer", "epochs", epochs)          # → the int, or ConfigError
    number("SGD", "momentum", m, low=0, high=1)         # a finite real in [low, high]
    probability("Dropout", "p", p)
    one_of("Trainer", "schedule", name, SCHEDULES)      # with a did-you-mean hint

Messages read "owner: name must be …, got …". `error` picks the StriateError subclass
(ConfigError for options, InputError for arrays and data given to estimators).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from typing import Any

from striate.errors import ConfigError, StriateError


def is_number(v: Any) -> bool:
    """A real number (int or float, not bool), finite or not."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fail(owner: str, name: str, what: str, v: Any, error: type[StriateError]) -> StriateError:
    prefix = f"{owner}: " if owner else ""
    return error(f"{prefix}{name} must be {what}, got {v!r}")


def positive_int(
    owner: str,
    name: str,
    v: Any,
    *,
    allow_none: bool = False,
    error: type[StriateError] = ConfigError,
) -> int | None:
    """`v` if it is an int >= 1 (None too when `allow_none`)."""
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        return_none = " (or None)" if allow_none else ""
        raise _fail(owner, name, f"a positive integer{return_none}", v, error)
    return v


def non_negative_int(
    owner: str, name: str, v: Any, *, error: type[StriateError] = ConfigError
) -> int:
    """`v` if it is an int >= 0."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise _fail(owner, name, "an integer >= 0", v, error)
    return v


def number(
    owner: str,
    name: str,
    v: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    error: type[StriateError] = ConfigError,
) -> float | None:
    """`v` as a float if it is a finite real in the interval (closed unless `*_open`)."""
    if v is None and allow_none:
        return None
    ok = is_number(v) and math.isfinite(v)
    if ok:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        raise _fail(owner, name, _interval(low, high, low_open, high_open), v, error)
    return float(v)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if low == 0 and low_open and high == math.inf:
        return "a positive number"
    parts = []
    if low > -math.inf:
        parts.append(f"{'>' if low_open else '>='} {_fmt(low)}")
    if high < math.inf:
        parts.append(f"{'<' if high_open else '<='} {_fmt(high)}")
    return "a finite number" + (" " + " and ".join(parts) if parts else "")


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def probability(
    owner: str,
    name: str,
    v: Any,
    *,
    allow_none: bool = False,
    error: type[StriateError] = ConfigError,
) -> float | None:
    """`v` as a float in [0, 1]."""
    if v is None and allow_none:
        return None
    if not (is_number(v) and 0 <= v <= 1):
        raise _fail(owner, name, "a probability in [0, 1]", v, error)
    return float(v)


def did_you_mean(value: Any, choices: Iterable[str], n: int = 1) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=n)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def one_of(
    owner: str,
    name: str,
    v: Any,
    choices: Iterable[str],
    *,
    error: type[StriateError] = ConfigError,
) -> str:
    """`v` if it is one of `choices`; otherwise the list and the closest name."""
    choices = list(choices)
    if not isinstance(v, str) or v not in choices:
        prefix = f"{owner}: " if owner else ""
        raise error(
            f"{prefix}{name} must be one of {', '.join(choices)}, got {v!r}"
            f"{did_you_mean(v, choices)}"
        )
    return v
