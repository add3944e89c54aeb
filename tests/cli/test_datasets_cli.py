"""`striate datasets` and `striate datasets show`, run through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from striate.cli.main import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_source(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", ".zip", ".npz"):
        assert name in out


@pytest.mark.parametrize("args", [[], ["datasets"], ["datasets", "show"]])
def test_help_everywhere(capsys, args):
    code, out, _ = run(capsys, *args, "--help")
    assert code == 0 and "Usage" in out


def test_show_digits_counts_stats_and_grid(capsys, tmp_path):
    png = tmp_path / "grid.png"
    code, out, _ = run(capsys, "datasets", "show", "digits", "--out", str(png))
    assert code == 0
    assert "1,437" in out and "360" in out  # the fixed stratified 80/20 split of 1,797
    assert "1×8×8" in out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 100


def test_show_mnist_from_shared_data(capsys, tmp_path, shared_data):
    code, out, _ = run(
        capsys,
        "datasets",
        "show",
        "mnist",
        "--root",
        str(shared_data),
        "--out",
        str(tmp_path / "m.png"),
    )
    assert code == 0
    assert "60,000" in out and "10,000" in out and "5,923" in out and "0.1307" in out


def test_user_errors_are_one_line_and_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "datasets", "show", "no-such-set")
    assert code == 2 and err.startswith("error: unknown dataset 'no-such-set'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "datasets", "show", "mnist", "--root", str(tmp_path))
    assert code == 2 and "train-images-idx3-ubyte.gz" in err and str(tmp_path) in err
    code, _, err = run(capsys, "datasets", "show", "digits", "--split", "val")
    assert code == 2 and "no split 'val'" in err


def test_installed_console_script_runs_and_exits_2_on_user_errors():
    script = Path(sys.executable).parent / "striate"
    ok = subprocess.run([script, "--version"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("striate ")
    bad = subprocess.run(
        [script, "datasets", "show", "nope"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown dataset")


def test_show_prints_brackets_literally(capsys, tmp_path):
    from tests.data.folder_fixtures import make_folder

    make_folder(tmp_path / "odd", classes=("[bold]x", "plain"), per_class=(2, 2))
    code, out, _ = run(
        capsys, "datasets", "show", str(tmp_path / "odd"), "--out", str(tmp_path / "odd.png")
    )
    assert code == 0 and "[bold]x" in out and "odd [train]" in out
