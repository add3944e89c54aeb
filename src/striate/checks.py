"""Argument checks shared by every part of striate, so each mistake is worded one way.

    positive_int("Trainer", "epochs", epochs)          # → the int, or ConfigError
    integer("NCA", "batch_size", b, low=2, hint="the softmax needs neighbours")
    number("SGD", "momentum", m, low=0, high=1)         # a finite real in [low, high]
    positive_number("ZCA", "eps", eps)
    probability("Dropout", "p", p)
    boolean("MLP", "batchnorm", b)
    one_of("Trainer", "schedule", name, SCHEDULES)      # with a did-you-mean hint
    options_of("dqn", DQNConfig, {"lr": 1e-3})          # unknown option 'lr' (did you mean …)

Messages read "owner: name must be …, got …"; `hint` adds a reason in parentheses after the
requirement ("… must be an integer >= 2 (the softmax needs neighbours), got 1"). `error` picks
the StriateError subclass (ConfigError for options, InputError for arrays and data given to
estimators, DataError for data files). Numbers are `numbers.Real` and integers
`numbers.Integral`, so NumPy scalars pass; bools are neither.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from striate.errors import ConfigError, StriateError

T = TypeVar("T")


def is_number(v: Any) -> bool:
    """A real number (Python or NumPy, not bool), finite or not."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def is_int(v: Any) -> bool:
    """An integer (Python or NumPy, not bool)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def fail(
    owner: str,
    name: str,
    what: str,
    v: Any,
    *,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> StriateError:
    """The error "owner: name must be what (hint), got v" (to raise), for checks of their own."""
    prefix = f"{owner}: " if owner else ""
    reason = f" ({hint})" if hint else ""
    return error(f"{prefix}{name} must be {what}{reason}, got {v!r}")


def integer(
    owner: str,
    name: str,
    v: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> int | None:
    """`v` as an int if it is an integer in [low, high] (None too when `allow_none`)."""
    if v is None and allow_none:
        return None
    if not is_int(v) or (low is not None and v < low) or (high is not None and v > high):
        what = _integer_words(low, high) + (" (or None)" if allow_none else "")
        raise fail(owner, name, what, v, hint=hint, error=error)
    return int(v)


def _integer_words(low: int | None, high: int | None) -> str:
    if high is None and low == 1:
        return "a positive integer"
    if high is None and low == 0:
        return "a non-negative integer"
    parts = [f">= {low}"] if low is not None else []
    parts += [f"<= {high}"] if high is not None else []
    return "an integer" + (" " + " and ".join(parts) if parts else "")


def positive_int(
    owner: str,
    name: str,
    v: Any,
    *,
    allow_none: bool = False,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> int | None:
    """`v` as an int if it is an integer >= 1 (None too when `allow_none`)."""
    return integer(owner, name, v, low=1, allow_none=allow_none, hint=hint, error=error)


def non_negative_int(
    owner: str,
    name: str,
    v: Any,
    *,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> int:
    """`v` as an int if it is an integer >= 0."""
    return integer(owner, name, v, low=0, hint=hint, error=error)  # type: ignore[return-value]


def int_sequence(
    owner: str,
    name: str,
    v: Any,
    *,
    low: int = 1,
    min_len: int = 0,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> tuple[int, ...]:
    """`v` (a list or tuple, not a string) as a tuple of at least `min_len` ints >= `low`."""
    if (
        isinstance(v, (str, bytes))
        or not isinstance(v, Sequence)
        or len(v) < min_len
        or not all(is_int(e) and e >= low for e in v)
    ):
        many = f"at least {min_len} " if min_len else ""
        what = f"a list of {many}integers >= {low}"
        raise fail(owner, name, what, v, hint=hint, error=error)
    return tuple(int(e) for e in v)


def image_size(owner: str, v: Any) -> tuple[int, int]:
    """`v` as (height, width): an int (a square) or a pair of ints, all >= 1."""
    pair = (v, v) if is_int(v) else v
    if (
        isinstance(pair, (str, bytes))
        or not isinstance(pair, Sequence)
        or len(pair) != 2
        or not all(is_int(e) and e >= 1 for e in pair)
    ):
        what = "a positive integer or a (height, width) pair of positive integers"
        raise fail(owner, "size", what, v)
    return int(pair[0]), int(pair[1])


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
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> float | None:
    """`v` as a float if it is a finite real in the interval (closed unless `*_open`)."""
    if v is None and allow_none:
        return None
    ok = is_number(v) and math.isfinite(v)
    if ok:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        what = _interval(low, high, low_open, high_open) + (" (or None)" if allow_none else "")
        raise fail(owner, name, what, v, hint=hint, error=error)
    return float(v)


def positive_number(
    owner: str,
    name: str,
    v: Any,
    *,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> float:
    """`v` as a float if it is a finite real > 0."""
    return number(owner, name, v, low=0, low_open=True, hint=hint, error=error)  # type: ignore[return-value]


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if low == 0 and low_open and high == math.inf:
        return "a positive number"
    if low == 0 and not low_open and high == math.inf:
        return "a non-negative number"
    if low > -math.inf and high < math.inf:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"a number in {left}{_fmt(low)}, {_fmt(high)}{right}"
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
    high_open: bool = False,
    allow_none: bool = False,
    hint: str = "",
    error: type[StriateError] = ConfigError,
) -> float | None:
    """`v` as a float in [0, 1] ([0, 1) with `high_open`)."""
    if v is None and allow_none:
        return None
    if not (is_number(v) and v >= 0 and (v < 1 if high_open else v <= 1)):
        what = f"a probability in [0, 1{')' if high_open else ']'}"
        raise fail(owner, name, what, v, hint=hint, error=error)
    return float(v)


def boolean(owner: str, name: str, v: Any, *, error: type[StriateError] = ConfigError) -> bool:
    """`v` if it is a real bool (so that a string like "false" is not silently true)."""
    if not isinstance(v, bool):
        raise fail(owner, name, "True or False", v, error=error)
    return v


def did_you_mean(value: Any, choices: Iterable[str], n: int = 1) -> str:
    """' (did you mean 'x'?)' for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=n)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def options_of(owner: str, cls: type[T], options: Mapping[str, Any]) -> T:
    """The dataclass `cls` built from `options`, or a ConfigError naming the first option it does
    not have (with the closest) and the ones it has."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in options:
        if key not in names:
            raise ConfigError(
                f"{owner}: unknown option {key!r}{did_you_mean(key, names)}; the options are "
                f"{', '.join(sorted(names))}"
            )
    return cls(**options)


def one_of(
    owner: str,
    name: str,
    v: Any,
    choices: Iterable[Any],
    *,
    error: type[StriateError] = ConfigError,
) -> Any:
    """`v` if it is one of `choices`; otherwise the list and the closest name."""
    choices = list(choices)
    if not any(type(v) is type(c) and v == c for c in choices):  # 1 is not True, nor "1"
        prefix = f"{owner}: " if owner else ""
        listed = ", ".join(c if isinstance(c, str) else repr(c) for c in choices)
        raise error(
            f"{prefix}{name} must be one of {listed}, got {v!r}"
            f"{did_you_mean(v, [c for c in choices if isinstance(c, str)])}"
        )
    return v
