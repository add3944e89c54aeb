"""Hyper-parameter search: the space, log sampling, the 3x loss abort, narrowing, the edge
warning, the best trial, resuming a study, refusing to mix two searches, and two processes
sharing one study in a journal file or an SQLite database (tiny trials on the bundled digits)."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from scipy import stats

from striate.errors import ConfigError, StriateError
from striate.outputs import OutputExists
from striate.train import TrainConfig
from striate.train.hpsearch import (
    LossAbort,
    Param,
    SearchMismatch,
    SearchResult,
    best_summary,
    check_space,
    choose_best,
    coarse_fine,
    default_study_name,
    edge_warnings,
    make_sampler,
    narrow,
    open_storage,
    parse_param,
    parse_space,
    search,
    write_results,
)

optuna = pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it

TINY = dict(train_size=300, epochs=1, device="cpu", precision="fp32")


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**TINY, **kw})


# --------------------------------------------------------------------------- the space


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


# --------------------------------------------------------------------------- stage logic


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


def test_loss_abort_stops_at_three_times_the_first_loss():
    class FakeTrainer:
        should_stop, stop_reason, step = False, None, 0

    cb, t = LossAbort(3.0), FakeTrainer()
    cb.on_fit_start(t)
    for loss in (2.3, 5.0, 6.8):
        t.step += 1
        cb.on_step_end(t, loss)
    assert not t.should_stop
    t.step += 1
    cb.on_step_end(t, 7.0)
    assert t.should_stop and "exceeded 3x the initial loss 2.3 at step 4" in t.stop_reason


# --------------------------------------------------------------------------- searches


def test_a_too_large_lr_is_aborted_and_results_are_sorted(tmp_path):
    r = search(
        tiny(),
        ["lr=log:1e-3:100", "wd=log:1e-6:1e-2"],
        trials=8,
        out=tmp_path,
        progress=False,
    )
    assert len(r.trials) == 8
    accs = [t["val_acc"] for t in r.trials]
    assert accs == sorted(accs, reverse=True)
    aborted = [t for t in r.trials if t["state"] == "aborted"]
    assert aborted and all(t["params"]["lr"] > 1 for t in aborted)
    assert all("exceeded 3x the initial loss" in t["reason"] for t in aborted)
    assert r.best["state"] == "complete" and r.best == r.trials[0]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["trial"]) for row in rows] == [t["trial"] for t in r.trials]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["best"]["trial"] == r.best["trial"]
    best = TrainConfig.load(tmp_path / "best.toml")
    assert best.lr == pytest.approx(r.best["params"]["lr"])
    assert (tmp_path / "val_acc.png").stat().st_size > 1000


def test_coarse_then_fine_searches_the_narrowed_range(tmp_path):
    config, space = tiny(epochs=2, batch_size=16), ["lr=log:1e-3:1", "dropout=uniform:0:0.5"]
    kw = dict(out=tmp_path, progress=False)
    # the coarse stage alone first (as a benchmark's workers do), then both: it continues
    alone = search(
        config, space, stages=coarse_fine(6, 0, coarse_epochs=1, coarse_train_size=150), **kw
    )
    assert [t["stage"] for t in alone.trials] == ["coarse"] * 6
    assert alone.best["stage"] == "coarse" and "1 epoch on 150 images" in alone.summary
    r = search(
        config, space, stages=coarse_fine(6, 2, coarse_epochs=1, coarse_train_size=150), **kw
    )
    coarse = [t for t in r.trials if t["stage"] == "coarse"]
    fine = [t for t in r.trials if t["stage"] == "fine"]
    assert len(coarse) == 6 and len(fine) == 2
    assert sorted(t["trial"] for t in coarse) == sorted(t["trial"] for t in alone.trials)
    assert {t["epochs"] for t in coarse} == {1}
    assert {t["config"]["epochs"] for t in fine} == {2}
    expected = narrow(r.spaces["coarse"], coarse)
    assert r.spaces["fine"] == expected
    for t in fine:
        assert expected["lr"].low <= t["params"]["lr"] <= expected["lr"].high
    assert r.best["stage"] == "fine"
    assert r.study == "digits-convnet_small-dropout-lr"
    # the coarse stage run again alone still reports the whole search, fine trials included
    again = search(
        config, space, stages=coarse_fine(6, 0, coarse_epochs=1, coarse_train_size=150), **kw
    )
    assert len(again.trials) == 8 and again.best == r.best


# --------------------------------------------------------------------------- the best trial


def _rec(stage, trial, acc, **params):
    return {
        "stage": stage,
        "trial": trial,
        "state": "complete",
        "val_acc": acc,
        "params": params or {"lr": 0.01},
        "config": {"lr": 0.01, "epochs": 2},
    }


STAGES = [
    {"name": "coarse", "epochs": 1, "train_size": 300, "keep": 0.25},
    {"name": "fine", "epochs": None, "train_size": None, "keep": 0.25},
]


def test_a_better_coarse_trial_is_named_next_to_the_chosen_fine_one(tmp_path):
    """The issue's case: fine trial 1 at 33 % is chosen while coarse trial 0 scored 34 %; the line,
    best.toml, results.json and results.csv all say so."""
    trials = [_rec("coarse", 0, 0.34), _rec("fine", 1, 0.33, lr=0.02), _rec("coarse", 2, 0.2)]
    trials.append({**_rec("fine", 3, None), "state": "aborted"})
    best, overall = choose_best(trials, STAGES)
    assert (best["stage"], best["trial"]) == ("fine", 1)
    assert (overall["stage"], overall["trial"]) == ("coarse", 0)
    line = best_summary(best, overall, STAGES)
    assert line.startswith(
        "best fine-stage trial (full-length training): trial 1, val accuracy 33.00%"
    )
    assert "the best coarse trial (0) scored 34.00% after 1 epoch on 300 images" in line
    result = SearchResult(trials, best, {}, stages=STAGES, best_overall=overall)
    write_results(result, tmp_path)
    assert (tmp_path / "best.toml").read_text().startswith(f"# {line}\n")
    assert TrainConfig.load(tmp_path / "best.toml").lr == 0.01
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["summary"] == line and saved["best"]["trial"] == 1
    assert saved["best_overall"]["trial"] == 0
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["stage"], r["trial"]) for r in rows if r["best"] == "yes"] == [("fine", "1")]


def test_the_best_trial_plainly_when_nothing_scored_higher():
    trials = [_rec("coarse", 0, 0.30), _rec("fine", 1, 0.33)]
    best, overall = choose_best(trials, STAGES)
    line = best_summary(best, overall, STAGES)
    assert best is overall and "coarse" not in line
    single = [{"name": "search", "epochs": None, "train_size": None, "keep": 0.25}]
    one = [{**_rec("search", 4, 0.9), "params": {"lr": 0.0123}}, _rec("search", 2, 0.5)]
    best, overall = choose_best(one, single)
    assert best_summary(best, overall, single) == "best: trial 4, val accuracy 90.00% (lr=0.0123)"
    # no fine trial completed: the best coarse one, said to be one
    best, _ = choose_best([_rec("coarse", 0, 0.3)], STAGES)
    assert best_summary(best, best, STAGES).startswith("best coarse-stage trial (1 epoch on 300")
    assert choose_best([], STAGES) == (None, None)


# --------------------------------------------------------------------------- studies


def test_the_default_study_is_named_after_data_model_and_params():
    assert default_study_name(tiny(), parse_space(["wd=log:1e-6:1", "lr=log:1e-3:1"])) == (
        "digits-convnet_small-lr-wd"
    )
    cfg = tiny(data="../shared/data/cifar10/cifar10-jpeg.zip", model="mlp")
    assert default_study_name(
        cfg, ["model_options.dropout=uniform:0:0.5", "batch-size=choice:32"]
    ) == ("cifar10-jpeg-mlp-batch_size-dropout")


def test_resume_counts_finished_trials_and_retries_one_left_running(tmp_path):
    space = ["lr=log:1e-3:1"]
    first = search(tiny(), space, trials=3, out=tmp_path, progress=False)
    assert len(first.trials) == 3 and first.study == "digits-convnet_small-lr"
    # a process that died in the middle of a trial: RUNNING, with its pid
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.load_study(study_name=first.study, storage=open_storage(None, tmp_path))
    left = study.ask()
    left.suggest_float("lr", 1e-3, 1.0, log=True)
    left.set_user_attr("pid", dead.pid)
    left.set_user_attr("host", os.uname().nodename)
    lr_left = left.params["lr"]
    again = search(tiny(), space, trials=5, out=tmp_path, progress=False)
    assert len(again.trials) == 5 and all(t["state"] == "complete" for t in again.trials)
    by_number = {t["trial"]: t for t in again.trials}
    for t in first.trials:  # the first three stay as they were
        assert by_number[t["trial"]]["params"] == t["params"]
    assert left.number not in by_number  # failed, not counted
    retried = [t for t in again.trials if t["params"]["lr"] == lr_left]
    assert len(retried) == 1
    storage = open_storage(None, tmp_path)
    states = {
        t.number: t.state.name
        for t in optuna.load_study(study_name=first.study, storage=storage).trials
    }
    assert states[left.number] == "FAIL"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished two-trial search of lr in a folder, and one in an SQLite database."""
    folder = tmp_path_factory.mktemp("search")
    db = f"sqlite:///{folder / 'studies.db'}"
    search(tiny(), ["lr=log:1e-3:1"], trials=2, out=folder / "a", progress=False)
    search(tiny(), ["lr=log:1e-3:1"], trials=2, storage=db, study_name="s", progress=False)
    return folder, db


@pytest.mark.parametrize(
    ("space", "changes", "message"),
    [
        (["lr=log:1e-4:1"], {}, "lr range log:0.001:1 before, log:0.0001:1 now"),
        (["lr=uniform:1e-3:1"], {}, "lr range log:0.001:1 before, uniform:0.001:1 now"),
        (["lr=log:1e-3:1", "wd=log:1e-6:1e-2"], {}, "wd=log:1e-06:0.01 searched now, not before"),
        (["lr=log:1e-3:1"], {"epochs": 2}, "epochs 1 before, 2 now"),
        (["lr=log:1e-3:1"], {"model": "mlp"}, "model 'convnet_small' before, 'mlp' now"),
        (["lr=log:1e-3:1"], {"data": "mnist"}, "data 'digits' before, 'mnist' now"),
        (
            ["lr=log:1e-3:1"],
            {"stages": coarse_fine(2, 1)},
            "stages search (full-length training) before, coarse",
        ),
    ],
)
def test_another_search_under_the_same_name_is_refused(searched, space, changes, message):
    """A folder's study and a database's study alike: one line saying what differs and what to do;
    nothing is trained or written."""
    folder, db = searched
    changes = dict(changes)
    how = {"stages": changes.pop("stages")} if "stages" in changes else {"trials": 3}
    before = (folder / "a" / "results.csv").read_text()
    for where in (
        {"out": folder / "a", "study_name": "digits-convnet_small-lr"},
        {"storage": db, "study_name": "s"},
    ):
        with pytest.raises(SearchMismatch) as e:
            search(tiny(**changes), space, **how, **where, progress=False)
        text = str(e.value)
        assert message in text and "\n" not in text
        assert "run the same command to continue it" in text
        assert "another --study or --out, or --overwrite to start afresh" in text
    assert (folder / "a" / "results.csv").read_text() == before


def test_a_folder_holds_the_results_of_one_study(searched, tmp_path):
    folder, _ = searched
    with pytest.raises(
        SearchMismatch, match=r"holds the results of study 'digits-convnet_small-lr'"
    ):
        search(
            tiny(),
            ["lr=log:1e-3:1"],
            trials=2,
            out=folder / "a",
            study_name="other",
            progress=False,
        )
    # a log or notes beside the results are left alone; results no search.json claims are not
    (tmp_path / "log.txt").write_text("mine")
    search(tiny(), ["lr=log:1e-3:1"], trials=1, out=tmp_path, progress=False)
    assert (tmp_path / "log.txt").read_text() == "mine"
    (tmp_path / "search.json").unlink()
    with pytest.raises(OutputExists, match=r"holds search results \(results.csv, results.json"):
        search(tiny(), ["lr=log:1e-3:1"], trials=1, out=tmp_path, progress=False)


def test_a_search_that_cannot_start_leaves_no_folder(tmp_path):
    with pytest.raises(StriateError, match="nosuchdata"):
        search(tiny(data="nosuchdata"), ["lr=log:1e-3:1"], trials=1, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_two_default_studies_share_a_storage_without_mixing(tmp_path):
    journal = str(tmp_path / "all.journal")
    a = search(tiny(), ["lr=log:1e-3:1"], trials=2, storage=journal, progress=False)
    b = search(tiny(), ["wd=log:1e-6:1e-2"], trials=1, storage=journal, progress=False)
    assert (a.study, b.study) == ("digits-convnet_small-lr", "digits-convnet_small-wd")
    assert [len(r.trials) for r in (a, b)] == [2, 1]
    names = optuna.get_all_study_names(open_storage(journal, None))
    assert sorted(names) == ["digits-convnet_small-lr", "digits-convnet_small-wd"]


def test_overwrite_starts_afresh(tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    for where in ({"out": tmp_path / "f"}, {"storage": db, "out": tmp_path / "g"}):
        old = search(tiny(), ["lr=log:1e-3:1"], trials=3, progress=False, **where)
        assert len(old.trials) == 3
        (where["out"] / "stray.txt").write_text("x")
        new = search(
            tiny(epochs=2),
            ["wd=log:1e-6:1e-2"],
            trials=1,
            study_name=old.study,
            overwrite=True,
            progress=False,
            **where,
        )
        assert len(new.trials) == 1 and set(new.trials[0]["params"]) == {"wd"}
        assert not (where["out"] / "stray.txt").exists()
        saved = json.loads((where["out"] / "results.json").read_text())
        assert [t["trial"] for t in saved["trials"]] == [0]  # the old trials are gone
        storage = open_storage(where.get("storage"), where["out"])
        study = optuna.load_study(study_name=old.study, storage=storage)
        assert len(study.trials) == 1
        assert study.user_attrs["definition"]["space"] == {"wd": ["log", 1e-6, 1e-2]}
        claim = json.loads((where["out"] / "search.json").read_text())
        assert claim["study"] == old.study and claim["definition"]["config"]["epochs"] == 2


WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from striate.train import TrainConfig, search
    here, me, storage = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None
    (here / f"ready-{me}").touch()
    while not (here / "go").exists():
        time.sleep(0.05)
    cfg = TrainConfig(train_size=400, epochs=1, device="cpu", precision="fp32")
    out = here / "out"
    search(cfg, ["lr=log:1e-3:0.3"], trials=8, out=out, storage=storage, progress=False, poll=0.2)
    """
)


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_two_processes_share_one_study(tmp_path, storage):
    """Two processes started together on one study (a journal file, or an SQLite database, whose
    tables they race to create): both run trials, no trial number twice, none sampled twice,
    and the results hold all eight."""
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage == "sqlite" else ""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(i), url], env=env)
        for i in range(2)
    ]
    deadline = time.time() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    (tmp_path / "go").touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    name = "digits-convnet_small-lr"
    out = tmp_path / "out"
    study = optuna.load_study(study_name=name, storage=open_storage(url or None, out))
    done = [t for t in study.trials if "discarded" not in t.user_attrs]
    assert len(done) == 8 and all(t.state.is_finished() for t in done)
    assert len({t.number for t in study.trials}) == len(study.trials)  # no number twice
    assert {t.user_attrs["pid"] for t in done} == {p.pid for p in procs}  # both worked
    assert len({t.params["lr"] for t in done}) == 8  # no trial sampled twice
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["trials"]) == 8 and saved["study"] == name
    assert sorted(t["trial"] for t in saved["trials"]) == sorted(t.number for t in done)
    if storage == "sqlite":
        assert not (out / "study.journal").exists()


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # not installed (whether it is or not)
    with pytest.raises(ConfigError) as e:
        open_storage("postgresql://bob:secret@localhost/studies", None)
    assert str(e.value) == (
        "--storage postgresql://bob:***@localhost/studies: the database driver psycopg is not "
        "installed: pip install 'psycopg[binary]'"
    )
    with pytest.raises(ConfigError, match="cannot open the database .*folder exists"):
        open_storage(f"sqlite:///{tmp_path / 'missing' / 's.db'}", None)
    with pytest.raises(ConfigError, match="not a database URL"):
        open_storage("nosuchdb://x", None)
