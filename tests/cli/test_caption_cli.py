"""`striate caption train|eval|predict` end to end on a tiny run, a Ctrl-C'd run resumed to the
same model, and the bad inputs, each one line."""

import inspect
import json

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from striate.cli.caption import app as caption_app
from striate.errors import ConfigError, DataError, StriateError
from striate.sequence.captioning.run import CaptionConfig, load_captioner, predict_caption
from striate.sequence.captioning.scenes import make_scenes


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(caption_app, name="caption")
    return app


def run(app, *args):
    return CliRunner().invoke(app, ["caption", *[str(a) for a in args]])


TINY = ["--train-size", 24, "--val-size", 8, "--test-size", 8, "--epochs", 1, "--batch-size", 8]
TINY += ["--hidden", 32, "--features", 16, "--beam", 2, "--device", "cpu"]
TINY += ["--hold-out", "red triangle"]  # one of the 8 test scenes (seed 2) shows one


@pytest.fixture(scope="module")
def trained(app, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cap"
    result = run(app, "train", *TINY, "--out", out)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out, result.output


def test_help_lists_the_commands_and_options(app):
    for args, words in (
        ([], ("train", "eval", "predict")),
        (["train"], ("--epochs", "--regularizer", "--beam", "--resume")),
        (["eval"], ("--beam", "--length-norm")),
        (["predict"], ("--attention", "IMAGE...")),
    ):
        result = run(app, *args, "--help")
        assert result.exit_code == 0
        assert all(w in result.output for w in words), (args, result.output)


def test_train_eval_predict_round_trip(app, trained, tmp_path):
    out, printed = trained
    assert "test (greedy): BLEU-1 " in printed and "test (beam 2): BLEU-1 " in printed
    for name in ("attention.png", "samples.png", "report.html", "eval.json", "config.json"):
        assert (out / name).stat().st_size > 500, name
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["format"] == "striate-model/1" and model["task"] == "captioning"
    assert model["architecture"]["arguments"]["hidden"] == 32
    assert "<start>" in model["vocabulary"]["tokens"]
    summary = json.loads((out / "eval.json").read_text())
    assert summary["beam"]["beam"] == 2 and set(summary["greedy"]) >= {"bleu1", "bleu4"}
    assert summary["held_out"]["pairs"] == ["red triangle"] and summary["held_out"]["images"] == 1
    assert "held-out pairs, 1 test scenes (greedy): BLEU-1" in printed
    assert "held_out_bleu4" in (out / "report.html").read_text()
    result = run(app, "eval", out, "--held-out", "--device", "cpu")
    bleu1 = summary["held_out"]["greedy"]["bleu1"]
    assert f"held-out pairs (greedy): BLEU-1 {bleu1:.4f}" in result.output, result.output
    # eval repeats the test numbers, greedy and beam
    for beam, key in ((1, "greedy"), (2, "beam")):
        result = run(app, "eval", out, "--beam", beam, "--device", "cpu")
        assert result.exit_code == 0, result.output
        assert f"BLEU-1 {summary[key]['bleu1']:.4f}" in result.output, (beam, result.output)
    # predict: the caption the library gives, any image size, an attention figure
    images = make_scenes(2, seed=2).images
    for i, name in enumerate(("a.png", "b.png")):
        Image.fromarray(images[i].permute(1, 2, 0).numpy()).save(tmp_path / name)
    Image.fromarray(images[1].permute(1, 2, 0).numpy()[:50, :40]).save(tmp_path / "odd.png")
    result = run(app, "predict", out, tmp_path / "a.png", "--attention", tmp_path / "att.png")
    assert result.exit_code == 0, result.output + repr(result.exception)
    [(expected, _)] = predict_caption(load_captioner(out), images[:1])
    assert f"a.png: {expected}" in result.output
    assert (tmp_path / "att.png").stat().st_size > 1000
    result = run(
        app, "predict", out, tmp_path / "b.png", tmp_path / "odd.png", "--attention",
        tmp_path / "maps.png", "--beam", 2,
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert (tmp_path / "maps_b.png").is_file() and (tmp_path / "maps_odd.png").is_file()
    assert "odd.png: " in result.output


def _error(result, kind):
    assert isinstance(result.exception, kind), (result.output, repr(result.exception))
    message = str(result.exception)
    assert "\n" not in message
    return message


def test_bad_inputs_are_one_line(app, trained, tmp_path):
    out, _ = trained
    assert "not a run folder" in _error(run(app, "eval", tmp_path / "nowhere"), ConfigError)
    assert "no model at" in _error(run(app, "predict", tmp_path, tmp_path / "x.png"), StriateError)
    assert "cannot read" in _error(run(app, "predict", out, tmp_path / "x.png"), DataError)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image at all")
    for bad in ("empty.png", "notes.png"):
        message = _error(run(app, "predict", out, tmp_path / bad), DataError)
        assert bad in message
    taken = _error(run(app, "train", *TINY, "--out", out), ConfigError)
    assert "already holds results" in taken
    assert "epochs" in _error(
        run(app, "train", "--epochs", 0, "--out", tmp_path / "r"), ConfigError
    )
    assert "beam" in _error(run(app, "eval", out, "--beam", 0), ConfigError)
    assert "COLOUR SHAPE" in _error(
        run(app, "train", "--hold-out", "red", "--out", tmp_path / "r"), ConfigError
    )
    assert not (tmp_path / "r").exists()
    other = tmp_path / "classifier" / "model"
    other.mkdir(parents=True)
    info = {"format": "striate-model/1", "architecture": {"name": "convnet_small"}}
    (other / "model.json").write_text(json.dumps(info))
    assert "not a captioning run" in _error(
        run(app, "predict", other.parent, tmp_path / "a.png"), StriateError
    )


def test_a_run_stopped_by_ctrl_c_resumes_to_the_same_model(trained, tmp_path):
    from safetensors.torch import load_file

    from striate.sequence.captioning.run import train_captioner
    from tests.callbacks import CtrlCAt

    out, _ = trained
    settings = json.loads((out / "config.json").read_text())["config"]
    cut = train_captioner(out=tmp_path / "cut", callbacks=[CtrlCAt(2)], progress=False, **settings)
    assert cut.trainer.interrupted and cut.trainer.step == 2 and not cut.test
    with pytest.raises(StriateError, match="--resume"):
        load_captioner(tmp_path / "cut")
    resumed = train_captioner(out=tmp_path / "cut", resume=True, progress=False)
    assert resumed.trainer.step == 3
    a = load_file(str(out / "model" / "weights.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.test == pytest.approx(json.loads((out / "eval.json").read_text())["greedy"])


def test_the_command_s_defaults_are_the_config_s():
    from striate.cli.caption import train

    config = CaptionConfig()
    checked = 0
    for name, p in inspect.signature(train).parameters.items():
        if name in CaptionConfig.__dataclass_fields__:
            assert p.default == getattr(config, name), name
            checked += 1
    assert checked >= 12
