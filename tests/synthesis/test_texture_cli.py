"""`striate texture SOURCE`: both methods end to end on tiny images (the neural one through a
stand-in for the optimisation), --out and --overwrite, options of the other method refused."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from striate.cli.texture import texture
from striate.errors import ConfigError, DataError
from striate.synthesis.efros_leung import efros_leung
from striate.synthesis.images import photograph, read_image, save_image
from striate.synthesis.optimize import Optimized


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    app = typer.Typer()
    app.command()(texture)
    return app


@pytest.fixture
def source(tmp_path):
    return save_image(photograph("brick")[..., 100:124, 200:224], tmp_path / "brick.png")


def run(app, args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_efros_leung_writes_the_texture_it_computes(app, source, tmp_path):
    out = tmp_path / "t.png"
    args = [source, "--method", "efros-leung", "--size", 16, "--window", 5, "--source-size", 24]
    result = run(app, [*args, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"texture: {out}" in result.output
    expected = efros_leung(read_image(source, 24), 16, window=5, seed=0, progress=False)
    assert torch.equal(read_image(out), (expected * 255).round() / 255)


def test_an_existing_file_needs_overwrite(app, source, tmp_path):
    out = tmp_path / "t.png"
    out.write_bytes(b"earlier")
    args = [source, "--method", "efros-leung", "--size", 8, "--window", 3, "--out", out]
    result = run(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "pass --overwrite" in str(result.exception)
    assert out.read_bytes() == b"earlier"
    assert run(app, [*args, "--overwrite"]).exit_code == 0
    assert read_image(out).shape == (1, 3, 8, 8)


def test_the_default_output_is_a_fresh_file(app, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [source, "--method", "efros-leung", "--size", 8, "--window", 3]
    assert run(app, args).exit_code == 0
    assert run(app, [*args, "--seed", 1]).exit_code == 0
    folder = tmp_path / "runs" / "texture"
    assert sorted(p.name for p in folder.iterdir()) == [
        "brick-efros-leung-2.png",
        "brick-efros-leung.png",
    ]


def test_neural_passes_its_options_and_writes_snapshots(app, source, tmp_path, monkeypatch):
    out, weights = tmp_path / "n.png", tmp_path / "vgg.safetensors"
    calls = {}
    snapshot, final = torch.full((1, 3, 12, 12), 0.2), torch.full((1, 3, 12, 12), 0.6)

    def fake(image, size, **kwargs):
        calls.update(kwargs, image=image, size=size)
        kwargs["on_snapshot"](5, snapshot)
        calls["snapshot"] = read_image(out)
        return Optimized(final, interrupted=True)

    monkeypatch.setattr("striate.synthesis.gatys.synthesize_texture", fake)
    args = [source, "--size", 12, "--steps", 7, "--every", 5, "--seed", 3, "--weights", weights]
    result = run(app, [*args, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert calls["size"] == 12 and calls["image"].shape == (1, 3, 12, 12)
    assert (calls["steps"], calls["every"], calls["seed"], calls["weights"]) == (7, 5, 3, weights)
    assert torch.allclose(calls["snapshot"], snapshot, atol=0.5 / 255)
    assert torch.allclose(read_image(out), final, atol=0.5 / 255)
    assert "interrupted; the last image" in result.output


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (["--method", "efros-leung", "--steps", 5], ConfigError, "--steps is an option of"),
        (["--method", "efros-leung", "--every", 5], ConfigError, "--every is an option of"),
        (["--window", 5], ConfigError, "--window is an option of --method efros-leung"),
        (["--method", "patch"], ConfigError, "--method must be one of"),
        (["--out", "t.txt"], ConfigError, "name a .png or .jpg"),
        (["--size", 0], ConfigError, "--size must be a positive integer"),
        (["--method", "efros-leung", "--window", 4], ConfigError, "window must be odd"),
    ],
)
def test_bad_options_are_one_clear_error(app, source, args, error, words):
    result = run(app, [source, *args])
    assert isinstance(result.exception, error), result.output
    assert words in str(result.exception)


def test_an_unreadable_source_is_a_data_error(app, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = run(app, [bad, "--method", "efros-leung", "--out", tmp_path / "o.png"])
    assert isinstance(result.exception, DataError)
