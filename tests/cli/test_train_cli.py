"""`striate train`, `evaluate`, `predict` and `lr-find` end to end on the bundled digits."""

from __future__ import annotations

import csv
import json
import os
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image

from striate.cli.main import main
from striate.data import load_dataset
from striate.models.io import load_model
from tests.callbacks import CtrlCAt


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, module_cpu_bf16):
    """`striate train` with no options but the folder: the default job, run once in bf16 (as on a
    CPU with native bf16) and once in fp32; what is reported must agree with fp32 either way."""
    out = tmp_path_factory.mktemp("run") / "digits"
    code = main(["train", "--out", str(out), "--no-progress"])
    assert code == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["precision"] == ("bf16" if module_cpu_bf16 else "fp32")
    return out


def test_default_train_beats_97_percent_and_writes_the_run_folder(trained):
    info = json.loads((trained / "model" / "model.json").read_text())
    assert info["metrics"]["test_acc"] > 0.97
    config = json.loads((trained / "config.json").read_text())
    assert config["config"]["model"] == "convnet_small" and config["config"]["data"] == "digits"
    assert config["resolved"]["classes"] == [str(i) for i in range(10)]
    with open(trained / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == config["config"]["epochs"]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= rows[0].keys()
    for name in ("history.png", "steps.png", "confusion.png"):
        with Image.open(trained / name) as im:
            assert im.format == "PNG"
    assert (trained / "checkpoints" / "best.safetensors").is_file()
    assert (trained / "checkpoints" / "last.safetensors").is_file()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs = []

        def handle_starttag(self, tag, attrs):
            self.srcs += [v for k, v in attrs if k in ("src", "href")]

    page = Collect()
    page.feed((trained / "report.html").read_text())
    assert len(page.srcs) >= 4 and all(s.startswith("data:image/png;base64,") for s in page.srcs)


def test_load_model_gives_the_reported_accuracy_from_raw_images(trained):
    model = load_model(trained)
    test = load_dataset("digits", "test")
    probs = model.predict_proba(test.images)  # uint8 in, normalisation inside
    acc = (probs.argmax(1) == test.labels).float().mean().item()
    info = json.loads((trained / "model" / "model.json").read_text())
    assert acc == pytest.approx(info["metrics"]["test_acc"], abs=1e-6)
    assert model.classes == tuple(str(i) for i in range(10))


def test_evaluate_prints_accuracy_and_per_class(capsys, trained):
    info = json.loads((trained / "model" / "model.json").read_text())
    for args in ((), ("--data", "digits")):  # the run's own data by default
        code, out, _ = run(capsys, "evaluate", str(trained), *args)
        assert code == 0
        assert out.splitlines()[0].startswith("data: digits") and "360 images" in out
        assert f"accuracy {info['metrics']['test_acc']:.2%}" in out
        assert out.count("%") >= 10
    code, out, _ = run(capsys, "evaluate", str(trained), "--split", "val")
    assert code == 0 and "the run's val split" in out and "144 images" in out


def test_evaluate_defaults_to_the_runs_own_data_and_split(capsys, tmp_path, shared_data):
    """An MNIST run evaluated without --data used to be scored on digits (the class names
    match): 44 % with no warning."""
    out = tmp_path / "mnist"
    code, _, err = run(
        capsys, "train", "--data", "mnist", "--root", str(shared_data), "--model", "mlp",
        "--train-size", "1000", "--test-size", "300", "--epochs", "2", "--out", str(out),
        "--no-progress", "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    info = json.loads((out / "model" / "model.json").read_text())
    code, text, err = run(capsys, "evaluate", str(out))
    assert code == 0, err
    assert text.splitlines()[0] == "data: mnist, the run's test split, 300 images"
    assert f"accuracy {info['metrics']['test_acc']:.2%}" in text
    bare = tmp_path / "bare"
    (out / "model").rename(bare)
    code, _, err = run(capsys, "evaluate", str(bare))
    assert code == 2 and "give --data" in err


def test_tta_views_the_model_never_saw_are_warned_about(capsys, trained):
    code, out, _ = run(capsys, "evaluate", str(trained), "--tta", "flip")
    assert code == 0 and "warning: --tta flip: the model was not trained with mirrored" in out
    code, out, _ = run(capsys, "evaluate", str(trained), "--tta", "translate")
    assert code == 0 and "warning: --tta translate" in out and "--tta flip" not in out
    code, out, _ = run(capsys, "evaluate", str(trained))
    assert code == 0 and "warning" not in out


def test_predict_resizes_images_of_any_size_and_colour(capsys, trained, tmp_path):
    test = load_dataset("digits", "test")
    paths = []
    for i, size in enumerate([8, 40, 17]):
        img = test.images[i, 0].numpy()
        pil = Image.fromarray(img).resize((size, size), Image.Resampling.NEAREST)
        if i == 2:
            pil = pil.convert("RGB")
        paths.append(tmp_path / f"digit{i}.png")
        pil.save(paths[-1])
    code, out, _ = run(capsys, "predict", str(trained), *map(str, paths), "--k", "2")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 3
    for line, label in zip(lines, test.labels[:3].tolist(), strict=True):
        first = line.split(": ", 1)[1].split()[0]
        assert first == str(label)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = run(capsys, "predict", str(trained), str(bad))
    assert code == 2 and "not a readable image" in err


def test_config_file_with_command_line_overrides(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'model = "mlp"\nepochs = 2\nlr = 0.5\nschedule = "cosine"\n[model_options]\nhidden = [16]\n'
    )
    out = tmp_path / "run"
    code, stdout, _ = run(
        capsys, "train", "--config", str(cfg), "--lr", "0.05", "--out", str(out), "--no-progress"
    )
    assert code == 0 and "test accuracy" in stdout
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["lr"] == 0.05 and config["model"] == "mlp" and config["epochs"] == 2
    assert config["model_options"] == {"hidden": [16]}
    spec = json.loads((out / "model" / "model.json").read_text())["architecture"]
    assert spec["kwargs"]["hidden"] == [16]


def test_model_and_schedule_options_merge_with_the_config_file(capsys, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'model = "mlp"\nepochs = 3\nschedule = "sgdr"\n'
        "[model_options]\nhidden = [16]\n[schedule_options]\nT_0 = 1\n"
    )
    out = tmp_path / "run"
    options = ["-o", "dropout=0.1", "--schedule-option", "T_mult=2", "--train-size", "300"]
    code, _, _ = run(capsys, "train", "--config", str(cfg), *options, "--out", str(out))
    assert code == 0
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["model_options"] == {"hidden": [16], "dropout": 0.1}
    assert config["schedule_options"] == {"T_0": 1, "T_mult": 2}
    code, _, err = run(capsys, "train", "--schedule-option", "T_0", "--out", str(out))
    assert code == 2 and "KEY=VALUE" in err


def test_muon_trains_with_its_options_from_the_command_line(capsys, tmp_path):
    out = tmp_path / "run"
    args = ["--opt", "muon", "--lr", "0.02", "--opt-option", "aux_lr=0.05", "--epochs", "1"]
    code, stdout, _ = run(capsys, "train", *args, "--train-size", "300", "--out", str(out))
    assert code == 0 and "test accuracy" in stdout
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["opt"], config["opt_options"]) == ("muon", {"aux_lr": 0.05})
    args = ["--opt", "sgd", "--opt-option", "aux_lr=0.05", "--epochs", "1"]
    code, _, err = run(capsys, "train", *args, "--out", str(tmp_path / "sgd"))
    assert code == 2 and "optimiser 'sgd' has no option aux_lr; it takes none" in err


@pytest.mark.parametrize("opt", ["adam", "rmsprop"])
def test_optimisers_other_than_sgd_train_with_the_default_nesterov(capsys, tmp_path, opt):
    args = ["--opt", opt, "--lr", "1e-3", "--epochs", "1", "--model", "mlp", "--schedule", "cosine"]
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", *args, "--out", str(out), "--no-progress")
    assert code == 0 and "test accuracy" in stdout
    assert json.loads((out / "config.json").read_text())["config"]["opt"] == opt


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet9000"], "unknown model"),
        (["--opt", "sgdd"], "sgd"),
        (["--schedule", "1cycle"], "onecycle"),
        (["--lr", "-0.1"], "lr must be a positive number"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--data", "no/such/folder"], "unknown dataset"),
        (["--augment", "flip,spin"], "unknown augmentation"),
        pytest.param(
            ["--precision", "fp16", "--device", "cpu"], "needs a CUDA device", id="fp16-on-cpu"
        ),
        (["--loss", "hinge", "--augment", "mixup"], "hinge"),
    ],
)
def test_bad_options_give_one_line_and_status_2(capsys, tmp_path, args, message):
    code, _, err = (
        run(capsys, "train", *args, "--epochs", "1", "--out", str(tmp_path / "x"), "--no-progress")
        if "--epochs" not in args
        else run(capsys, "train", *args, "--out", str(tmp_path / "x"), "--no-progress")
    )
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_bad_config_files(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [")
    code, _, err = run(capsys, "train", "--config", str(bad))
    assert code == 2 and "not valid TOML" in err
    bad.write_text("epoch = 3\n")
    code, _, err = run(capsys, "train", "--config", str(bad))
    assert code == 2 and "unknown option(s) epoch" in err
    code, _, err = run(capsys, "train", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "does not exist" in err


def test_interrupted_run_resumes_from_the_command_line(capsys, tmp_path, monkeypatch):
    import striate.train.assembly as assembly

    args = ["train", "--model", "mlp", "--epochs", "3", "--no-progress"]
    code, _, _ = run(capsys, *args, "--out", str(tmp_path / "full"))
    assert code == 0
    build = assembly.build_trainer
    monkeypatch.setattr(
        assembly,
        "build_trainer",
        lambda *a, **k: build(*a, **{**k, "callbacks": [*k.get("callbacks", []), CtrlCAt(30)]}),
    )
    code, out, _ = run(capsys, *args, "--out", str(tmp_path / "cut"))
    assert code == 130 and "--resume" in out
    code, _, err = run(capsys, "evaluate", str(tmp_path / "cut"))
    assert code == 2 and "stopped before the end; continue it with striate train --resume" in err
    saved = json.loads((tmp_path / "cut" / "checkpoints" / "last.json").read_text())
    assert saved == {"epoch": 1, "step": 30}  # 21 steps an epoch: Ctrl-C in epoch 2
    assert "interrupted at step 30, in epoch 2; the state is saved in" in out
    # it goes on with the threads it started with (the same sums), whatever the load is now
    from striate.train.run import _resumed_config

    started = json.loads((tmp_path / "cut" / "config.json").read_text())["resolved"]["threads"]
    assert _resumed_config(tmp_path / "cut").threads == started
    monkeypatch.setattr(assembly, "build_trainer", build)
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "cut"), "--lr", "1")
    assert code == 2 and "leave out --lr" in err
    code, out, _ = run(capsys, "train", "--resume", str(tmp_path / "cut"), "--no-progress")
    assert code == 0 and f"resuming {tmp_path / 'cut'} from epoch 2, step 30" in out
    report = (tmp_path / "cut" / "report.html").read_text()
    code, out, _ = run(capsys, "train", "--resume", str(tmp_path / "cut"), "--no-progress")
    assert code == 0 and "this run is already complete" in out and "resuming" not in out
    assert (tmp_path / "cut" / "report.html").read_text() == report  # nothing re-evaluated
    a = load_model(tmp_path / "full")
    b = load_model(tmp_path / "cut")
    for (name, p), q in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    code, _, err = run(capsys, "train", "--resume", str(tmp_path / "nothing"))
    assert code == 2 and "not a run folder" in err


def test_an_existing_run_is_never_replaced_without_overwrite(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["train", "--model", "mlp", "--epochs", "1", "--no-progress"]
    code, _, _ = run(capsys, *args, "--out", "mine")
    assert code == 0
    before = (tmp_path / "mine" / "model" / "weights.safetensors").read_bytes()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, *args, "--out", "mine", "--seed", "3")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "mine already holds results" in err and "--overwrite" in err and "--resume" in err
    assert (tmp_path / "mine" / "model" / "weights.safetensors").read_bytes() == before
    code, _, err = run(capsys, *args, "--out", "mine", "--seed", "3", "--overwrite")
    assert code == 0, err
    assert (tmp_path / "mine" / "model" / "weights.safetensors").read_bytes() != before
    assert not (tmp_path / "mine" / "notes.txt").exists()  # replaced, not mixed
    config = json.loads((tmp_path / "mine" / "config.json").read_text())["config"]
    assert config["seed"] == 3
    # the default folder is never taken twice
    for expected in ("digits-mlp", "digits-mlp-2"):
        code, out, _ = run(capsys, *args)
        assert code == 0 and f"runs/train/{expected}/report.html" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--opt", "bogus"], "unknown optimiser"),
        (["--schedule", "nope"], "unknown schedule"),
        (["--steps", "2", "--schedule-option", "warmup=5"], "warmup"),
        (["--opt", "lbfgs", "--augment", "flip"], "L-BFGS"),
    ],
)
def test_a_run_that_cannot_start_leaves_no_folder(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    extra = [] if "--steps" in args else ["--epochs", "1"]
    code, _, err = run(capsys, "train", "--model", "mlp", *args, *extra, "--no-progress")
    assert code == 2 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_diverged_run_explains_itself_in_its_folder(capsys, tmp_path):
    out = tmp_path / "nan"
    code, _, err = run(
        capsys, "train", "--lr", "1e4", "--epochs", "2", "--out", str(out), "--no-progress",
        "--precision", "fp32",
    )  # fmt: skip
    assert code == 2
    assert err.startswith("error: the loss became nan") or err.startswith(
        "error: the loss became inf"
    )
    assert "largest: \n" not in err and "largest: ," not in err and ": \n" not in err
    assert "train in fp32" not in err  # it already did
    assert f"the diagnosis is saved in {out / 'failed.json'}" in err
    failed = json.loads((out / "failed.json").read_text())
    assert failed["kind"] == "TrainingDiverged" and failed["error"] in err
    code, _, err = run(capsys, "predict", str(out), str(tmp_path / "x.png"))
    assert code == 2 and f"{out} has no model: its training failed at step" in err
    assert "see" in err and "failed.json" in err


def test_the_report_says_what_ran_where(trained):
    text = (trained / "report.html").read_text()
    config = json.loads((trained / "config.json").read_text())
    resolved = config["resolved"]
    for fact in (
        "<td>device</td><td>cpu</td>",
        f"<td>precision</td><td>{resolved['precision']}</td>",
        f"<td>CPU threads</td><td>{resolved['threads']}</td>",
        f"<td>parameters</td><td>{resolved['parameters']:,}</td>",
        "<td>training images</td><td>1,293</td>",
        "<td>validation images</td><td>144</td>",
        "<td>test images</td><td>360</td>",
        f"<td>torch</td><td>{torch.__version__}</td>",
        "<td>training time</td>",
        "<td>finished</td>",
    ):
        assert fact in text, fact
    info = json.loads((trained / "model" / "model.json").read_text())
    assert f'<td class="num">{info["metrics"]["test_acc"]:.2%}</td>' in text


def test_usage_lines_name_arguments_in_capitals(capsys):
    code, _, err = run(capsys, "predict")
    assert code == 2 and "Usage: striate predict [OPTIONS] [RUN] IMAGE..." in err


def test_lr_find_writes_plot_and_suggestion(capsys, tmp_path):
    code, out, _ = run(
        capsys,
        "lr-find",
        "--model",
        "mlp",
        "--start",
        "1e-5",
        "--end",
        "10",
        "--num-steps",
        "60",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and "suggested lr" in out
    data = json.loads((tmp_path / "lr_find.json").read_text())
    assert 1e-5 < data["suggestion"] < 10
    with Image.open(tmp_path / "lr_find.png") as im:
        assert im.format == "PNG"


def test_lr_find_takes_a_fresh_default_folder_and_refuses_to_overwrite(
    capsys, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    args = ["lr-find", "--model", "mlp", "--num-steps", "20"]
    for expected in ("digits-mlp", "digits-mlp-2"):
        code, out, _ = run(capsys, *args)
        assert code == 0 and f"runs/lr-find/{expected}/lr_find.png" in out
    before = (tmp_path / "runs/lr-find/digits-mlp/lr_find.json").read_text()
    code, _, err = run(capsys, *args, "--out", "runs/lr-find/digits-mlp", "--start", "1e-4")
    assert code == 2 and "already holds results" in err and "--overwrite" in err
    assert (tmp_path / "runs/lr-find/digits-mlp/lr_find.json").read_text() == before
    code, _, _ = run(capsys, *args, "--out", "runs/lr-find/digits-mlp", "--start", "1e-4",
                     "--overwrite")  # fmt: skip
    assert code == 0
    assert (tmp_path / "runs/lr-find/digits-mlp/lr_find.json").read_text() != before


def test_help_lists_every_training_option(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    for flag in (
        "--data",
        "--root",
        "--model",
        "--epochs",
        "--batch-size",
        "--opt",
        "--lr",
        "--wd",
        "--schedule",
        "--augment",
        "--precision",
        "--seed",
        "--out",
        "--resume",
        "--config",
    ):
        assert flag in out, flag
    flat = " ".join(out.split())  # the defaults are text, not swallowed as rich markup
    assert "[default: 30]" in flat and "[default: onecycle]" in flat
    for command in ("evaluate", "predict", "lr-find"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Usage" in out


def test_the_cli_starts_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, striate.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow  # 30 s; tests/engine/test_distributed.py checks the same reduction in `make test`
def test_torchrun_two_processes_train_like_one(tmp_path, capsys):
    """`torchrun --nproc-per-node 2 striate train`: each process takes half of every batch;
    process 0 alone writes the run folder, which matches the single-process run's."""
    import subprocess
    import sys
    from pathlib import Path

    bin_dir = Path(sys.executable).parent
    args = ["train", "--model", "mlp", "--epochs", "2", "--no-progress"]
    cmd = [
        str(bin_dir / "torchrun"),
        "--standalone",
        "--nproc-per-node",
        "2",
        "--no-python",
        str(bin_dir / "striate"),
        *args,
        "--out",
        str(tmp_path / "ddp"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test accuracy") == 1  # one report, from process 0
    assert run(capsys, *args, "--out", str(tmp_path / "one"))[0] == 0
    ddp = json.loads((tmp_path / "ddp" / "model" / "model.json").read_text())["metrics"]
    one = json.loads((tmp_path / "one" / "model" / "model.json").read_text())["metrics"]
    assert ddp["test_acc"] == pytest.approx(one["test_acc"], abs=0.01)
    assert ddp["test_loss"] == pytest.approx(one["test_loss"], rel=1e-3)
    config = json.loads((tmp_path / "ddp" / "config.json").read_text())
    assert config["resolved"]["processes"] == 2


def test_recipe_names_are_checked(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--recipe", "cifar10-fastest", "--out", str(tmp_path))
    assert code == 2 and "unknown recipe" in err and "cifar10-fast" in err
    code, _, err = run(capsys, "train", "--resume", str(tmp_path), "--recipe", "cifar10-fast")
    assert code == 2 and "leave out --recipe" in err
