"""Options declared once (striate.cli.options): each TrainConfig setting's flag, help and default
come from its field, and the lists of names in the help from the registries."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from striate.cli.main import app, main
from striate.cli.options import described, flags, option, settings
from striate.train.config import TrainConfig


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def words(text: str) -> set[str]:
    return set(re.split(r"[\s,;:.()\[\]]+", text))


TRAIN_LISTS = {
    "models": "striate.models:available",
    "optimisers": "striate.engine.optim:OPTIMIZERS",
    "schedules": "striate.engine.schedules:SCHEDULES",
    "losses": "striate.engine.losses:LOSSES",
    "augmentations": "striate.data.augment_spec:AUGMENTATIONS",
    "initialisations": "striate.models.init:INIT_SCHEMES",
    "precisions": "striate.engine.precision:PRECISIONS",
    "recipes": "striate.train.recipes:RECIPES",
}


@pytest.mark.parametrize(
    ("command", "lists"),
    [
        ("train", list(TRAIN_LISTS)),
        ("lr-find", ["models", "optimisers", "augmentations", "precisions"]),
        ("search", ["models", "optimisers", "schedules", "augmentations", "precisions"]),
        ("doctor", ["models", "optimisers", "schedules", "losses", "initialisations"]),
    ],
)
def test_the_help_names_every_registered_name(capsys, command, lists):
    import importlib

    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    shown = words(out)
    for kind in lists:
        module, _, attr = TRAIN_LISTS[kind].partition(":")
        registry = getattr(importlib.import_module(module), attr)
        expected = (
            registry() if callable(registry) and not hasattr(registry, "__iter__") else registry
        )
        missing = set(expected) - shown
        assert not missing, (command, kind, missing)


def test_a_name_registered_later_is_listed_too(capsys, monkeypatch):
    """The list is read from the registry when help is shown, not typed into the help."""
    import striate.engine.optim as optim

    monkeypatch.setattr(optim, "OPTIMIZERS", (*optim.OPTIMIZERS, "newopt"))
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0 and "newopt" in words(out)


def test_no_help_is_left_with_an_unfilled_list(capsys):
    """Every command whose options list names takes options.HELP as its --help."""
    commands = [c.name for c in app.registered_commands]
    groups = [g.name for g in app.registered_groups]
    assert {"train", "doctor", "search", "lr-find", "evaluate"} <= set(commands)
    for command in commands + groups:
        code, out, _ = run(capsys, command, "--help")
        assert code == 0, command
        assert not re.search(r"\{[\w.]+:\w+\}", out), (command, out)


def test_defaults_shown_are_the_fields_own():
    for f in dataclasses.fields(TrainConfig):
        if f.default is None or f.default is dataclasses.MISSING or f.metadata.get("shown"):
            continue
        value = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
        assert described(f.name).endswith(f"[default: {value}]"), f.name
    assert described("momentum").endswith("[default: 0.9 for SGD, 0 for RMSProp]")
    assert "[default" not in described("root")
    # a command's own wording keeps the field's default
    assert described("lr", "Learning rate when not searched.") == (
        "Learning rate when not searched. [default: 0.1]"
    )


def test_flags_follow_the_field_names_and_keep_the_old_ones():
    assert flags("batch_size") == ["--batch-size"]
    assert flags("weight_decay") == ["--weight-decay", "--wd"]
    assert flags("snapshots") == ["--snapshots/--no-snapshots"]
    assert option("lr") is option("lr")  # built once


def test_settings_picks_the_given_fields_in_their_config_form(tmp_path):
    given = settings(
        {
            "config": tmp_path / "c.toml",  # not a setting
            "lr": 0.5,
            "epochs": None,  # not given
            "out": tmp_path / "run",
            "model_option": ["dropout=0.2", "widths=[8, 16]"],
            "opt_option": ["aux_lr=0.5", "normalize=true"],
            "schedule_option": None,
            "snapshot_every": 2,
            "snapshots": None,
        }
    )
    assert given == {
        "lr": 0.5,
        "out": str(tmp_path / "run"),
        "model_options": {"dropout": 0.2, "widths": [8, 16]},
        "opt_options": {"aux_lr": 0.5, "normalize": True},
        "snapshots": 2,
    }


@pytest.mark.parametrize("flag", ["--wd", "--weight-decay"])
def test_weight_decay_under_both_flags_reaches_the_config(capsys, flag):
    code, _, err = run(capsys, "train", flag, "-1", "--no-progress")
    assert code == 2 and "weight_decay must be a non-negative number, got -1.0" in err


def test_resume_refuses_the_renamed_option_by_its_flag(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--resume", str(tmp_path), "--wd", "0.1")
    assert code == 2 and "leave out --weight-decay" in err


def test_a_command_that_needs_no_torch_does_not_import_it():
    """typer reads every command's options on each run: importing striate.train.config for them
    must not import the rest of striate.train (torch)."""
    code = (
        "import sys; from striate.cli.main import main; main(['--version']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
