"""striate rl: help, a tabular agent trained and evaluated from the command line, bad input."""

import pytest
from typer.testing import CliRunner

from striate.cli.rl import app
from striate.errors import ConfigError, InputError


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("command", ["train", "eval", "envs"])
def test_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_train_then_eval_with_a_gif(tmp_path):
    out = tmp_path / "q"
    settings = ["--steps", 3000, "--eval-every", 1500, "--eval-episodes", 4, "-o", "alpha=0.5"]
    result = run("train", "q-learning", "--env", "striate/GridWorld-v0", *settings, "--out", out)
    assert result.exit_code == 0, result.output
    assert "3,000 steps" in result.output and (out / "learning_curve.png").is_file()
    gif = tmp_path / "play.gif"
    result = run("eval", out, "--episodes", 3, "--video", gif)
    assert result.exit_code == 0, result.output
    assert "3 episodes: return" in result.output and gif.is_file()
    result = run("eval", out, "--video", gif)  # the GIF is kept
    assert isinstance(result.exception, InputError) and "--overwrite" in str(result.exception)


def test_bad_input(tmp_path):
    result = run("train")
    assert isinstance(result.exception, ConfigError) and "ALGO" in str(result.exception)
    result = run("train", "dqn", "--env", "CartPole-v7", "--out", tmp_path / "x")
    assert isinstance(result.exception, InputError) and "CartPole-v1" in str(result.exception)
    result = run("train", "dqn", "--env", "Pendulum-v1", "--out", tmp_path / "y")
    assert isinstance(result.exception, InputError) and "action space" in str(result.exception)


def test_value_iteration_draws_the_policy(tmp_path):
    out = tmp_path / "vi"
    result = run("train", "value-iteration", "--env", "FrozenLake-v1", "-o", "gamma=0.99",
                 "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "iterations, Bellman residual" in result.output
    assert (out / "policy_value.png").is_file() and (out / "eval.json").is_file()
    result = run("train", "value-iteration", "--env", "CartPole-v1", "--out", tmp_path / "c")
    assert isinstance(result.exception, InputError) and "finite set" in str(result.exception)
