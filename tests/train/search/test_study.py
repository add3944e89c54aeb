"""Running a search: the 3x abort and the sorted results, coarse then fine in the narrowed range,
resuming a study (a trial left running by a dead process is retried), a search that cannot start,
studies sharing a storage, --overwrite, and two processes sharing one study in a journal file or
an SQLite database (tiny trials on the bundled digits)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from striate.errors import ConfigError, StriateError
from striate.train import TrainConfig
from striate.train.search import Stage, coarse_fine, narrow, open_storage, search
from tests.train.search.helpers import tiny

optuna = pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(trials=0), "search: trials must be a positive integer, got 0"),
        (dict(trials=2, stages=coarse_fine(2, 1)), "give exactly one of trials"),
        (dict(), "give exactly one of trials"),
        (dict(stages=[Stage("a", 1), Stage("a", 2)]), "stage names must differ, got a, a"),
        (dict(trials=2, sampler="tpf"), r"sampler must be one of random, tpe, got 'tpf' \(did"),
        (dict(trials=2, pruner="medain"), "search: pruner must be one of none, median, "),
        (dict(trials=2, abort_factor=1), "search: abort_factor must be .*1.*, got 1$"),
    ],
)
def test_the_arguments_are_checked_before_anything_runs(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        search(tiny(), ["lr=log:1e-3:1"], out=tmp_path / "s", progress=False, **kwargs)
    assert not (tmp_path / "s").exists()


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


def test_resume_counts_finished_trials_and_retries_one_left_running(tmp_path):
    space = ["lr=log:1e-3:1"]
    first = search(tiny(), space, trials=3, out=tmp_path, progress=False)
    assert len(first.trials) == 3 and first.study == "digits-convnet_small-lr"
    # a process that died in the middle of a trial: RUNNING, with its pid
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a seeded sampler: an unseeded one drew lr near 1 now and then, and that trial diverged
    sampler = optuna.samplers.RandomSampler(seed=3)
    storage = open_storage(None, tmp_path)
    study = optuna.load_study(study_name=first.study, storage=storage, sampler=sampler)
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


# two processes start in each; the journal file variant runs under -m slow (25 s)
@pytest.mark.parametrize("storage", [pytest.param("journal", marks=pytest.mark.slow), "sqlite"])
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
