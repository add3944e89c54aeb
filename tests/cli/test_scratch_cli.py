"""striate scratch train: help, a short run on real MNIST, and one-line errors."""

from typer.testing import CliRunner

from striate.cli.main import main
from striate.cli.scratch import app
from striate.errors import ConfigError, DataError


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_help():
    result = run("train", "--help")
    assert result.exit_code == 0 and "--optimizer" in result.output and "--limit" in result.output
    out = " ".join(result.output.split())
    assert "--no-normalize" in out and "0.1307, 0.3081" in out and "--init" in out
    assert "Passes over the training set. [default: 10]" in out


def test_defaults_are_the_post_recipe(shared_data):
    result = run("train", "--root", shared_data, "--limit", 200, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "784-100-10 ReLU (torch init), sgd lr 0.01, batch 64; inputs normalised" in result.output


def test_no_normalize_and_he_init(shared_data):
    result = run("train", "--root", shared_data, "--limit", 200, "--epochs", 1,
                 "--no-normalize", "--init", "he")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(he init)" in result.output and "inputs scaled to 0-1 only" in result.output


def test_short_run_prints_accuracy_per_epoch(shared_data):
    result = run("train", "--root", shared_data, "--limit", 300, "--epochs", 2,
                 "--optimizer", "momentum", "--schedule", "cosine")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "300 training images, 10,000 test images; 784-100-10 ReLU" in result.output
    assert "epoch 1/2: loss" in result.output and "epoch 2/2: loss" in result.output
    assert "test accuracy" in result.output.splitlines()[-1]


def test_errors(tmp_path, capsys):
    result = run("train", "--root", tmp_path)
    assert isinstance(result.exception, DataError)
    assert "train-images-idx3-ubyte" in str(result.exception)
    result = run("train", "--root", tmp_path, "--optimizer", "adamm")
    assert isinstance(result.exception, ConfigError) and "'adam'" in str(result.exception)
    result = run("train", "--root", tmp_path, "--init", "xavier")
    assert isinstance(result.exception, ConfigError) and "one of torch, he" in str(result.exception)
    assert main(["scratch", "train", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: mnist train: ") and len(err.strip().splitlines()) == 1
