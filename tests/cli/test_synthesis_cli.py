"""`striate stylize` routes CONTENT STYLE to its default command; `texture` and `harmonize` are
registered. (Each command's own options are tested beside its module in tests/synthesis.)"""

from __future__ import annotations

import pytest

from striate.cli.main import main
from striate.synthesis.images import photograph, read_image, resize_to, save_image


@pytest.fixture
def pair(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("STRIATE_SHARED_DATA", str(shared_data))
    save_image(resize_to(photograph("chelsea"), 40), tmp_path / "content.png")
    save_image(resize_to(photograph("brick"), 40), tmp_path / "style.png")
    return tmp_path


def test_content_and_style_go_to_the_default_command(pair, capsys):
    out = pair / "result.png"
    args = [str(pair / "content.png"), str(pair / "style.png"), "--size", "32", "--steps", "2"]
    assert main(["stylize", *args, "--out", str(out)]) == 0
    assert read_image(out).shape == (1, 3, 22, 32)
    # the same through the command's name, and options before the images
    assert main(["stylize", "--steps", "2", "image", *args[:2], "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["stylize", "image", *args, "--out", str(pair / "again.png")]) == 0


def test_the_group_and_the_commands_have_help(capsys):
    for argv in (
        ["stylize"],
        ["stylize", "--help"],
        ["texture", "--help"],
        ["harmonize", "--help"],
    ):
        assert main(argv) in (0, 2)
        printed = capsys.readouterr()
        assert "Usage: striate" in printed.out + printed.err
    assert main(["stylize", "--help"]) == 0
    listed = capsys.readouterr().out
    assert all(c in listed for c in ("image", "train-fast", "apply"))


def test_a_missing_content_file_is_one_line(pair, capsys):
    assert main(["stylize", str(pair / "missing.png"), str(pair / "style.png")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: cannot read")
