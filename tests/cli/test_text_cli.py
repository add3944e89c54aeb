"""`striate text train|sample|eval` end to end on the first 20,000 characters of tiny-shakespeare
(a tiny LSTM, a few steps), the command's defaults against TextConfig's, and the bad inputs, each
one line."""

from __future__ import annotations

import json
import re

import pytest
import typer
from typer.testing import CliRunner

from striate.cli.text import app as text_app
from striate.errors import DataError, InputError, StriateError
from striate.sequence.cache import GRID
from striate.sequence.run import evaluate_language_model, load_language_model

TINY = ["--embed", 16, "--hidden", 32, "--layers", 1, "--batch-size", 8, "--length", 16]
TINY += ["--steps", 12, "--warmup", 2, "--lr", 1e-2, "--min-lr", 1e-3, "--device", "cpu"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(text_app, name="text")
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["text", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "shakespeare.txt"
    path.write_text((shared_data / "text" / "tinyshakespeare.txt").read_text()[:20_000])
    return path


@pytest.fixture(scope="module")
def trained(app, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lstm"
    result = run(app, "train", "--corpus", corpus, *TINY, "--out", out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_train_prints_the_scores_and_writes_the_run(trained):
    out, printed = trained
    summary = json.loads((out / "eval.json").read_text())
    for split in ("val", "test"):
        m = summary[split]
        line = (
            f"{split}: loss {m['loss']:.4f}, perplexity {m['perplexity']:.3f}, bits per "
            f"character {m['bits_per_token']:.4f}"
        )
        assert line in printed
    assert f"model: {out / 'model'}" in printed and f"report: {out / 'report.html'}" in printed
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["steps"] == 12 and config["epochs"] is None and config["clip"] == 1.0


def test_sample_continues_the_prompt_as_the_api_does(app, trained):
    out, _ = trained
    result = run(app, "sample", out, "--prompt", "ROMEO:", "--length", 60, "--seed", 3)
    assert result.exit_code == 0, repr(result.exception)
    expected = load_language_model(out).sample("ROMEO:", 60, temperature=0.8, seed=3)
    assert result.output == expected + "\n"
    again = run(app, "sample", out, "--prompt", "ROMEO:", "--length", 60, "--seed", 3)
    assert again.output == result.output
    greedy = run(app, "sample", out, "--prompt", "ROMEO:", "--length", 30, "--temperature", 0)
    top1 = run(app, "sample", out, "--prompt", "ROMEO:", "--length", 30, "--top-k", 1)
    assert greedy.output == top1.output and greedy.output.startswith("ROMEO:")


def test_eval_prints_the_table_of_the_run_s_numbers(app, trained):
    out, _ = trained
    summary = json.loads((out / "eval.json").read_text())
    result = run(app, "eval", out, "--split", "val", "--device", "cpu")
    assert result.exit_code == 0, repr(result.exception)
    lines = result.output.splitlines()  # after the progress lines (stderr, mixed in here)
    lines = lines[next(i for i, line in enumerate(lines) if line.startswith("split")) :]
    assert lines[0].split() == ["split", "loss", "perplexity", "bits", "per", "character"]
    m = summary["val"]
    assert lines[1].split() == [
        "val", f"{m['loss']:.4f}", f"{m['perplexity']:.3f}", f"{m['bits_per_token']:.4f}"
    ]  # fmt: skip
    cached = run(app, "eval", out, "--cache", "--device", "cpu")
    assert cached.exit_code == 0, repr(cached.exception)
    chosen = re.search(r"neural cache: theta (\S+), lambda (\S+), window (\d+)", cached.output)
    expected = evaluate_language_model(out, "test", cache=True, device="cpu", progress=False)
    assert chosen and float(chosen[1]) == expected["cache_theta"] in GRID["thetas"]
    assert float(chosen[2]) == expected["cache_lambda"]
    assert int(chosen[3]) == expected["cache_window"]
    without, with_cache = cached.output.splitlines()[-1].split()[1:]
    assert without == f"{expected['plain_perplexity']:.3f}"
    assert with_cache == f"{expected['cache_perplexity']:.3f}"


def _error(result, kind: type[StriateError]) -> str:
    assert result.exit_code != 0
    assert isinstance(result.exception, kind), repr(result.exception)
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line(app, corpus, trained, tmp_path):
    out, _ = trained
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("\n\n")
    binary.write_bytes(bytes(range(256)) * 40)
    assert "empty" in _error(run(app, "train", "--corpus", empty, *TINY), DataError)
    assert "binary" in _error(run(app, "train", "--corpus", binary, *TINY), DataError)
    longer = [*TINY, "--length", 30_000, "--out", tmp_path / "r"]
    assert "too few" in _error(run(app, "train", "--corpus", corpus, *longer), DataError)
    assert not (tmp_path / "r").exists()
    outside = _error(run(app, "sample", out, "--prompt", "Zoë"), InputError)
    assert "outside the vocabulary" in outside and "'ë'" in outside
    assert "no run folder" in _error(run(app, "sample", tmp_path / "nowhere"), InputError)
    assert "no run folder" in _error(run(app, "eval", tmp_path / "nowhere"), InputError)
    assert "split must be one of" in _error(run(app, "eval", out, "--split", "train"), StriateError)


def test_the_command_s_defaults_are_the_config_s():
    import inspect

    from striate.cli.text import train
    from striate.sequence.run import TextConfig

    config = TextConfig()
    params = inspect.signature(train).parameters
    for name, p in params.items():
        if name in TextConfig.__dataclass_fields__ and name not in ("model_options",):
            assert p.default == getattr(config, name), name
    assert {"corpus", "level", "model", "length", "steps", "clip"} <= set(params)
