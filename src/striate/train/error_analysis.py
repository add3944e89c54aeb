"""Error analysis against human-level error: which gap to work on next.

    result = analyze_errors(human=0.01, train=0.08, train_dev=0.10)
    result.largest.name, result.advice      # "avoidable bias", "a bigger model, ..."

From Andrew Ng's talk "Nuts and Bolts of Applying Deep Learning" (Bay Area Deep Learning School
2016, summarised in the reference's post of that name). The errors are taken in the order of the
talk's flowchart, each gap between neighbours naming one problem:

==================  ===================  ==========================================================
gap                 errors               the talk's remedies
==================  ===================  ==========================================================
avoidable bias      train − human        a bigger model, train longer, a new architecture
variance            train-dev − train    more data, regularisation, a new architecture
data mismatch       dev − train-dev      training data more like the dev/test data (data
                                         synthesis, collect more of it), a new architecture
overfitting to dev  test − dev           more dev data
==================  ===================  ==========================================================

Human-level error stands in for the Bayes error, so the best human level available (a panel of
experts rather than a typical person) is the right one. The *train-dev* set is held out of the
training distribution (in a striate run: the validation split); *dev* and *test* come from the
distribution the model is meant for. When an error is not measured, the gap across it joins the
two problems on either side ("variance + data mismatch" without a train-dev set), and the advice
says that they cannot be told apart.

The post's worked example: train 8 %, dev 10 %, with the dev set standing in for train-dev. With
a human level of 1 % the avoidable bias (7 %) dominates; with 7.5 % the variance (2 %) does. The
post then recommends "data synthesis or gathering data more similar to the test" for that
variance, which is the talk's remedy for data *mismatch*; here variance gets the talk's own
remedies (more data, regularisation). It also says "human accuracy ... 1 %" where it means error.

Sizes of the evaluation sets, when given, put a sampling noise on each gap (two standard errors of
the difference, binomial: sqrt(p(1 − p)/n) with p at least 1/n); a largest gap within its noise is
reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from striate.errors import ConfigError

__all__ = ["ERRORS", "PROBLEMS", "ErrorAnalysis", "Gap", "analyze_errors", "parse_error_rate"]

# the errors in flowchart order, and the problem named by the gap between each neighbour pair
ERRORS = ("human", "train", "train_dev", "dev", "test")
PROBLEMS = ("avoidable_bias", "variance", "data_mismatch", "dev_overfitting")
ERROR_LABELS = {
    "human": "human level",
    "train": "train",
    "train_dev": "train-dev",
    "dev": "dev",
    "test": "test",
}
LABELS = {
    "avoidable_bias": "avoidable bias",
    "variance": "variance",
    "data_mismatch": "data mismatch",
    "dev_overfitting": "overfitting to dev",
}
ADVICE = {
    "avoidable_bias": "a bigger model (more layers or width), train longer, less regularisation, "
    "or a new architecture",
    "variance": "more training data (or more augmentation), more regularisation (weight decay, "
    "dropout, early stopping), or a new architecture",
    "data_mismatch": "make the training data more like the dev/test data (data synthesis, "
    "augmentation that imitates it, collecting more data like it), or a new architecture",
    "dev_overfitting": "a bigger dev set (the model or its settings were tuned to this one)",
}


@dataclass(frozen=True)
class Gap:
    """One gap between neighbouring errors: ``value = errors[upper] − errors[lower]``.

    ``problems`` is one name of PROBLEMS, or several when the errors between were not measured;
    ``noise`` is two standard errors of the difference (None without set sizes)."""

    problems: tuple[str, ...]
    lower: str
    upper: str
    value: float
    noise: float | None
    advice: str

    @property
    def name(self) -> str:
        return " + ".join(LABELS[p] for p in self.problems)

    @property
    def significant(self) -> bool:
        """Above zero and, when the noise is known, above it."""
        return self.value > 0 and (self.noise is None or self.value > self.noise)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "problems": list(self.problems),
            "from": self.lower,
            "to": self.upper,
            "value": self.value,
            "noise": self.noise,
            "advice": self.advice,
        }


@dataclass(frozen=True)
class ErrorAnalysis:
    """The errors (fractions, flowchart order), the gaps between them, the largest positive gap
    (None when no gap is positive) and the advice for it."""

    errors: dict[str, float]
    gaps: list[Gap]
    largest: Gap | None
    advice: str
    sizes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def gap(self, problem: str) -> Gap:
        """The gap that measures `problem` (alone or joined with a neighbour)."""
        for g in self.gaps:
            if problem in g.problems:
                return g
        raise KeyError(f"no gap measures {problem!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "errors": dict(self.errors),
            "sizes": dict(self.sizes),
            "gaps": [g.to_dict() for g in self.gaps],
            "largest": self.largest.name if self.largest is not None else None,
            "advice": self.advice,
            "notes": list(self.notes),
        }


def parse_error_rate(text: str | float, what: str = "--human-error") -> float:
    """An error rate from "0.5%" or "0.005" (a fraction), checked to lie in [0, 1)."""
    raw = str(text).strip()
    percent = raw.endswith("%")
    number = raw[:-1].strip() if percent else raw
    try:
        value = float(number)
    except ValueError:
        raise ConfigError(
            f"{what} must be an error rate as a fraction (0.005) or a percentage (0.5%), "
            f"got {text!r}"
        ) from None
    if percent:
        value /= 100
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} must be an error rate ≥ 0, got {text!r}")
    if value >= 1:
        hint = "" if percent else f"; for {number} percent write {number}%"
        raise ConfigError(f"{what} must be an error rate below 1 (100%), got {text!r}{hint}")
    return value


def _rate(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 <= value <= 1:
        raise ConfigError(f"analyze_errors: {name} must be an error rate in [0, 1], got {value!r}")
    return float(value)


def _noise(errors: Mapping[str, float], sizes: Mapping[str, int], a: str, b: str) -> float | None:
    """Two standard errors of errors[b] − errors[a]; the human level counts as exact."""
    var = 0.0
    for name in (a, b):
        if name == "human":
            continue
        n = sizes.get(name)
        if not n:
            return None
        p = max(errors[name], 1 / n)
        var += p * (1 - p) / n
    return 2 * math.sqrt(var)


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _advice(problems: tuple[str, ...]) -> str:
    if len(problems) == 1:
        return ADVICE[problems[0]]
    return "; ".join(f"{LABELS[p]}: {ADVICE[p]}" for p in problems)


def _missing(gap: Gap) -> str:
    """The sets not measured between a joined gap's ends ("a dev set")."""
    i, j = ERRORS.index(gap.lower), ERRORS.index(gap.upper)
    return _and([f"a {ERROR_LABELS[s]} set" for s in ERRORS[i + 1 : j]])


def _apart(gap: Gap) -> str:
    """Why a joined gap is joined: the sets that were not measured."""
    missing = _missing(gap)
    return (
        f"{_and([LABELS[p] for p in gap.problems])} are measured together "
        f"({ERROR_LABELS[gap.upper]} − {ERROR_LABELS[gap.lower]}): they cannot be told apart "
        f"without {missing}"
    )


def analyze_errors(
    *,
    human: float,
    train: float,
    train_dev: float | None = None,
    dev: float | None = None,
    test: float | None = None,
    sizes: Mapping[str, int] | None = None,
    notes: Sequence[str] = (),
) -> ErrorAnalysis:
    """The gaps between the given error rates (fractions) in the flowchart's order, the largest
    positive one and the talk's advice for it (see the module docstring). ``sizes`` maps error
    names to the number of examples each was measured on (for the sampling noise); ``notes``
    are carried into the result (e.g. why an error is missing)."""
    given = {
        "human": _rate("human", human),
        "train": _rate("train", train),
        "train_dev": _rate("train_dev", train_dev),
        "dev": _rate("dev", dev),
        "test": _rate("test", test),
    }
    if given["human"] is None or given["train"] is None:
        raise ConfigError("analyze_errors: give at least the human-level and the training error")
    sizes = dict(sizes or {})
    for k, n in sizes.items():
        if k not in ERRORS or isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(
                f"analyze_errors: sizes maps error names ({', '.join(ERRORS[1:])}) to positive "
                f"counts, got {k!r}: {n!r}"
            )
    errors = {k: v for k, v in given.items() if v is not None}
    names = list(errors)
    gaps = []
    for a, b in zip(names, names[1:], strict=False):
        i, j = ERRORS.index(a), ERRORS.index(b)
        problems = PROBLEMS[i:j]
        value = errors[b] - errors[a]
        gaps.append(Gap(problems, a, b, value, _noise(errors, sizes, a, b), _advice(problems)))
    notes = [*notes, *(_apart(g) for g in gaps if len(g.problems) > 1)]
    positive = [g for g in gaps if g.value > 0]
    largest = max(positive, key=lambda g: g.value) if positive else None
    if largest is None:
        advice = (
            "no gap is positive: the model is at the human level on every set; look for subsets "
            "of the data where it does worse"
        )
    else:
        noise = (
            ""
            if largest.significant
            else f", within the sampling noise of ±{largest.noise:.2%}: measure on more "
            "examples before acting on it"
        )
        advice = f"{largest.name} is the largest gap ({largest.value:.2%}{noise})"
        if len(largest.problems) > 1:
            advice += (
                f"; without {_missing(largest)} its parts cannot be told apart. {largest.advice}"
            )
        else:
            advice += f": {largest.advice}"
    return ErrorAnalysis(errors, gaps, largest, advice, sizes, notes)
