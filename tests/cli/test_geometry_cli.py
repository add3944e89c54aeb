"""striate geometry: help, each command on a tiny budget writing its files, bad input."""

import json

import pytest
from typer.testing import CliRunner

from striate.cli.geometry import app
from striate.errors import InputError


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", ["deform", "classify", "primitives"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_deform_writes_figure_and_numbers(tmp_path):
    result = run("deform", tmp_path, "--steps", 30, "--subdivisions", 1, "--points", 300)
    assert result.exit_code == 0, result.output
    facts = json.loads((tmp_path / "deform.json").read_text())
    assert facts["vertices"] == 42 and len(facts["chamfer"]) == 31
    assert facts["chamfer_after"] < facts["chamfer_before"]
    assert (tmp_path / "deform.png").stat().st_size > 1000
    result = run("deform", tmp_path, "--steps", 1)  # the files are kept
    assert isinstance(result.exception, InputError) and "--overwrite" in str(result.exception)


def test_classify_writes_accuracy_and_confusion(tmp_path):
    args = ["--per-class", 8, "--test-per-class", 4, "--points", 32, "--steps", 5]
    result = run("classify", tmp_path, *args)
    assert result.exit_code == 0, result.output
    facts = json.loads((tmp_path / "classify.json").read_text())
    confusion = facts["confusion"]
    assert len(confusion) == 5 and all(sum(row) == 4 for row in confusion)
    diagonal = sum(confusion[k][k] for k in range(5))
    assert facts["test_accuracy"] == pytest.approx(diagonal / 20)


def test_bad_input(tmp_path):
    result = run("deform", tmp_path, "--target", "torus")
    assert isinstance(result.exception, InputError) and "box, ellipsoid, cylinder" in str(
        result.exception
    )
