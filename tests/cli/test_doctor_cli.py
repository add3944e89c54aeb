"""`striate doctor` and `striate init-experiment` end to end (through striate.cli.main)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from striate.cli.main import main
from tests.train.doctor.helpers import assert_lr_verdict_follows_its_numbers

QUICK = ["--max-samples", "400", "--seed", "0", "--device", "cpu"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_doctor_on_the_default_convnet_passes_and_writes_results(tmp_path, capsys):
    out = tmp_path / "doc"
    code, text, _ = run(
        capsys,
        "doctor",
        "--lr",
        "0.01",
        "--checks",
        "initial_loss,regularization,gradcheck,activations,learning_rate",
        "--out",
        str(out),
        *QUICK,
    )
    assert code == 0, text
    assert "initial_loss" in text and "0 failed" in text
    result = json.loads((out / "doctor.json").read_text())
    assert result["passed"] is True
    assert result["config"]["model"] in ("convnet-small", "convnet_small")
    assert result["config"]["lr"] == 0.01
    assert {c["name"] for c in result["checks"]} >= {"initial_loss", "gradcheck", "dead_relus"}
    for name in ("doctor_activations.png", "doctor_curves.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"


def test_the_checks_help_names_every_registered_check(capsys):
    from striate.train.doctor import DOCTOR_CHECKS
    from striate.train.doctor.checks.registry import groups

    code, text, _ = run(capsys, "doctor", "--help")
    assert code == 0
    words = set(
        text.replace(",", " ").replace(";", " ").replace("(", " ").replace(")", " ").split()
    )
    assert set(DOCTOR_CHECKS.names()) <= words
    assert set(groups()) <= words


def test_doctor_exits_1_when_a_check_fails(tmp_path, capsys):
    code, text, _ = run(
        capsys, "doctor", "--lr", "100", "--checks", "learning_rate", "--out", str(tmp_path), *QUICK
    )
    assert code == 1 and "1 failed" in text
    result = json.loads((tmp_path / "doctor.json").read_text())
    assert result["passed"] is False and "too high" in result["checks"][0]["advice"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checks", "vibes"], "got 'vibes'"),
        (["--data", "no-such-dataset"], "no-such-dataset"),
        (["--run", "/no/such/run"], "not a training run folder"),
        (["--lr", "-1"], "lr"),
        (["--human-error", "0.5%"], "give its run folder with --run"),
        (["--human-error", "5"], "write 5%"),
        (["--human-error", "half"], "a percentage (0.5%)"),
        (["--dev-data", "digits"], "give --human-error too"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    code, _, err = run(capsys, "doctor", "--out", str(tmp_path), *args)
    assert code == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_doctor_on_a_run_folder_adds_a_doctor_section_to_its_report(tmp_path, capsys):
    folder = tmp_path / "run"
    code = main(
        ["train", "--epochs", "2", "--train-size", "300", "--test-size", "100"]
        + ["--out", str(folder), "--no-progress", "--device", "cpu", "--precision", "fp32"]
    )
    assert code == 0
    capsys.readouterr()
    for _ in range(2):  # a second run replaces the section instead of adding another
        code, text, _ = run(
            capsys,
            "doctor",
            "--run",
            str(folder),
            "--checks",
            "initial_loss,fit_gap,activations",
            "--out",
            str(folder),
            *QUICK,
        )
        assert code == 0, text
    result = json.loads((folder / "doctor.json").read_text())
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["initial_loss"]["status"] == "skip"  # trained weights
    assert "after 2 epochs of the run" in checks["fit_gap"]["detail"]  # read from metrics.csv
    page = (folder / "report.html").read_text()
    assert page.count("<h2>Doctor</h2>") == 1
    assert "fit_gap" in page and page.rstrip().endswith("</html>")
    # resuming (here a finished run) rewrites the report; the doctor's section stays
    code = main(["train", "--resume", str(folder), "--no-progress"])
    page = (folder / "report.html").read_text()
    assert code == 0 and page.count("<h2>Doctor</h2>") == 1 and "fit_gap" in page


def test_init_experiment_writes_plots_and_a_table(tmp_path, capsys):
    code, text, _ = run(
        capsys,
        "init-experiment",
        "--nonlinearity",
        "relu",
        "--layers",
        "4",
        "--units",
        "100",
        "--samples",
        "200",
        "--out",
        str(tmp_path),
    )
    assert code == 0, text
    assert "layer std" in text and "xavier" in text
    for name in ("init_experiment_relu.png", "init_experiment_relu_hist.png"):
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG"
    data = json.loads((tmp_path / "init_experiment_relu.json").read_text())
    assert set(data["stats"]) == {"0.01", "1.0", "xavier", "he"} and data["layers"] == 4


def test_init_experiment_rejects_an_unknown_nonlinearity(tmp_path, capsys):
    code, _, err = run(capsys, "init-experiment", "--nonlinearity", "swish", "--out", str(tmp_path))
    assert code == 2 and "nonlinearity" in err


# --------------------------------------------------------------------------- verdicts agree with
#                                                                             their numbers


def _checks(folder) -> dict:
    result = json.loads((folder / "doctor.json").read_text())
    return result, {c["name"]: c for c in result["checks"]}


def test_the_default_settings_do_not_call_the_lr_too_high(tmp_path, capsys):
    # `striate doctor` alone is `striate train`'s defaults (SGD, Nesterov, lr 0.1, 1cycle), which
    # reach 98.6 % test accuracy: the update-ratio check used to warn "lr too high"
    code, text, _ = run(
        capsys, "doctor", "--checks", "update_ratio,learning_rate", "--out", str(tmp_path), *QUICK
    )
    assert code == 0, text
    result, checks = _checks(tmp_path)
    assert checks["update_ratio"]["status"] == "pass", checks["update_ratio"]
    assert checks["learning_rate"]["status"] == "pass", checks["learning_rate"]
    assert "lr 0.01" in checks["update_ratio"]["detail"]  # where 1cycle starts: lr/10
    assert result["settings"]["schedule"] == "onecycle"
    assert "too high" not in text and "0 warned" in text


def test_the_mlp_at_lr_0_5_prints_what_its_verdict_rests_on(tmp_path, capsys):
    # the command: it printed "fail: the loss explodes" next to "1.6 → 0.235"
    code, text, _ = run(
        capsys,
        "doctor",
        *("--model", "mlp", "--lr", "0.5", "--checks", "learning_rate,update_ratio"),
        *("--out", str(tmp_path), "--device", "cpu", "--seed", "0"),
    )
    result, checks = _checks(tmp_path)
    check = checks["learning_rate"]
    from striate.train.doctor import Check

    assert_lr_verdict_follows_its_numbers(
        Check(check["name"], check["status"], check["value"], check["advice"], check["detail"]),
        result["curves"]["learning_rate"],
    )
    assert code in (0, 1) and "learning_rate" in text


# --------------------------------------------------------------------------- error analysis


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A digits run at fp32 that converges (12 epochs of the defaults: about 99 % test accuracy,
    training loss near 0)."""
    folder = tmp_path_factory.mktemp("doctor") / "run"
    code = main(
        ["train", "--epochs", "12", "--out", str(folder), "--no-progress"]
        + ["--device", "cpu", "--precision", "fp32"]
    )
    assert code == 0
    return folder


def test_a_converged_run_is_not_a_flat_loss(small_run, tmp_path, capsys):
    # the case: `striate doctor --run` on a converged run (99.4 % test accuracy, training
    # loss near 0) said "the loss is flat: raise the lr 10×"
    out = tmp_path / "doc"
    code, text, _ = run(
        capsys,
        *("doctor", "--run", str(small_run), "--checks", "learning_rate,update_ratio"),
        *("--out", str(out), "--device", "cpu"),
    )
    assert code == 0, text
    _, checks = _checks(out)
    check = checks["learning_rate"]
    assert check["status"] == "pass" and "converged" in check["advice"], check
    assert "too low" not in check["advice"] and "raise" not in check["advice"]
    assert checks["update_ratio"]["status"] == "pass", checks["update_ratio"]


def _last_val_acc(folder) -> float:
    import csv

    with open(folder / "metrics.csv", newline="") as f:
        return float(list(csv.DictReader(f))[-1]["val_acc"])


def test_error_analysis_of_a_run_against_human_level(small_run, tmp_path, capsys):
    out = tmp_path / "doc"
    code, text, _ = run(
        capsys,
        *("doctor", "--run", str(small_run), "--human-error", "0.5%", "--checks", "fit_gap"),
        *("--out", str(out), "--device", "cpu"),
    )
    assert code == 0, text
    result, checks = _checks(out)
    analysis = result["error_analysis"]
    errors = analysis["errors"]
    assert errors["human"] == pytest.approx(0.005)
    # fp32 evaluation: the test error is the one the run reported, the train-dev error is the
    # last epoch's validation error (the validation split is held out of the training data)
    model_json = json.loads((small_run / "model" / "model.json").read_text())
    assert errors["test"] == pytest.approx(1 - model_json["metrics"]["test_acc"], abs=1e-9)
    assert errors["train_dev"] == pytest.approx(1 - _last_val_acc(small_run), abs=1e-9)
    config = json.loads((small_run / "config.json").read_text())["resolved"]
    assert analysis["sizes"] == {
        "train": config["train_images"],
        "train_dev": config["val_images"],
        "test": config["test_images"],
    }
    gaps = {g["name"]: g for g in analysis["gaps"]}
    assert set(gaps) == {"avoidable bias", "variance", "data mismatch + overfitting to dev"}
    assert gaps["avoidable bias"]["value"] == pytest.approx(errors["train"] - 0.005)
    assert gaps["variance"]["value"] == pytest.approx(errors["train_dev"] - errors["train"])
    assert any("without a dev set" in n for n in analysis["notes"])
    assert "error_analysis" in checks and "error analysis (human-level error 0.50%)" in text
    assert "cannot be told apart without a dev set" in text
    # "0.005" is the same human level as "0.5%"
    again = tmp_path / "again"
    code, _, _ = run(
        capsys,
        *("doctor", "--run", str(small_run), "--human-error", "0.005", "--checks", "fit_gap"),
        *("--out", str(again), "--device", "cpu"),
    )
    assert code == 0 and _checks(again)[0]["error_analysis"] == analysis


def test_error_analysis_with_a_dev_split_has_four_gaps(tmp_path, capsys):
    # a folder with train/val/test: the val folder is the dev set (--dev-split val), the run's
    # own validation split (held out of train/) the train-dev set
    from striate.data import load_dataset

    digits = load_dataset("digits", "all")
    root = tmp_path / "data"
    order = np.random.default_rng(0).permutation(len(digits))
    parts = {"train": order[:900], "val": order[900:1200], "test": order[1200:1500]}
    for split, idx in parts.items():
        for i in idx:
            image, label = digits[int(i)]
            folder = root / split / digits.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[0].numpy()).save(folder / f"{int(i)}.png")
    run_folder = tmp_path / "run"
    assert (
        main(
            ["train", "--data", str(root), "--epochs", "3", "--out", str(run_folder)]
            + ["--no-progress", "--device", "cpu", "--precision", "fp32"]
        )
        == 0
    )
    capsys.readouterr()
    code, text, _ = run(
        capsys,
        *("doctor", "--run", str(run_folder), "--human-error", "1%", "--dev-split", "val"),
        *("--checks", "fit_gap", "--out", str(run_folder), "--device", "cpu"),
    )
    assert code == 0, text
    analysis = _checks(run_folder)[0]["error_analysis"]
    assert [g["name"] for g in analysis["gaps"]] == [
        "avoidable bias",
        "variance",
        "data mismatch",
        "overfitting to dev",
    ]
    assert analysis["sizes"]["dev"] == 300 and analysis["sizes"]["test"] == 300
    errors = analysis["errors"]
    assert math.isclose(
        sum(g["value"] for g in analysis["gaps"]), errors["test"] - errors["human"], abs_tol=1e-9
    )
    assert analysis["notes"] == []
    page = (run_folder / "report.html").read_text()
    assert "error_analysis" in page  # the report's Doctor section has the verdict


def test_a_dev_set_must_not_be_the_runs_test_split(small_run, tmp_path, capsys):
    code, _, err = run(
        capsys,
        *("doctor", "--run", str(small_run), "--human-error", "1%", "--dev-split", "test"),
        *("--out", str(tmp_path), "--device", "cpu"),
    )
    assert code == 2 and "must differ from the run's own test split" in err


# --------------------------------------------------------------------------- output folders


def test_an_existing_results_folder_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "doc"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    args = ["doctor", "--checks", "initial_loss", "--out", str(out), *QUICK]
    code, _, err = run(capsys, *args)
    assert code == 2 and "--overwrite" in err and (out / "mine.txt").read_text() == "keep me"
    assert not (out / "doctor.json").exists()
    code, _, _ = run(capsys, *args, "--overwrite")
    assert code == 0 and (out / "doctor.json").is_file() and not (out / "mine.txt").exists()


def test_the_default_folder_is_a_fresh_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, _, _ = run(capsys, "doctor", "--checks", "initial_loss", *QUICK)
        assert code == 0
    made = sorted(p.name for p in (tmp_path / "runs" / "doctor").iterdir())
    assert len(made) == 2 and made[1] == made[0] + "-2"
    assert all((tmp_path / "runs" / "doctor" / m / "doctor.json").is_file() for m in made)


def test_another_runs_folder_is_refused_as_out(small_run, tmp_path, capsys):
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "config.json").write_text("{}")
    code, _, err = run(capsys, "doctor", "--run", str(small_run), "--out", str(other), *QUICK)
    assert code == 2 and "another training run's folder" in err
    assert sorted(p.name for p in other.iterdir()) == ["config.json"]
