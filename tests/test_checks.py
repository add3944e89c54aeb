"""The shared argument checks: what passes, what each refusal says ("owner: name must be …,
got …"), and the error class chosen."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from striate import checks
from striate.errors import ConfigError, DataError, InputError, StriateError


def test_integers_accept_numpy_and_refuse_bools_floats_and_out_of_range():
    assert checks.positive_int("T", "epochs", np.int64(3)) == 3
    assert type(checks.positive_int("T", "epochs", np.int64(3))) is int
    assert checks.positive_int("T", "n", None, allow_none=True) is None
    assert checks.non_negative_int("T", "n", 0) == 0
    assert checks.integer("T", "n", 5, low=2, high=5) == 5
    for bad in (0, -1, 1.0, True, "1", None):
        with pytest.raises(
            ConfigError, match=rf"^T: epochs must be a positive integer, got {bad!r}$"
        ):
            checks.positive_int("T", "epochs", bad)
    with pytest.raises(ConfigError, match=r"n must be a non-negative integer, got -1"):
        checks.non_negative_int("T", "n", -1)
    with pytest.raises(ConfigError, match=r"n must be an integer >= 2 and <= 5, got 6"):
        checks.integer("T", "n", 6, low=2, high=5)
    with pytest.raises(ConfigError, match=r"n must be a positive integer \(or None\), got 0"):
        checks.positive_int("T", "n", 0, allow_none=True)


def test_hint_error_class_and_missing_owner():
    with pytest.raises(InputError) as e:
        checks.integer(
            "NCA", "batch_size", 1, low=2, hint="the softmax needs neighbours", error=InputError
        )
    assert str(e.value) == (
        "NCA: batch_size must be an integer >= 2 (the softmax needs neighbours), got 1"
    )
    assert isinstance(e.value, ValueError) and isinstance(e.value, StriateError)
    with pytest.raises(DataError, match=r"^seed must be an integer, got 'a'$"):
        checks.integer("", "seed", "a", error=DataError)


def test_numbers_and_intervals():
    assert checks.number("T", "x", np.float32(0.5), low=0, high=1) == 0.5
    assert checks.positive_number("T", "lr", 3) == 3.0
    for bad in (math.nan, math.inf, 0, -1, True, "1"):
        with pytest.raises(ConfigError, match="lr must be a positive number"):
            checks.positive_number("T", "lr", bad)
    cases = [
        (dict(low=0), -1, "a non-negative number"),
        (dict(low=0, high=1, high_open=True), 1, r"a number in \[0, 1\)"),
        (dict(low=0, high=1, low_open=True), 0, r"a number in \(0, 1\]"),
        (dict(low=1), 0.5, "a finite number >= 1"),
        (dict(high=2, high_open=True), 2, "a finite number < 2"),
        ({}, math.nan, "a finite number, got nan"),
    ]
    for kw, v, words in cases:
        with pytest.raises(ConfigError, match=f"T: x must be {words}"):
            checks.number("T", "x", v, **kw)


def test_probability_boolean_sequence():
    assert checks.probability("D", "p", 1) == 1.0
    with pytest.raises(ConfigError, match=r"p must be a probability in \[0, 1\), got 1"):
        checks.probability("D", "p", 1, high_open=True)
    with pytest.raises(ConfigError, match=r"must be a probability in \[0, 1\], got -0.1"):
        checks.probability("D", "p", -0.1)
    assert checks.boolean("M", "bn", False) is False
    with pytest.raises(ConfigError, match="M: bn must be True or False, got 'false'"):
        checks.boolean("M", "bn", "false")
    assert checks.int_sequence("C", "w", [np.int64(2), 3], min_len=1) == (2, 3)
    for bad in ([], "12", [1, 0], [1.0]):
        with pytest.raises(ConfigError, match="w must be a list of at least 1 integers >= 1"):
            checks.int_sequence("C", "w", bad, min_len=1)


def test_options_of_builds_the_dataclass_or_names_the_stray_option():
    @dataclasses.dataclass
    class Settings:
        learning_rate: float = 0.1
        gamma: float = 0.9

    assert checks.options_of("agent", Settings, {"gamma": 0.5}) == Settings(gamma=0.5)
    with pytest.raises(ConfigError) as e:
        checks.options_of("agent", Settings, {"gama": 0.5})
    assert str(e.value) == (
        "agent: unknown option 'gama' (did you mean 'gamma'?); the options are gamma, learning_rate"
    )


def test_one_of_lists_the_choices_and_suggests():
    assert checks.one_of("T", "schedule", "cosine", ["cosine", "step"]) == "cosine"
    assert checks.one_of("L", "penalty", None, ["l2", None]) is None
    with pytest.raises(ConfigError) as e:
        checks.one_of("T", "schedule", "cosin", ["cosine", "step"])
    assert str(e.value) == (
        "T: schedule must be one of cosine, step, got 'cosin' (did you mean 'cosine'?)"
    )
    with pytest.raises(ConfigError, match="k must be one of 1, 2, got True"):
        checks.one_of("T", "k", True, [1, 2])  # True == 1, but it is not the number
    assert checks.did_you_mean("zzz", ["cosine"]) == ""


@pytest.mark.parametrize(("v", "expected"), [(5, (5, 5)), ((3, 4), (3, 4)), ([2, 7], (2, 7))])
def test_image_size_takes_an_int_or_a_pair(v, expected):
    assert checks.image_size("Crop", v) == expected


@pytest.mark.parametrize("v", [0, -3, (3,), (3, 0), (3, 4, 5), "ab", 2.5, (2.0, 3), None, True])
def test_image_size_refuses_anything_else_saying_what_it_takes(v):
    with pytest.raises(ConfigError, match=r"Crop: size must be a positive integer or a \(height"):
        checks.image_size("Crop", v)
