"""striate grasp: help, generate → train → plan on tiny sizes, bad input."""

import json

import pytest
from typer.testing import CliRunner

from striate.cli.grasp import app
from striate.errors import DataError, InputError
from striate.outputs import OutputExists


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", ["generate", "train", "plan"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output and "--out" in result.output


def test_generate_train_plan(tmp_path):
    data, model, plans = tmp_path / "data", tmp_path / "m", tmp_path / "p"
    result = run("generate", "--scenes", 40, "--pairs", 64, "--samples", 8, "--out", data)
    assert result.exit_code == 0, result.output
    assert "40 scenes" in result.output and (data / "examples.png").is_file()
    summary = json.loads((data / "summary.json").read_text())
    assert summary["positives"] * 2 == summary["grasps"]
    result = run("train", data, "--epochs", 1, "--out", model)
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and (model / "gqcnn.safetensors").is_file()
    assert (model / "crops.png").is_file()
    metrics = json.loads((model / "metrics.json").read_text())
    assert {"acc", "precision", "recall", "majority_acc"} <= set(metrics)
    result = run("plan", model, "--scenes", 3, "--candidates", 12, "--cem-iterations", 1,
                 "--samples", 8, "--out", plans)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "CEM + GQ-CNN" in result.output and (plans / "plans.png").is_file()
    results = json.loads((plans / "results.json").read_text())["results"]
    assert set(results) >= {"random", "CEM + GQ-CNN", "oracle (true robustness)"}
    result = run("generate", "--scenes", 2, "--out", data)  # the folder is kept
    assert isinstance(result.exception, OutputExists) and "--overwrite" in str(result.exception)


def test_bad_input(tmp_path):
    result = run("generate", "--scenes", 0, "--out", tmp_path / "x")
    assert isinstance(result.exception, InputError) and "--scenes" in str(result.exception)
    result = run("train", tmp_path / "missing", "--out", tmp_path / "y")
    assert isinstance(result.exception, DataError) and "grasp generate" in str(result.exception)
    result = run("plan", tmp_path, "--out", tmp_path / "z")
    assert isinstance(result.exception, DataError) and "grasp train" in str(result.exception)
    result = run("train", tmp_path, "--lr", -1)
    assert isinstance(result.exception, InputError) and "--lr" in str(result.exception)
