"""`striate spatial mnist`: the files written load back through the MNIST reader and equal the
generator's output; unknown variants and an existing OUT are one-line errors that lose nothing."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from striate import load_dataset
from striate.cli.spatial import app
from striate.errors import ConfigError
from striate.outputs import OutputExists
from striate.spatial.variants import distorted_set


def run(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_writes_mnist_files_that_load_back(shared_data, tmp_path):
    out = tmp_path / "rts"
    args = ["mnist", "RTS", out, "--train", 30, "--test", 20, "--seed", 4, "--root", shared_data]
    result = run(args)
    assert result.exit_code == 0, result.output
    assert "RTS MNIST: 30 training and 20 test images, 42×42" in result.output
    for split, n, seed in (("train", 30, 4), ("test", 20, 5)):
        ds = load_dataset("mnist", split, root=out)
        expected = distorted_set(load_dataset("mnist", split, root=shared_data)[:n], "RTS", seed)
        assert torch.equal(ds.images, expected.images)
        assert torch.equal(ds.labels, expected.labels)
    info = json.loads((out / "distortion.json").read_text())
    assert info["variant"] == "RTS" and info["size"] == [42, 42]


def test_bad_input_is_one_line_and_nothing_is_lost(shared_data, tmp_path):
    out = tmp_path / "out"
    result = run(["mnist", "RST", out, "--root", shared_data])
    assert isinstance(result.exception, ConfigError)
    assert "unknown distorted MNIST variant 'RST'" in str(result.exception)
    assert "\n" not in str(result.exception) and not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    result = run(["mnist", "R", out, "--train", 5, "--test", 5, "--root", shared_data])
    assert isinstance(result.exception, OutputExists)
    assert "pass --overwrite" in str(result.exception)
    assert (out / "mine.txt").read_text() == "keep"
    result = run(["mnist", "R", out, "--train", 0, "--root", shared_data])
    assert isinstance(result.exception, ConfigError) and "--train" in str(result.exception)


@pytest.mark.parametrize("variant", ["cluttered"])
def test_overwrite_replaces_the_folder(shared_data, tmp_path, variant):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    args = ["mnist", variant, out, "--train", 5, "--test", 5, "--root", shared_data, "--overwrite"]
    assert run(args).exit_code == 0
    assert not (out / "old.txt").exists()
    assert load_dataset("mnist", "test", root=out).images.shape == (5, 1, 60, 60)
