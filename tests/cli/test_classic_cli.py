"""`striate classic knn|nca|linear` end to end on the bundled digits, and their plots."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from striate.classic.experiments import load_pair
from striate.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_knn_with_select_k_writes_metrics_and_plots(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "classic",
        "knn",
        "--select-k",
        "--ks",
        "1,3,5",
        "--folds",
        "3",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and "test_accuracy" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["k"] in (1, 3, 5) and metrics["cv_ks"] == [1, 3, 5]
    assert (
        metrics["k"]
        == metrics["cv_ks"][metrics["cv_mean_accuracy"].index(max(metrics["cv_mean_accuracy"]))]
    )
    assert metrics["test_accuracy"] > 0.95  # 1–5-NN on digits: ~98%
    for name in ("select_k", "confusion"):
        with Image.open(tmp_path / f"{name}.png") as im:
            assert im.format == "PNG"


def test_linear_svm_and_softmax(capsys, tmp_path):
    code, out, _ = run(capsys, "classic", "linear", "--out", str(tmp_path / "svm"))
    assert code == 0
    assert json.loads((tmp_path / "svm" / "metrics.json").read_text())["test_accuracy"] > 0.9
    assert (tmp_path / "svm" / "templates.png").is_file()
    code, out, _ = run(
        capsys,
        "classic",
        "linear",
        "--loss",
        "softmax",
        "--search",
        "2",
        "--val-size",
        "100",
        "--out",
        str(tmp_path / "sm"),
    )
    assert code == 0 and "val acc" in out
    metrics = json.loads((tmp_path / "sm" / "metrics.json").read_text())
    assert len(metrics["search"]) == 2 and metrics["n_val"] == 100


def test_nca_reports_both_representations(capsys, tmp_path):
    code, out, _ = run(
        capsys, "classic", "nca", "--dim", "8", "--max-iter", "5", "--out", str(tmp_path)
    )
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["raw"]["dims"] == 64 and metrics["nca"]["dims"] == 8
    assert metrics["nca"]["storage_mb"] == pytest.approx(metrics["raw"]["storage_mb"] / 8)
    assert (tmp_path / "embedding.png").is_file()


def test_user_errors_exit_2(capsys):
    code, _, err = run(capsys, "classic", "knn", "--k", "5000")
    assert code == 2 and err.startswith("error: ") and "5000" in err
    code, _, err = run(capsys, "classic", "linear", "--features", "hist")
    assert code == 2 and "RGB" in err
    code, _, err = run(capsys, "classic", "linear", "--lr", "fast")
    assert code == 2 and "--lr" in err
    code, _, err = run(capsys, "classic", "knn", "--features", "sift")
    assert code == 2 and "features must be one of" in err


def test_subsets_are_stratified():
    train, test = load_pair("digits", n_train=500, n_test=100)
    assert (len(train), len(test)) == (500, 100)
    full, _ = load_pair("digits")
    expected = full.class_counts().double() * 500 / len(full)
    assert (train.class_counts() - expected).abs().max() <= 1
    assert "500 stratified" in train.source


@pytest.mark.parametrize("command", ["knn", "nca", "linear"])
def test_help(capsys, command):
    code, out, _ = run(capsys, "classic", command, "--help")
    assert code == 0 and "--data" in out and "--seed" in out


SMALL = ["--train-size", "300", "--test-size", "100", "--device", "cpu"]


def test_default_folders_are_fresh_and_named_folders_are_not_overwritten(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    for expected in ("knn-digits", "knn-digits-2"):  # a second run does not replace the first
        code, out, _ = run(capsys, "classic", "knn", *SMALL)
        assert code == 0 and f"runs/classic/{expected}/metrics.json" in out
    first = tmp_path / "runs" / "classic" / "knn-digits"
    before = (first / "metrics.json").read_bytes()
    (first / "notes.txt").write_text("mine")

    import striate.classic.experiments as experiments

    def no_fit(*args, **kwargs):
        raise AssertionError("the folder must be checked before the fit")

    with monkeypatch.context() as m:
        m.setattr(experiments, "run_knn", no_fit)
        code, _, err = run(capsys, "classic", "knn", *SMALL, "--out", str(first))
    assert code == 2 and err.count("\n") == 1
    assert "already holds results: pass --overwrite to replace them" in err
    assert (first / "metrics.json").read_bytes() == before and (first / "notes.txt").exists()

    def failing_fit(*args, **kwargs):
        from striate.errors import StriateError

        raise StriateError("the fit failed")

    with monkeypatch.context() as m:  # a failed fit leaves the old results as they were
        m.setattr(experiments, "run_knn", failing_fit)
        code, _, err = run(capsys, "classic", "knn", *SMALL, "--out", str(first), "--overwrite")
    assert code == 2 and (first / "metrics.json").read_bytes() == before

    code, _, _ = run(
        capsys, "classic", "knn", *SMALL, "--k", "3", "--out", str(first), "--overwrite"
    )
    assert code == 0 and not (first / "notes.txt").exists()
    assert json.loads((first / "metrics.json").read_text())["k"] == 3


@pytest.mark.parametrize("command", ["nca", "linear"])
def test_every_classic_command_refuses_a_folder_with_results(capsys, tmp_path, command):
    (tmp_path / "metrics.json").write_text("{}")
    code, _, err = run(capsys, "classic", command, *SMALL, "--out", str(tmp_path))
    assert code == 2 and "--overwrite" in err
    assert (tmp_path / "metrics.json").read_text() == "{}"


def test_select_k_shows_progress_as_lines_without_a_terminal(capsys, tmp_path):
    code, out, err = run(
        capsys,
        "classic",
        "knn",
        "--select-k",
        "--ks",
        "1,3",
        "--folds",
        "3",
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
    )
    assert code == 0
    lines = err.splitlines()
    assert any(
        re.fullmatch(r"cross-validating k \(3 folds\): 1,437 queries in \d+\.\d s", x)
        for x in lines
    ), err
    assert any(
        re.fullmatch(r"\d+-NN on the test set: 360 queries in \d+\.\d s", x) for x in lines
    ), err
    assert "━" not in err  # no bar drawn into a log
