"""Error analysis against human-level error ("Nuts and Bolts of Applying Deep Learning")."""

from __future__ import annotations

import math

import pytest

from striate.errors import ConfigError
from striate.train.error_analysis import ADVICE, analyze_errors, parse_error_rate


@pytest.mark.parametrize(
    ("human", "largest", "bias", "variance"),
    [(0.01, "avoidable_bias", 0.07, 0.02), (0.075, "variance", 0.005, 0.02)],
)
def test_the_posts_worked_example(human, largest, bias, variance):
    # train 8 %, dev 10 % (the dev set standing in for train-dev): with a human level of 1 %
    # "a blatant bias problem", with 7.5 % "more of a variance problem"
    result = analyze_errors(human=human, train=0.08, train_dev=0.10)
    assert result.largest.problems == (largest,)
    assert result.gap("avoidable_bias").value == pytest.approx(bias)
    assert result.gap("variance").value == pytest.approx(variance)
    assert result.advice.startswith(result.largest.name) and ADVICE[largest] in result.advice
    assert result.notes == []


def test_four_gaps_each_between_neighbouring_errors():
    result = analyze_errors(human=0.005, train=0.02, train_dev=0.03, dev=0.08, test=0.085)
    values = {g.problems: g.value for g in result.gaps}
    assert values == pytest.approx(
        {
            ("avoidable_bias",): 0.015,
            ("variance",): 0.01,
            ("data_mismatch",): 0.05,
            ("dev_overfitting",): 0.005,
        }
    )
    assert [(g.lower, g.upper) for g in result.gaps] == [
        ("human", "train"),
        ("train", "train_dev"),
        ("train_dev", "dev"),
        ("dev", "test"),
    ]
    assert result.largest.name == "data mismatch"
    assert "data synthesis" in result.advice  # the talk's remedy for mismatch
    # the four gaps add up to test − human
    assert sum(g.value for g in result.gaps) == pytest.approx(0.085 - 0.005)
    # tuned to the dev set: the last gap is the largest, the remedy is more dev data
    tuned = analyze_errors(human=0.005, train=0.01, train_dev=0.012, dev=0.015, test=0.06)
    assert tuned.largest.name == "overfitting to dev" and "bigger dev set" in tuned.advice


def test_a_missing_error_joins_the_gaps_on_either_side():
    # no separate dev set: data mismatch and overfitting to dev are one gap, said so
    result = analyze_errors(human=0.01, train=0.02, train_dev=0.03, test=0.09)
    joined = result.gap("data_mismatch")
    assert joined is result.gap("dev_overfitting")
    assert joined.name == "data mismatch + overfitting to dev"
    assert joined.value == pytest.approx(0.06) and result.largest is joined
    assert any("cannot be told apart without a dev set" in n for n in result.notes)
    assert "cannot be told apart" in result.advice
    # no train-dev set: variance and data mismatch together
    no_train_dev = analyze_errors(human=0.01, train=0.08, dev=0.10)
    assert no_train_dev.gap("variance").name == "variance + data mismatch"
    assert any("without a train-dev set" in n for n in no_train_dev.notes)


def test_no_positive_gap_and_gaps_within_noise():
    better = analyze_errors(human=0.02, train=0.01, train_dev=0.01)
    assert better.largest is None and "no gap is positive" in better.advice
    # one error in 144 validation images is within the sampling noise
    sizes = {"train": 1293, "train_dev": 144}
    noisy = analyze_errors(human=0.005, train=0.0, train_dev=1 / 144, sizes=sizes)
    gap = noisy.gap("variance")
    p_train, p_dev = 1 / 1293, 1 / 144  # an error of 0 counts as 1/n for its standard error
    expected = 2 * math.sqrt(p_train * (1 - p_train) / 1293 + p_dev * (1 - p_dev) / 144)
    assert gap.noise == pytest.approx(expected)
    assert not gap.significant and "within the sampling noise" in noisy.advice
    # the human level is exact: only the training error's noise counts for the bias gap
    bias = analyze_errors(human=0.01, train=0.05, sizes={"train": 400}).gap("avoidable_bias")
    assert bias.noise == pytest.approx(2 * math.sqrt(0.05 * 0.95 / 400)) and bias.significant


def test_to_dict_is_plain_data():
    d = analyze_errors(human=0.01, train=0.08, train_dev=0.10).to_dict()
    assert d["largest"] == "avoidable bias" and d["errors"]["train"] == 0.08
    assert d["gaps"][0] == {
        "name": "avoidable bias",
        "problems": ["avoidable_bias"],
        "from": "human",
        "to": "train",
        "value": pytest.approx(0.07),
        "noise": None,
        "advice": ADVICE["avoidable_bias"],
    }


@pytest.mark.parametrize(
    ("text", "value"), [("0.5%", 0.005), ("0.005", 0.005), (" 1.5 % ", 0.015), (0.02, 0.02)]
)
def test_error_rates_parse_as_fractions_or_percentages(text, value):
    assert parse_error_rate(text) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", "fraction \\(0.005\\) or a percentage \\(0.5%\\)"),
        ("-1%", "≥ 0"),
        ("5", "below 1 .*write 5%"),
        ("100%", "below 1"),
        ("nan", "≥ 0"),
    ],
)
def test_bad_error_rates_are_config_errors(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_error_rate(text)


def test_bad_analysis_input_is_a_config_error():
    with pytest.raises(ConfigError, match="train must be an error rate"):
        analyze_errors(human=0.01, train=1.5)
    with pytest.raises(ConfigError, match="sizes"):
        analyze_errors(human=0.01, train=0.1, sizes={"val": 10})
