"""Stages, coarse to fine: the range a later stage searches (`narrow`), the warning that the best
value lies at the edge of a range, and the checks of a stage's settings."""

from __future__ import annotations

import math

import pytest

from striate.errors import ConfigError
from striate.train.search import Param, Stage, coarse_fine, edge_warnings, narrow


def _trial(acc, state="complete", **params):
    return {"val_acc": acc, "state": state, "params": params}


def test_narrow_takes_the_span_of_the_best_quarter_with_a_margin():
    space = {
        "lr": Param("lr", "log", 1e-4, 1.0),
        "bs": Param("bs", "choice", choices=(16, 32, 64)),
        "d": Param("d", "uniform", 0.0, 0.5),
    }
    trials = [_trial(0.9, lr=1e-2, bs=32, d=0.2), _trial(0.8, lr=1e-3, bs=64, d=0.3)]
    trials += [_trial(0.1 + 0.01 * i, lr=0.5, bs=16, d=0.0) for i in range(6)]
    trials.append(_trial(None, "aborted", lr=0.9, bs=16, d=0.49))
    new = narrow(space, trials, keep=0.25, min_keep=3)  # ceil(0.25*8)=2 -> 3 best
    # the best three: lr 1e-2, 1e-3, 0.5 -> span [-3, -0.3] (log10), margin half the width
    lo, hi = math.log10(new["lr"].low), math.log10(new["lr"].high)
    assert lo == pytest.approx(-4.0)  # -3 - 1.35 clipped to the old bound
    assert hi == 0.0
    assert new["bs"].choices == (16, 32, 64)
    narrower = narrow(space, trials, keep=0.25, min_keep=2)
    span = math.log10(1e-2) - math.log10(1e-3)
    assert math.log10(narrower["lr"].low) == pytest.approx(-3 - span / 2)
    assert math.log10(narrower["lr"].high) == pytest.approx(-2 + span / 2)
    assert narrower["bs"].choices == (32, 64)
    assert narrower["d"].low == pytest.approx(0.15) and narrower["d"].high == pytest.approx(0.35)
    assert narrow(space, [_trial(None, "aborted", lr=1, bs=16, d=0)]) == space


def test_edge_warning_fires_only_at_the_edges():
    space = {
        "lr": Param("lr", "log", 1e-4, 1.0),
        "d": Param("d", "uniform", 0.0, 0.5),
        "bs": Param("bs", "choice", choices=(32, 64, 128)),
    }
    assert edge_warnings(space, {"lr": 1e-2, "d": 0.25, "bs": 64}) == []
    w = edge_warnings(space, {"lr": 0.8, "d": 0.01, "bs": 128}, "coarse")
    assert len(w) == 3
    assert "lr=0.8 lies at the upper edge" in w[0] and "coarse stage" in w[0]
    assert "d=0.01 lies at the lower edge" in w[1]
    assert "bs=128 lies at the upper edge" in w[2]
    # 2e-4 is 7.5% of the way up on the log axis: the edge; on a linear axis it would not be
    assert edge_warnings({"lr": space["lr"]}, {"lr": 2e-4})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(trials=0), "stage s: trials must be a positive integer, got 0"),
        (dict(trials=2, epochs=1.5), r"stage s: epochs must be a positive integer \(or None\)"),
        (dict(trials=2, train_size=True), "stage s: train_size must be a positive integer"),
        (dict(trials=2, keep=0), "stage s: keep must be .*, got 0$"),
        (dict(trials=2, keep=1.5), "stage s: keep must be .*, got 1.5$"),
    ],
)
def test_a_stage_checks_its_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Stage("s", **kwargs)
    assert Stage("s", 2, epochs=None, train_size=None, keep=1).keep == 1


def test_coarse_fine_leaves_out_a_stage_of_no_trials():
    assert [s.name for s in coarse_fine(4, 0)] == ["coarse"]
    assert [(s.name, s.keep) for s in coarse_fine(0, 2, keep=0.5)] == [("fine", 0.5)]
    with pytest.raises(ConfigError, match="no trials to run"):
        coarse_fine(0, 0)
