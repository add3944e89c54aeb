"""`striate search` end to end on the bundled digits, with tiny trials; without optuna."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

from PIL import Image

from striate.cli.main import main
from striate.train import TrainConfig

TINY = ["--train-size", "300", "--epochs", "1", "--device", "cpu", "--no-progress"]
TINY += ["--precision", "fp32"]


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
        (["-p", "lr=log:1e-4:1", "--trials", "2", "--sampler", "grid"], "sampler must be one of"),
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
    assert "val acc" in stdout and "best fine-stage trial (full-length training): trial" in stdout
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
    # the line printed, best.toml, results.json and results.csv name the same trial
    assert result["summary"] in " ".join(stdout.split())
    assert (out / "best.toml").read_text().startswith(f"# {result['summary']}\n")
    b = result["best"]
    assert [(r["stage"], int(r["trial"])) for r in rows if r["best"] == "yes"] == [
        (b["stage"], b["trial"])
    ]
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


def test_unrelated_searches_get_their_own_study_and_folder(capsys, tmp_path, monkeypatch):
    """The issue's case: two searches without --study or --out no longer share runs/search/search;
    the same command continues its own; a changed range is refused until --overwrite."""
    monkeypatch.chdir(tmp_path)
    lr = ["search", "-p", "lr=log:1e-3:1", "--trials", "2", *TINY]
    code, stdout, _ = run(capsys, *lr)
    assert code == 0 and "study digits-convnet_small-lr" in stdout
    first = tmp_path / "runs/search/digits-convnet_small-lr"
    before = (first / "results.csv").read_text()
    code, stdout, _ = run(
        capsys, "search", "-p", "wd=log:1e-6:1e-2", "--coarse", "2", "--fine", "1", *TINY
    )
    assert code == 0
    second = tmp_path / "runs/search/digits-convnet_small-wd"
    assert len(json.loads((second / "results.json").read_text())["trials"]) == 3
    assert (first / "results.csv").read_text() == before
    # the same command again: continues (one more trial)
    code, _, _ = run(capsys, *lr[: -len(TINY)], "--trials", "3", *TINY)
    assert code == 0
    assert len(json.loads((first / "results.json").read_text())["trials"]) == 3
    # another range under the same name: refused, one line, nothing changed
    after = (first / "results.csv").read_text()
    code, _, err = run(capsys, "search", "-p", "lr=log:1e-4:1", "--trials", "2", *TINY)
    assert code == 2 and err.count("\n") == 1
    assert "lr range log:0.001:1 before, log:0.0001:1 now" in err and "--overwrite" in err
    assert (first / "results.csv").read_text() == after
    code, _, _ = run(capsys, "search", "-p", "lr=log:1e-4:1", "--trials", "2", "--overwrite", *TINY)
    assert code == 0
    saved = json.loads((first / "results.json").read_text())
    assert len(saved["trials"]) == 2 and saved["spaces"]["search"] == {"lr": "log:0.0001:1"}


NO_OPTUNA = textwrap.dedent(
    """
    import sys
    sys.modules["optuna"] = None  # as if it were not installed: `import optuna` fails
    import striate, striate.train
    from striate.cli.main import main
    from striate.errors import StriateError
    from striate.train import TrainConfig
    from striate.train.search import search
    assert main(["--help"]) == 0
    assert main(["search", "--help"]) == 0
    print("status", main(["search", "-p", "lr=log:1e-3:1", "--trials", "1"]))
    try:
        search(TrainConfig(epochs=1), ["lr=log:1e-3:1"], trials=1, progress=False)
    except StriateError as e:
        print("library:", e)
    """
)


def test_without_optuna_only_the_search_needs_it():
    """`import striate`, `striate --help` and `striate search --help` work without optuna; a
    search says in one line which extra to install."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", NO_OPTUNA], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    line = "striate search needs optuna: pip install 'striate[search]'"
    assert proc.stderr.strip() == f"error: {line}"
    assert "status 2" in proc.stdout and f"library: {line}" in proc.stdout
    assert "Traceback" not in proc.stderr
