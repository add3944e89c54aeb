"""striate assembly: help, generate → train → evaluate on tiny sizes, bad input."""

import json

import pytest
from typer.testing import CliRunner

from striate.cli.assembly import app
from striate.errors import ConfigError, DataError


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", ["generate", "train", "evaluate"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_generate_train_evaluate(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    tiny = ["--kits", 2, "--episodes", 2, "--pieces", 2, "--size", 32, "--rotations", 8]
    result = run("generate", "--out", data, *tiny)
    assert result.exit_code == 0, result.output
    assert "8 assembly steps" in result.output and (data / "disassembly.png").is_file()
    result = run(
        "train", data, "--out", out, "--steps", 2, "--width", 4, "--dim", 4, "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    assert "matching: train_loss" in result.output
    result = run(
        "evaluate", out, "--episodes", 2, "--novel-kits", 1, "--no-figures", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["results"]) == 6 and "novel kits" in result.output
    assert all(0 <= r["placement"] <= 1 for r in metrics["results"])
    result = run("generate", "--out", data, *tiny)  # the folder is kept
    assert result.exit_code != 0 and "--overwrite" in str(result.exception)


def test_bad_input(tmp_path):
    result = run("generate", "--out", tmp_path / "x", "--pieces", 9)
    assert isinstance(result.exception, ConfigError) and "pieces" in str(result.exception)
    result = run("train", tmp_path / "nothing", "--out", tmp_path / "y")
    assert isinstance(result.exception, DataError) and "assembly generate" in str(result.exception)
    result = run("evaluate", tmp_path / "nothing")
    assert isinstance(result.exception, DataError) and "assembly train" in str(result.exception)
