"""The search space: the command-line and TOML forms, the errors for a bad range, the check
against the training configuration, and log sampling (uniform in log space)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from striate.errors import ConfigError
from striate.train import TrainConfig
from striate.train.search import (
    Param,
    apply_params,
    check_space,
    make_sampler,
    parse_param,
    parse_space,
)
from tests.train.search.helpers import tiny

optuna = pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it


def test_parse_the_command_line_forms():
    assert parse_param("lr=log:1e-4:1") == Param("lr", "log", 1e-4, 1.0)
    assert parse_param("dropout=uniform:0:0.5") == Param("dropout", "uniform", 0.0, 0.5)
    assert parse_param("batch-size=choice:32,64,128") == Param(
        "batch_size", "choice", choices=(32, 64, 128)
    )
    assert parse_param("opt=choice:sgd,adam").choices == ("sgd", "adam")
    assert parse_param("epochs=int:1:5") == Param("epochs", "int", 1, 5)


def test_parse_a_mapping_as_from_toml():
    space = parse_space(
        {
            "lr": ("log", 1e-4, 1),
            "wd": "log:1e-6:1e-2",
            "batch_size": ("choice", [32, 64, 128]),
            "momentum": [0.8, 0.9],
        }
    )
    assert space["lr"].log and space["wd"].low == 1e-6
    assert space["batch_size"].choices == (32, 64, 128)
    assert space["momentum"].choices == (0.8, 0.9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr=log:1:1e-4", "must be below the high bound"),
        ("lr=uniform:0.5:0.5", "must be below the high bound"),
        ("lr=log:0:1", "log range needs positive bounds"),
        ("wd=log:-1e-3:1", "log range needs positive bounds"),
        ("lr=logarithmic:1e-4:1", "unknown kind"),
        ("lr=log:a:b", "must be numbers"),
        ("lr=log:1e-4", "needs LOW and HIGH"),
        ("lr", "is not NAME="),
        ("epochs=int:1.5:4", "whole-number"),
        ("bs=choice:", "at least one value"),
        ("bs=choice:32,32", "repeat"),
    ],
)
def test_bad_ranges_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_param(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("learning_rate=log:1e-4:1", "unknown search parameter 'learning_rate'"),
        ("model_options.depth=int:1:3", "has no option 'depth'"),
        ("seed=int:0:9", "seed cannot be searched"),
        ("data=choice:digits,mnist", "data cannot be searched"),
        ("momentum=uniform:0.5:1.5", "momentum must be a number"),
        ("batch_size=log:0.5:64", "whole-number"),
    ],
)
def test_the_space_is_checked_against_the_config(text, message):
    with pytest.raises(ConfigError, match=message):
        check_space(parse_space([text]), tiny())


def test_model_arguments_and_integer_fields():
    space = check_space(
        parse_space(["dropout=uniform:0:0.5", "batch_size=log:16:128", "lr=log:1e-3:1"]), tiny()
    )
    assert space["batch_size"] == Param("batch_size", "logint", 16, 128)
    assert space["dropout"].kind == "uniform"  # an argument of the convnet builder


def test_log_sampling_is_uniform_in_log_space():
    """The random sampler's values of a log range: log10 uniform on [-4, 0] (KS test), and
    clearly not uniform on the linear scale (a test that can fail)."""
    study = optuna.create_study(sampler=make_sampler("random", 0))
    p = Param("lr", "log", 1e-4, 1.0)
    values = []
    for _ in range(2000):
        t = study.ask()
        values.append(p.suggest(t))
        study.tell(t, 0.0)
    logs = np.log10(values)
    assert logs.min() >= -4 and logs.max() <= 0
    assert stats.kstest(logs, "uniform", args=(-4, 4)).pvalue > 0.01
    assert stats.kstest(values, "uniform", args=(1e-4, 1.0)).pvalue < 1e-6
    # each decade gets about a quarter
    counts = np.histogram(logs, bins=[-4, -3, -2, -1, 0])[0]
    assert np.all(np.abs(counts / len(values) - 0.25) < 0.04)


def test_two_names_of_one_option_are_refused():
    with pytest.raises(ConfigError, match="dropout and model_options.dropout set the same option"):
        check_space(
            parse_space(["dropout=uniform:0:0.5", "model_options.dropout=uniform:0:0.3"]), tiny()
        )


def test_an_old_name_searches_its_field():
    """A renamed option (TrainConfig.ALIASES, e.g. wd) is still searched under its old name, with
    a DeprecationWarning; the trials' configs set the new field."""
    aliases = getattr(TrainConfig, "ALIASES", {})
    if not aliases:
        pytest.skip("no renamed options")
    old, new = next(iter(aliases.items()))
    with pytest.deprecated_call(match=f"now called {new}"):
        space = check_space(parse_space([f"{old}=log:1e-6:1e-2"]), tiny())
    assert list(space) == [old]
    assert apply_params(tiny(), {old: 1e-3}).to_dict()[new] == 1e-3
    with pytest.raises(ConfigError, match="set the same option"):
        check_space(parse_space([f"{old}=log:1e-6:1e-2", f"{new}=log:1e-6:1e-2"]), tiny())
