"""`striate models` and `striate models show`, run through the real entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import torch

from striate import models
from striate.cli.main import main
from striate.models.summary import human_count, parameter_count, summary


@pytest.fixture(autouse=True)
def wide_console(monkeypatch, request):
    """Tables 300 columns wide, so that no cell folds; an 80-column terminal for the "narrow"
    tests, and the console as the CLI makes it (no terminal here) for the "unwrapped" ones."""
    from rich.console import Console

    import striate.cli.models as cli

    if "narrow" in request.node.name:
        monkeypatch.setattr(cli, "console", Console(width=80))
    elif "unwrapped" not in request.node.name:
        monkeypatch.setattr(cli, "console", Console(width=300))


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_model_with_its_parameters(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name in models.available():
        assert name in out
    expected = parameter_count(models.create("convnet_small", 10, (3, 32, 32)))[0]
    assert f"{expected:,}" in out and "3x32x32" in out
    assert "MACs" not in out.splitlines()[2]  # no forward passes without --flops


def test_list_with_flops_and_a_chosen_input(capsys):
    code, out, _ = run(capsys, "models", "--flops", "--input", "1,8,8", "--num-classes", "4")
    assert code == 0
    model = models.create("convnet_small", num_classes=4, in_shape=(1, 8, 8))
    s = summary(model)
    assert f"{s.params:,}" in out and human_count(s.macs) in out and human_count(s.flops) in out
    assert "1x8x8" in out and "FLOPs" in out


def test_list_shows_which_models_do_not_take_the_input(capsys):
    code, out, _ = run(capsys, "models", "--input", "3,2,2")
    assert code == 0  # one model that cannot take the input does not stop the listing
    assert "convnet" in out and "3x2x2" in out
    assert "shrink a 2×2 input below 1×1" in out
    mlp = parameter_count(models.create("mlp", 10, (3, 2, 2)))[0]
    assert f"{mlp:,}" in out


def test_show_prints_the_summary_table(capsys):
    code, out, _ = run(capsys, "models", "show", "convnet_small", "--input", "1,8,8")
    assert code == 0
    model = models.create("convnet_small", num_classes=10, in_shape=(1, 8, 8))
    s = summary(model)
    assert "convnet_small: 1x8x8 input, 10 classes" in out
    assert "features.0" in out and "Conv2d" in out and "classifier" in out
    assert f"total params: {s.params:,}" in out
    assert f"MACs: {human_count(s.macs)}" in out and "forward activations" in out


def test_narrow_terminal_keeps_numbers_whole(capsys):
    code, out, _ = run(capsys, "models", "show", "convnet_small", "--input", "1,8,8")
    assert code == 0 and max(map(len, out.splitlines())) <= 80
    s = summary(models.create("convnet_small", num_classes=10, in_shape=(1, 8, 8)))
    assert all(f"{r.params:,}" in out for r in s.rows if r.params)


def test_without_a_terminal_names_and_descriptions_stay_on_one_line_unwrapped(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    lines = out.splitlines()
    for name in models.available():
        about = models.describe(name)
        assert any(about in line for line in lines), about  # not folded at 80 columns
    assert any(len(line) > 80 for line in lines)


def test_each_model_is_listed_and_shown_at_its_own_input(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0
    for name, (shape, k) in (("alexnet", ((3, 224, 224), 1000)), ("resnet20", ((3, 32, 32), 10))):
        row = next(line for line in out.splitlines() if f" {name} " in line)
        params = parameter_count(models.create(name))[0]
        assert "x".join(map(str, shape)) in row and f" {k} " in row and f"{params:,}" in row
    code, out, _ = run(capsys, "models", "show", "alexnet-2012")  # the old spelling still works
    assert code == 0 and out.startswith("alexnet_2012: 3x227x227 input, 1000 classes")
    assert f"total params: {62_378_344:,}" in out


def test_show_json_with_options_and_batch(capsys):
    args = ["models", "show", "convnet", "--input", "3,16,16", "--json", "--batch-size", "2"]
    code, out, _ = run(capsys, *args, "-o", "channels=[8,16]", "-o", "activation=tanh")
    assert code == 0
    d = json.loads(out)
    model = models.create("convnet", 10, (3, 16, 16), channels=[8, 16], activation="tanh")
    s = summary(model, batch_size=2)
    assert d["params"] == s.params == parameter_count(model)[0]
    assert d["macs"] == s.macs and d["input_shape"] == [2, 3, 16, 16]
    assert d["options"] == {"channels": [8, 16], "activation": "tanh"}
    assert [r["name"] for r in d["rows"]] == [r.name for r in s.rows]
    assert any(r["type"] == "Tanh" for r in d["rows"])


def test_show_default_input_matches_a_cpu_summary(capsys):
    code, out, _ = run(capsys, "models", "show", "mlp", "--json")
    assert code == 0
    d = json.loads(out)
    cpu = summary(models.create("mlp", 10, (3, 32, 32)), device="cpu")
    assert d["input_shape"] == [1, 3, 32, 32]  # a model without an ImageNet stem: 3x32x32
    assert (d["params"], d["macs"], d["activation_bytes"]) == (
        cpu.params,
        cpu.macs,
        cpu.activation_bytes,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "convnet-smal"], ("unknown model 'convnet-smal';", "did you mean")),
        (["show", "mlp", "--input", "3,a,32"], "error: --input must be an image shape C,H,W"),
        (["show", "mlp", "--input", "3,32"], "error: --input must be an image shape C,H,W"),
        (["show", "mlp", "-o", "hidden"], "error: an option must be KEY=VALUE"),
        (["show", "mlp", "-o", "hiden=[4]"], "error: model 'mlp' has no option 'hiden'"),
        (["show", "mlp", "--num-classes", "1"], "num_classes must be an integer >= 2"),
        (["show", "convnet", "--input", "3,2,2"], "shrink a 2×2 input below 1×1"),
        (["--input", "0,1,1"], "error: --input must be an image shape C,H,W"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(capsys, args, message):
    code, _, err = run(capsys, "models", *args)
    parts = message if isinstance(message, tuple) else (message,)
    assert code == 2 and err.startswith("error: ") and all(part in err for part in parts)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["models"], ["models", "show"]])
def test_help(capsys, args):
    code, out, _ = run(capsys, *args, "--help")
    assert code == 0 and "Usage" in out and "--input" in out


def test_the_command_module_does_not_import_torch():
    code = "import sys, striate.cli.models; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_meta_models_are_not_left_behind():
    from striate.cli.models import _build

    model, shape, k = _build("convnet_small", None, None, {})
    assert {p.device.type for p in model.parameters()} == {"meta"}  # nothing allocated
    assert (shape, k) == ((3, 32, 32), 10)
    assert torch.zeros(1).device.type == "cpu"  # the meta device was not left as the default


def test_listing_every_model_reports_its_progress_on_stderr(capsys):
    code, out, err = run(capsys, "models")
    assert code == 0 and "counting parameters" not in out
    n = len(models.available())
    assert re.fullmatch(rf"counting parameters: {n} models in \d+\.\d s\n", err)
