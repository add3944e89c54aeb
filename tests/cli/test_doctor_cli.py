"""`striate doctor` and `striate init-experiment` end to end (through striate.cli.main)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from striate.cli.main import main

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
    assert result["config"]["model"] == "convnet-small" and result["config"]["lr"] == 0.01
    assert {c["name"] for c in result["checks"]} >= {"initial_loss", "gradcheck", "dead_relus"}
    for name in ("doctor_activations.png", "doctor_curves.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG"


def test_doctor_exits_1_when_a_check_fails(tmp_path, capsys):
    code, text, _ = run(
        capsys, "doctor", "--lr", "100", "--checks", "learning_rate", "--out", str(tmp_path), *QUICK
    )
    assert code == 1
    assert "fail" in text and "too high" in text
    assert json.loads((tmp_path / "doctor.json").read_text())["passed"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checks", "vibes"], "unknown check 'vibes'"),
        (["--data", "no-such-dataset"], "no-such-dataset"),
        (["--run", "/no/such/run"], "not a training run folder"),
        (["--lr", "-1"], "lr"),
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
