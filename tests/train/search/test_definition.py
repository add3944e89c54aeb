"""What a search is: its default name, and the refusal to mix two searches in one study or one
folder (the definition recorded in the study, the folder's search.json)."""

from __future__ import annotations

import pytest

from striate.outputs import OutputExists
from striate.train import TrainConfig
from striate.train.search import (
    SearchMismatch,
    coarse_fine,
    default_study_name,
    differences,
    parse_space,
    search,
)
from tests.train.search.helpers import tiny

pytest.importorskip("optuna")  # the extra striate[search]; `make` installs it


def test_the_default_study_is_named_after_data_model_and_params():
    assert default_study_name(tiny(), parse_space(["wd=log:1e-6:1", "lr=log:1e-3:1"])) == (
        "digits-convnet_small-lr-wd"
    )
    cfg = tiny(data="../shared/data/cifar10/cifar10-jpeg.zip", model="mlp")
    assert default_study_name(
        cfg, ["model_options.dropout=uniform:0:0.5", "batch-size=choice:32"]
    ) == ("cifar10-jpeg-mlp-batch_size-dropout")


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


def test_a_search_recorded_before_an_option_was_renamed_continues():
    """A definition saved with an old option name (TrainConfig.ALIASES, e.g. wd) matches today's
    with the new name; a changed value is still a difference."""
    aliases = getattr(TrainConfig, "ALIASES", {})
    if not aliases:
        pytest.skip("no renamed options")
    old, new = next(iter(aliases.items()))
    saved = {"space": {}, "config": {old: 5e-4, "lr": 0.1}, "stages": []}
    assert differences(saved, {"space": {}, "config": {new: 5e-4, "lr": 0.1}, "stages": []}) == []
    assert differences(saved, {"space": {}, "config": {new: 1e-3, "lr": 0.1}, "stages": []}) == [
        f"{new} 0.0005 before, 0.001 now"
    ]
