"""`striate search` end to end on the bundled digits, with tiny trials."""

from __future__ import annotations

import csv
import json

from PIL import Image

from striate.cli.main import main
from striate.train import TrainConfig

TINY = ["--train-size", "300", "--epochs", "1", "--device", "cpu", "--no-progress"]


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_names_the_range_forms(capsys):
    code, out, _ = run(capsys, "search", "--help")
    assert code == 0
    for word in ("--param", "log:LOW:HIGH", "--coarse", "--fine", "--storage", "--sampler"):
        assert word in out


def test_bad_input_is_one_line_and_status_2(capsys):
    for args, message in (
        (["-p", "lr=log:0:1"], "log range needs positive bounds"),
        (["-p", "lr=log:1:0.1"], "must be below the high bound"),
        (["-p", "lerning_rate=log:1e-4:1"], "unknown search parameter 'lerning_rate'"),
        ([], "nothing to search"),
        (["-p", "lr=log:1e-4:1", "--trials", "3", "--coarse", "2"], "not both"),
        (["-p", "lr=log:1e-4:1", "--trials", "2", "--sampler", "grid"], "unknown sampler"),
    ):
        code, _, err = run(capsys, "search", *args, *TINY)
        assert code == 2, args
        assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_search_writes_the_table_and_files(capsys, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('batch_size = 32\n\n[search]\nlr = "log:1e-3:1"\nwd = ["log", 1e-6, 1e-2]\n')
    out = tmp_path / "s"
    code, stdout, _ = run(
        capsys,
        "search",
        "--config",
        str(config),
        "-p",
        "dropout=uniform:0:0.5",
        "--coarse",
        "4",
        "--fine",
        "2",
        "--out",
        str(out),
        *TINY,
    )
    assert code == 0
    assert "val acc" in stdout and "best: fine trial" in stdout
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"lr", "wd", "dropout"} <= rows[0].keys()
    accs = [float(r["val_acc"]) for r in rows if r["val_acc"]]
    assert accs == sorted(accs, reverse=True)
    result = json.loads((out / "results.json").read_text())
    assert set(result["spaces"]) == {"coarse", "fine"}
    best = TrainConfig.load(out / "best.toml")
    assert (
        best.batch_size == 32
        and best.model_options["dropout"] == result["best"]["params"]["dropout"]
    )
    with Image.open(out / "val_acc.png") as im:
        assert im.format == "PNG"
    # the same command again continues the finished study: nothing new to run
    code, stdout, _ = run(
        capsys,
        "search",
        "--config",
        str(config),
        "-p",
        "dropout=uniform:0:0.5",
        "--coarse",
        "4",
        "--fine",
        "2",
        "--out",
        str(out),
        *TINY,
    )
    assert code == 0
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
