"""striate sgds correlation|persistence: help, tiny runs on real MNIST that write their files,
refusing an occupied folder, and one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from striate.cli.main import main
from striate.cli.sgds import app
from striate.errors import ConfigError, StriateError
from striate.outputs import OutputExists


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_help():
    result = run("--help")
    assert result.exit_code == 0 and "correlation" in result.output
    assert "persistence" in result.output and "SGD-S" in result.output
    for command in ("correlation", "persistence"):
        result = run(command, "--help")
        out = " ".join(result.output.split())
        assert result.exit_code == 0 and "--train-size" in out and "--overwrite" in out
        assert "--no-progress" in out and f"runs/sgds/{command}-" in out
    assert "[default: 1]" in " ".join(run("correlation", "--help").output.split())
    assert "the post: 5). [default: 5]" in " ".join(run("persistence", "--help").output.split())


def test_correlation_writes_its_results(shared_data, tmp_path):
    out = tmp_path / "c"
    result = run("correlation", "--root", shared_data, "--train-size", 150, "--out", out,
                 "--no-progress", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Pearson r(loss, gradient norm) = " in result.output and "(post: 0.83" in result.output
    summary = json.loads((out / "correlation.json").read_text())
    assert f"= {summary['r']:.3f}" in result.output and summary["samples"] == 150
    assert {p.name for p in out.iterdir()} == {"correlation.json", "correlation.png",
                                               "samples.csv"}  # fmt: skip
    assert f"wrote {out / 'correlation.png'}" in result.output
    # an occupied folder is refused before any training, then replaced with --overwrite
    result = run("correlation", "--root", shared_data, "--out", out)
    assert isinstance(result.exception, OutputExists)
    result = run("correlation", "--root", shared_data, "--train-size", 150, "--out", out,
                 "--no-progress", "--device", "cpu", "--overwrite", "--no-samples")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"correlation.json", "correlation.png"}


def test_persistence_prints_the_table(shared_data, tmp_path):
    out = tmp_path / "p"
    result = run("persistence", "--root", shared_data, "--train-size", 150, "--epochs", 2,
                 "--out", out, "--no-progress", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "epochs 1-2" in result.output and "note: after the first" in result.output
    summary = json.loads((out / "persistence.json").read_text())
    for mode in ("shuffled", "not shuffled"):
        row = lines[lines.index(mode) + 1]
        share = summary["persistence"][mode]["epochs 1-2"]["9"]
        assert row.startswith("  top decile (9)") and f"{100 * share:.1f} %" in row
        assert row.endswith("≈ 30 / 60 / 85 %")
        assert lines[lines.index(mode) + 2].endswith("≈ 30 / 50 / 70 %")
    assert {p.name for p in out.iterdir()} == {"persistence.json", "persistence.png"}


def test_errors_are_one_line(shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STRIATE_OFFLINE", "1")  # missing data: no download attempt

    def error(*args):
        code = main(["sgds", *[str(a) for a in args], "--no-progress", "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
        return err

    result = run("correlation", "--root", tmp_path, "--out", tmp_path / "o")
    assert isinstance(result.exception, StriateError)
    assert "were not found in" in error("correlation", "--root", tmp_path,
                                              "--out", tmp_path / "o")  # fmt: skip
    assert "epochs" in error("correlation", "--epochs", 0, "--out", tmp_path / "o")
    assert "at least 2" in error("persistence", "--epochs", 1, "--out", tmp_path / "o")
    assert "lr" in error("persistence", "--lr", -1, "--out", tmp_path / "o")
    assert "batch norm" in error(
        "correlation",
        "--root",
        shared_data,
        "--model",
        "convnet_small",
        "--train-size",
        100,
        "--out",
        tmp_path / "b",
    )
    result = run("correlation", "--model", "nosuchnet", "--out", tmp_path / "o")
    assert isinstance(result.exception, ConfigError)
    assert not (tmp_path / "o").exists()
