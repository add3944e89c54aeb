"""`striate generate train|sample|eval`: help, one tiny VAE round trip on real MNIST whose printed
numbers are the library's, and the bad inputs, each one line."""

from __future__ import annotations

import re

import matplotlib.image
import pytest
import typer
from typer.testing import CliRunner

from striate.cli.generate import app as generate_app
from striate.errors import ConfigError, InputError
from striate.generative.jobs import evaluate_generative, sample_generative


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(generate_app, name="generate")
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["generate", *[str(a) for a in args]])


@pytest.mark.parametrize("command", ["train", "sample", "eval"])
def test_help(app, command):
    result = run(app, command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output and "--device" in result.output


def test_train_sample_eval_round_trip(app, shared_data, tmp_path):
    out = tmp_path / "vae"
    tiny = ["--train-size", 64, "--test-size", 16, "--epochs", 1, "--hidden", 8, "--latent", 2]
    tiny += ["--precision", "fp32", "--device", "cpu", "--root", shared_data]
    result = run(app, "train", "vae", *tiny, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "model" / "model.json").is_file() and "test: loss" in result.output

    result = run(app, "sample", out, "--count", 6, "--seed", 3, "--out", tmp_path / "s.png")
    assert result.exit_code == 0, result.output
    # 6 tiles: round(√6) = 2 columns, 3 rows, 28 px each with 2-pixel borders
    assert matplotlib.image.imread(tmp_path / "s.png").shape[:2] == (2 + 3 * 30, 2 + 2 * 30)
    assert sample_generative(out, 6, seed=3).shape == (6, 1, 28, 28)

    # the 2-D manifold: --count 9 gives a 3×3 grid, written to RUN/manifold-SEED.png by default
    result = run(app, "sample", out, "--show", "manifold", "--count", 9)
    assert result.exit_code == 0, result.output
    assert "9 manifold images" in result.output
    assert matplotlib.image.imread(out / "manifold-0.png").shape[:2] == (2 + 3 * 30, 2 + 3 * 30)

    result = run(app, "eval", out, "--k", 3, "--images", 10)
    assert result.exit_code == 0, result.output
    printed = dict(re.findall(r"^(\S+)\s+(-?[\d.]+)$", result.output, re.M))
    expected = evaluate_generative(out, k=3, images=10)
    assert set(printed) == set(expected)
    for name, value in expected.items():
        assert float(printed[name]) == pytest.approx(value, abs=1e-4)

    result = run(app, "sample", out, "--count", 0)
    assert isinstance(result.exception, InputError)
    assert "count must be a positive integer" in str(result.exception)
    result = run(app, "train", "--resume", out, "--latent", 4)
    assert isinstance(result.exception, ConfigError)
    assert "latent 4 does not match the saved run's 2" in str(result.exception)


def test_missing_model_and_missing_run(app, tmp_path):
    result = run(app, "train")
    assert isinstance(result.exception, ConfigError) and "MODEL" in str(result.exception)
    result = run(app, "eval", tmp_path / "nothing")
    assert isinstance(result.exception, InputError) and "no run folder" in str(result.exception)


def test_sample_show_on_a_dcgan(app, shared_data, tmp_path):
    out = tmp_path / "dcgan"
    tiny = ["--train-size", 64, "--test-size", 16, "--epochs", 1, "--width", 4, "--latent", 3]
    tiny += ["--batch-size", 32, "--precision", "fp32", "--device", "cpu", "--root", shared_data]
    result = run(app, "train", "dcgan", *tiny, "--out", out)
    assert result.exit_code == 0, result.output

    # a traversal: the 3 latents in rows of 9 steps
    result = run(app, "sample", out, "--show", "traversal", "--seed", 2)
    assert result.exit_code == 0, result.output
    assert "27 traversal images" in result.output
    assert matplotlib.image.imread(out / "traversal-2.png").shape[:2] == (2 + 3 * 30, 2 + 9 * 30)

    result = run(app, "sample", out, "--show", "manifold")
    assert isinstance(result.exception, InputError)
    assert "manifold needs a vae run with a 2-D latent" in str(result.exception)
    assert not (out / "manifold-0.png").exists()

    # an --out file the user has is kept unless --overwrite; only .png is written
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"not to lose")
    result = run(app, "sample", out, "--out", mine)
    assert isinstance(result.exception, InputError) and "pass --overwrite" in str(result.exception)
    assert mine.read_bytes() == b"not to lose"
    result = run(app, "sample", out, "--out", mine, "--overwrite", "--count", 4)
    assert result.exit_code == 0, result.output
    assert matplotlib.image.imread(mine).shape[:2] == (2 + 2 * 30, 2 + 2 * 30)
    result = run(app, "sample", out, "--out", tmp_path / "grid.jpg")
    assert isinstance(result.exception, InputError) and "name a .png" in str(result.exception)
