"""`striate ensemble` on tiny digits runs (one with SGDR snapshots), and its error messages."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from striate.cli.main import main
from striate.data import load_dataset
from striate.models.io import load_model

TOML = """
model = "mlp"
epochs = 3
batch_size = 64
lr = 0.1
augment = "none"
precision = "auto"
device = "cpu"
train_size = 600

[model_options]
hidden = [16]
"""


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables 300 columns wide, so that no cell folds."""
    from rich.console import Console

    import striate.cli.ensemble as cli

    monkeypatch.setattr(cli, "console", Console(width=300))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory, module_cpu_bf16):
    """Two tiny trained runs: SGDR with a snapshot per 1-epoch cycle, and 1cycle (seed 1); trained
    in bf16 as on a CPU with native bf16, and in fp32 as on one without."""
    base = tmp_path_factory.mktemp("ensemble")
    config = base / "mlp.toml"
    config.write_text(TOML + "\n[schedule_options]\nT_0 = 1\n")
    plain = base / "plain.toml"
    plain.write_text(TOML)
    common = ("--data", "digits", "--no-progress")
    code = main(["train", "--config", str(config), "--schedule", "sgdr", "--snapshots",
                 "--out", str(base / "sgdr"), *common])  # fmt: skip
    assert code == 0
    code = main(["train", "--config", str(plain), "--seed", "1", "--out", str(base / "one"),
                 *common])  # fmt: skip
    assert code == 0
    resolved = json.loads((base / "one" / "config.json").read_text())["resolved"]
    assert resolved["precision"] == ("bf16" if module_cpu_bf16 else "fp32")
    return base


def test_train_with_snapshots_writes_one_per_cycle(runs):
    snaps = sorted(p.name for p in (runs / "sgdr" / "snapshots").iterdir())
    assert snaps == ["snapshot-1", "snapshot-2", "snapshot-3"]
    config = json.loads((runs / "sgdr" / "config.json").read_text())["config"]
    assert config["snapshots"] is True and config["schedule"] == "sgdr"
    assert not (runs / "one" / "snapshots").exists()


def test_ensemble_of_a_run_and_snapshots_reports_members_and_the_ensemble(capsys, runs, tmp_path):
    out = tmp_path / "ens"
    code, text, err = run(
        capsys, "ensemble", str(runs / "one"), "--snapshots", str(runs / "sgdr"),
        "--data", "digits", "--out", str(out), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "ensemble.json").read_text())
    names = [m["name"] for m in report["members"]]
    assert names == [str(runs / "one"), "sgdr/snapshot-1", "sgdr/snapshot-2", "sgdr/snapshot-3"]
    for name in names:
        assert name in text
    assert "ensemble of 4" in text and "best member" in text
    assert f"{report['ensemble']['acc']:.2%}" in text
    # the ensemble's accuracy by hand, in fp32 whatever precision trained the members: the mean
    # of each saved model's probabilities
    test = load_dataset("digits", "test")
    models = [load_model(p) for p in report["paths"]]
    probs = sum(m.predict_proba(test.images) for m in models) / len(models)
    acc = (probs.argmax(1) == test.labels).double().mean().item()
    assert report["ensemble"]["acc"] == pytest.approx(acc)
    for m, model in zip(report["members"], models, strict=True):
        own = (model.predict_proba(test.images).argmax(1) == test.labels).double().mean().item()
        assert m["acc"] == pytest.approx(own)
    assert report["images"] == len(test) and len(report["first_k"]) == 4
    assert report["gain_over_best_member"] == pytest.approx(
        report["ensemble"]["acc"] - max(m["acc"] for m in report["members"])
    )
    with Image.open(out / "ensemble.png") as im:
        assert im.format == "PNG"


def test_the_members_own_test_split_is_the_default_and_results_are_not_replaced(
    capsys, runs, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, text, err = run(capsys, "ensemble", "--snapshots", str(runs / "sgdr"), "--device", "cpu")
    assert code == 0, err
    report = json.loads((tmp_path / "runs/ensemble/digits/ensemble.json").read_text())
    assert report["data"] == "digits, the run's test split" and report["images"] == 360
    assert "360 images: digits, the run's test split" in text
    code, _, _ = run(capsys, "ensemble", "--snapshots", str(runs / "sgdr"), "--device", "cpu")
    assert code == 0 and (tmp_path / "runs/ensemble/digits-2/ensemble.json").is_file()
    out = tmp_path / "runs/ensemble/digits"
    args = ("ensemble", str(runs / "one"), "--out", str(out), "--device", "cpu")
    code, _, err = run(capsys, *args)
    assert code == 2 and "already holds results" in err and "--overwrite" in err
    assert json.loads((out / "ensemble.json").read_text())["images"] == 360
    code, _, err = run(capsys, *args, "--overwrite", "--test-size", "50")
    assert code == 0, err
    assert json.loads((out / "ensemble.json").read_text())["images"] == 50
    code, text, _ = run(capsys, "ensemble", str(runs / "one"), "--tta", "flip", "--out", "f")
    assert code == 0 and "warning: --tta flip: the model was not trained with mirrored" in text


def test_test_size_and_tta(capsys, runs, tmp_path):
    code, _, err = run(
        capsys, "ensemble", "--snapshots", str(runs / "sgdr"), "--data", "digits",
        "--test-size", "100", "--tta", "flip", "--out", str(tmp_path), "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads((tmp_path / "ensemble.json").read_text())
    assert report["images"] == 100 and report["tta"] == "flip"


def test_bad_input_is_one_line_and_status_2(capsys, runs, tmp_path):
    model = runs / "one" / "model"
    other = tmp_path / "other"
    shutil.copytree(model, other)
    info = json.loads((other / "model.json").read_text())
    info["classes"] = [f"c{i}" for i in range(10)]
    (other / "model.json").write_text(json.dumps(info))
    shape = tmp_path / "shape"
    shutil.copytree(model, shape)
    info = json.loads((shape / "model.json").read_text())
    info["in_shape"] = [1, 4, 16]
    (shape / "model.json").write_text(json.dumps(info))
    cases = [
        ((), "no ensemble members"),
        ((str(tmp_path / "nothing"),), "no model at"),
        ((str(model), str(other)), "different classes"),
        ((str(model), str(shape)), "different inputs"),
        (("--snapshots", str(runs / "one")), "no snapshots in"),
        ((str(model), "--test-size", "0"), "--test-size must be a positive"),
    ]
    for args, message in cases:
        out = str(tmp_path / "ens")
        code, _, err = run(capsys, "ensemble", *args, "--data", "digits", "--out", out)
        assert code == 2, args
        assert message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", "--schedule", "cosine", "--snapshots", "--epochs", "1")
    assert code == 2 and "schedule 'sgdr'" in err


def test_help_names_the_options(capsys):
    code, text, _ = run(capsys, "ensemble", "--help")
    assert code == 0
    for option in ("--snapshots", "--data", "--test-size", "--tta", "--out"):
        assert option in text
    code, text, _ = run(capsys, "train", "--help")
    assert "--snapshots" in text and "--snapshot-every" in text


def test_snapshot_every_from_the_command_line(capsys, runs, tmp_path):
    code, _, err = run(
        capsys, "train", "--config", str(runs / "plain.toml"), "--epochs", "2",
        "--snapshot-every", "1", "--data", "digits", "--out", str(tmp_path / "r"),
        "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "config.json").read_text())["config"]["snapshots"] == 1
    snaps = sorted(p.name for p in (tmp_path / "r" / "snapshots").iterdir())
    assert snaps == ["snapshot-1", "snapshot-2"]
    torch.testing.assert_close(
        load_model(tmp_path / "r" / "snapshots" / "snapshot-2").net.state_dict(),
        load_model(tmp_path / "r").net.state_dict(),
    )
