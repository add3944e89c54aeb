"""TrainConfig: defaults, TOML files, overrides and validation; the --augment spec."""

from __future__ import annotations

import pytest

from striate.data.augment import Compose, Mixup, RandomCrop, RandomHorizontalFlip
from striate.data.augment_spec import parse_augment
from striate.errors import ConfigError
from striate.train.config import TrainConfig


def test_file_then_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.3\nbatch-size = 32\nmodel = "mlp"\n[schedule_options]\nwarmup = 1\n')
    cfg = TrainConfig.load(path, lr=0.01, seed=None)
    assert cfg.lr == 0.01 and cfg.batch_size == 32 and cfg.model == "mlp" and cfg.seed == 0
    assert cfg.schedule_options == {"warmup": 1}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_opt_options_are_a_table_merged_key_by_key(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('opt = "muon"\n[opt_options]\naux_lr = 0.1\nns_steps = 3\n')
    cfg = TrainConfig.load(path, opt_options={"ns_steps": 5})
    assert cfg.opt_options == {"aux_lr": 0.1, "ns_steps": 5}
    with pytest.raises(ConfigError, match="opt_options must be a table"):
        TrainConfig(opt_options=[1])
    with pytest.raises(ConfigError, match="'sgd' has no option ns_steps; it takes none"):
        TrainConfig(opt="sgd", opt_options={"ns_steps": 3})  # at once, before any data is read


def test_steps_replace_the_default_epochs():
    cfg = TrainConfig.load(steps=100)
    assert cfg.steps == 100 and cfg.epochs is None
    with pytest.raises(ConfigError, match="exactly one"):
        TrainConfig(epochs=3, steps=100)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr": 0}, "lr must be a positive number"),
        ({"lr": float("inf")}, "lr must be"),
        ({"weight_decay": -1}, "weight_decay must be"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"epochs": 2.5}, "epochs must be a positive integer"),
        ({"momentum": 1.5}, "momentum must be"),
        ({"label_smoothing": 1.0}, "label_smoothing must be a number in [0, 1)"),
        ({"val_size": 0.5, "ema": 1.0}, "ema is a decay below 1"),
        ({"model": 3}, "model must be a string"),
        ({"model_options": [1]}, "model_options must be a table"),
        ({"seed": "x"}, "seed must be an integer"),
        ({"learning_rate": 0.1}, "unknown option(s) learning_rate"),
    ],
)
def test_bad_values_are_refused(values, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_dict(values)
    assert message in str(e.value)


def test_augment_spec():
    assert parse_augment("none", (3, 32, 32), 10) is None
    assert parse_augment("auto", (1, 8, 8), 10) is None  # digits must not be mirrored
    auto = parse_augment("auto", (3, 32, 32), 10)
    assert isinstance(auto, Compose)
    assert isinstance(auto[0], RandomHorizontalFlip) and isinstance(auto[1], RandomCrop)
    assert auto[1].padding == 4  # size/8
    crop = parse_augment("crop:2", (3, 32, 32), 10)
    assert isinstance(crop, RandomCrop) and crop.padding == 2
    mix = parse_augment("flip:0.3,mixup:0.4", (3, 32, 32), 10)
    assert mix[0].p == 0.3 and isinstance(mix[1], Mixup) and mix[1].alpha == 0.4
    for bad, message in [
        ("spin", "unknown augmentation"),
        ("crop:x", "not a number"),
        ("mixup,flip", "must be the last"),
        ("flip:2", "probability"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_augment(bad, (3, 32, 32), 10)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("altflip,progressive:2:3", r"progressive:2:3.*scale must be a number in \(0, 1\]"),
        ("flip,spin", "unknown augmentation 'spin'"),
        ("crop:two", "not a number"),
        ("mixup,flip", "must be the last"),
        ("progressive", "needs E"),
    ],
)
def test_a_bad_augment_spec_is_refused_with_the_other_settings(spec, message):
    """Before any data is loaded, not when the loaders are built."""
    with pytest.raises(ConfigError, match=message):
        TrainConfig(augment=spec)


def test_an_augment_spec_that_depends_on_the_image_size_is_left_to_the_loader():
    config = TrainConfig(augment="flip,crop:40")  # fits images larger than 40 pixels
    assert parse_augment(config.augment, (3, 96, 96), 10)[1].padding == 40


def test_the_old_name_wd_is_read_as_weight_decay_with_a_warning(tmp_path):
    """Old run folders' config.json and TOML files say `wd`; they still load, with a
    DeprecationWarning, and an override of the new name replaces the old file's value."""
    with pytest.warns(DeprecationWarning, match="wd is now called weight_decay"):
        cfg = TrainConfig.from_dict({"wd": 1e-3})
    assert cfg.weight_decay == 1e-3
    path = tmp_path / "old.toml"
    path.write_text("wd = 2e-3\n")
    with pytest.warns(DeprecationWarning):
        assert TrainConfig.load(path).weight_decay == 2e-3
    with pytest.warns(DeprecationWarning):
        assert TrainConfig.load(path, weight_decay=3e-3).weight_decay == 3e-3
    saved = {**TrainConfig().to_dict()}
    saved["wd"] = saved.pop("weight_decay")  # what a run written before the rename saved
    with pytest.warns(DeprecationWarning):
        assert TrainConfig.from_dict(saved) == TrainConfig()
    with pytest.raises(ConfigError, match="wd is the old name of weight_decay"):
        TrainConfig.from_dict({"wd": 1e-3, "weight_decay": 1e-3})
    with pytest.warns(DeprecationWarning, match="TrainConfig.wd is now"):
        assert cfg.wd == 1e-3
    assert TrainConfig.ALIASES == {"wd": "weight_decay"}


def test_every_setting_has_its_help_and_its_listed_names_exist():
    import dataclasses
    import importlib

    for f in dataclasses.fields(TrainConfig):
        help_text = f.metadata.get("help")
        assert help_text and help_text.endswith("."), f.name
        ref = f.metadata.get("names")
        assert ("{names}" in help_text) == bool(ref), f.name
        if ref:
            module, _, attr = ref.partition(":")
            assert hasattr(importlib.import_module(module), attr), ref
