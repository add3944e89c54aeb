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


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--bogus"], "No such option: --bogus"),
        (["train", "--epochs", "abc"], "Invalid value for '--epochs'"),
        (["no-such-command"], "No such command"),
        (["datasets", "cache", "--older-than", "3"], "--older-than goes with --clear"),
    ],
)
def test_usage_errors_show_the_usage_and_exit_2(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2 and "Usage: striate" in err and message in err and "Traceback" not in err


def test_cache_lists_entries_and_clears_them(capsys, tmp_path):
    import os

    from striate.data import cache as decode_cache
    from striate.data.folder import load_folder
    from tests.data.folder_fixtures import make_folder

    decode_cache.clear()  # the test session's cache folder may hold entries of other tests
    make_folder(tmp_path / "f", per_class=(3, 2, 4))
    for split in ("train", "test"):
        load_folder(tmp_path / "f", split, progress=False)
    code, out, _ = run(capsys, "datasets", "cache")
    flat = " ".join(out.split())
    assert code == 0 and "2 entries" in flat and "train" in out and "test" in out
    entries = decode_cache.entries()
    assert {e.split for e in entries} == {"train", "test"}
    assert {e.images for e in entries} == {9} and all(e.source.endswith("f") for e in entries)
    old = next(e for e in entries if e.split == "test")
    os.utime(old.path, (old.last_used - 3 * 86400, old.last_used - 3 * 86400))
    load_folder(tmp_path / "f", "test", progress=False)  # a hit marks the entry used again
    assert max(e.last_used for e in decode_cache.entries() if e.split == "test") > old.last_used
    os.utime(old.path, (old.last_used - 3 * 86400, old.last_used - 3 * 86400))
    (old.path.parent / "junk.safetensors").write_bytes(b"not a safetensors file")
    assert len(decode_cache.entries()) == 3  # a damaged file is listed, unknown source
    code, out, _ = run(capsys, "datasets", "cache", "--clear", "--older-than", "2")
    assert code == 0 and "deleted 1 cache entry" in out
    assert {e.split for e in decode_cache.entries()} == {"train", None}
    code, out, _ = run(capsys, "datasets", "cache", "--clear")
    assert code == 0 and "deleted 2 cache entries" in out and decode_cache.entries() == []
    code, out, _ = run(capsys, "datasets", "cache")
    assert code == 0 and "0 entries" in " ".join(out.split())


def test_skipped_images_print_one_warning_line(capsys, tmp_path):
    from tests.data.folder_fixtures import make_folder, zip_folder

    make_folder(tmp_path / "f", splits=("train",))
    (tmp_path / "f" / "train" / "cat" / "0000.png").write_bytes(b"not an image")
    cut = tmp_path / "f" / "train" / "dog" / "0001.png"
    cut.write_bytes(cut.read_bytes()[:60])
    z = zip_folder(tmp_path / "f", tmp_path / "f.zip")
    png = tmp_path / "grid.png"
    code, out, err = run(
        capsys, "datasets", "show", str(z), "--on-bad-image", "skip", "--out", str(png)
    )
    assert code == 0 and "2 unreadable skipped" in out
    warned = [line for line in err.splitlines() if "unreadable" in line]
    assert warned == [
        f"warning: {z}: skipped 2 unreadable images in 'train': train/cat/0000.png (not a "
        "recognised image format; damaged, or not an image), train/dog/0001.png (image file is "
        "truncated)"
    ]
    assert "StriateWarning" not in err and "warnings.warn" not in err and ".py:" not in err
