"""The settings of a training run, in one place: defaults, a TOML file, command-line overrides.

    config = TrainConfig.load("run.toml", lr=0.1)      # the file, then overrides on top

Names follow the command line (`--batch-size` is `batch_size`). Tables `[model_options]`,
`[opt_options]` and `[schedule_options]` pass keyword arguments to the model builder, the
optimiser and the schedule. Each field
carries its help beside it (`setting`): the command-line options of `striate train`, `lr-find`,
`search` and `doctor` are built from it (`striate.cli.options`), so a default or a help text is
written once. An old name (`wd`) is still read, with a DeprecationWarning (`ALIASES`).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import tomllib

from striate.checks import number, positive_int
from striate.errors import ConfigError


def setting(
    default: Any = None,
    help: str = "",  # noqa: A002 - the word the command line uses
    *,
    factory: Any = None,
    flag: str | None = None,
    names: str | None = None,
    shown: str | None = None,
) -> Any:
    """A TrainConfig field with its help beside it. `help` may hold `{names}`: the names
    registered in `names` ("module:ATTR", a registry, a tuple of names or a function returning
    them), listed when help is shown. `flag`: the command-line flag where it is not
    --field-name; `shown`: the default as help states it, where the value alone does not say it."""
    metadata = {"help": help, "flag": flag, "names": names, "shown": shown}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every option of `striate train`; the defaults train the small ConvNet on digits."""

    # an old name → its field: read from TOML files, old runs' config.json and search spaces
    ALIASES: ClassVar[dict[str, str]] = {"wd": "weight_decay"}

    data: str = setting("digits", "Dataset name (see `striate datasets`) or path.")
    root: str | None = setting(None, "Folder holding the dataset's files.")
    model: str = setting(
        "convnet_small",
        "Model (`striate models show NAME` describes one): {names}.",
        names="striate.models:available",
    )
    model_options: dict[str, Any] = setting(
        help="Keyword arguments of the model builder (a [model_options] table).", factory=dict
    )
    init: str = setting(
        "default", "Weight initialisation: {names}.", names="striate.models.init:INIT_SCHEMES"
    )
    weights: str | None = setting(
        None,
        "Start from these weights: a .safetensors file, a torch state dict (read with "
        "weights_only=True), a run folder, or the model's named weights (imagenet for "
        "efficientnet_lite0); a head of another size starts afresh.",
    )
    finetune: str = setting(
        "all",
        "head (train the classifier on frozen features), last:N (the last N layer groups) or all.",
    )
    lr_factor: float = setting(
        1.0, "Discriminative learning rates: each layer group before the head gets lr / F^k."
    )
    epochs: int | None = setting(30, "Epochs to train.")
    steps: int | None = setting(None, "Optimiser steps to train (instead of --epochs).")
    batch_size: int = setting(64, "Images per batch.")
    opt: str = setting("sgd", "Optimiser: {names}.", names="striate.engine.optim:OPTIMIZERS")
    lr: float = setting(0.1, "Learning rate (the peak for onecycle).")
    weight_decay: float = setting(5e-4, "Weight decay (not on biases and norm layers).")
    momentum: float | None = setting(
        None, "Momentum of SGD/RMSProp, or Adam's beta1.", shown="0.9 for SGD, 0 for RMSProp"
    )
    nesterov: bool = setting(True, "Nesterov momentum with opt sgd (other optimisers ignore it).")
    opt_options: dict[str, Any] = setting(
        help="The optimiser's own settings (an [opt_options] table), e.g. muon's aux_lr.",
        factory=dict,
    )
    schedule: str = setting(
        "onecycle",
        "Learning-rate schedule, stepped at every optimiser step: {names}.",
        names="striate.engine.schedules:SCHEDULES",
    )
    schedule_options: dict[str, Any] = setting(
        help="Keyword arguments of the schedule (a [schedule_options] table).", factory=dict
    )
    loss: str = setting("cross_entropy", "Loss: {names}.", names="striate.engine.losses:LOSSES")
    label_smoothing: float = setting(0.0, "Label smoothing.")
    augment: str = setting(
        "auto",
        "Augmentation: none; auto (flip and crop for colour images, nothing for grey ones); or "
        "comma-separated items, e.g. flip,crop:4,cutout:8,mixup:0.2 (mixup or cutmix last). "
        "The items: {names}.",
        names="striate.data.augment_spec:augment_help",
    )
    precision: str = setting(
        "auto", "Precision: {names}.", names="striate.engine.precision:PRECISIONS"
    )
    channels_last: bool | str = setting("auto", "Channels-last memory format: auto, true or false.")
    clip_grad: float | None = setting(None, "Clip the gradient norm to this value.")
    ema: float | None = setting(
        None, "Evaluate an exponential moving average of the weights with this decay (e.g. 0.999)."
    )
    lookahead: float | None = setting(
        None,
        "Lookahead weight averaging with airbench's schedule and this per-step decay (e.g. 0.95).",
    )
    early_stopping: int | None = setting(
        None, "Stop after this many epochs without validation improvement."
    )
    log_grad_norm: bool = setting(False, "Log the gradient norm of every step to steps.csv.")
    snapshots: bool | int = setting(  # True: at each SGDR restart; N: every N epochs
        False,
        "Save the model at the end of each warm-restart cycle of --schedule sgdr, in "
        "RUN/snapshots/snapshot-K, for `striate ensemble --snapshots RUN`.",
        flag="--snapshots/--no-snapshots",
        shown="off",
    )
    tta: bool | str = setting(
        False,
        "Test-time augmentation: none, flip, translate[:N], flip,translate[:N] or "
        "tencrop[:S1/S2/...] (10 crops per scale).",
        shown="none",
    )
    sampling: str = setting(
        "uniform",
        "Minibatch sampling: uniform (a shuffled pass per epoch); sgds (Zakka's SGD-S v1: after "
        "--sgds-transient plain epochs, draw images in proportion to their last training loss, "
        "and after each epoch set aside the easiest --sgds-drop of them, 1 % coming back); "
        "sgds-unbiased (the same draws, each loss weighted by 1/(N·p) in the mean).",
    )
    sgds_transient: int = setting(1, "SGD-S: epochs of plain shuffled SGD before sampling by loss.")
    sgds_drop: float = setting(
        0.1, "SGD-S: fraction of the active images with the lowest losses set aside per epoch."
    )
    val_size: float = setting(0.1, "Validation fraction (or count) held out of the training split.")
    train_size: int | None = setting(None, "Stratified subset of the training split.")
    test_size: int | None = setting(None, "Stratified subset of the test split.")
    seed: int = setting(0, "Seed for the split, initialisation, order and augmentation.")
    device: str = setting("auto", "Device: auto, cpu, cuda or cuda:N.")
    threads: int | None = setting(
        None,
        "CPU threads for torch's operations (torch.set_num_threads); give it for the same "
        "threads whatever else the machine is running.",
        shown="one per core not kept busy by other processes",
    )
    out: str | None = setting(
        None,
        "Run folder; one that already holds results needs --overwrite.",
        shown="runs/train/DATA-MODEL, or -2, -3, ... when taken",
    )

    def __post_init__(self) -> None:
        self.validate()
        # here, not at the top: the CLI reads this module's fields on every run, without torch
        from striate.models.registry import canonical_name

        self.model = canonical_name(self.model)  # --model convnet-small is convnet_small

    @property
    def wd(self) -> float:
        """The old name of `weight_decay`, for one release."""
        warnings.warn(
            "TrainConfig.wd is now TrainConfig.weight_decay; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.weight_decay

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
        """Defaults, then the TOML file at `path`, then `overrides` (None values are skipped)."""
        values = read_toml(path) if path is not None else {}
        return cls.from_dict(merge(values, overrides))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = canonical(values)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)}; the options are "
                f"{', '.join(sorted(names))}"
            )
        if values.get("steps") is not None and "epochs" not in values:
            values = {**values, "epochs": None}  # steps given alone replace the default epochs
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for name in (
            "data",
            "model",
            "init",
            "opt",
            "schedule",
            "loss",
            "augment",
            "precision",
            "device",
            "sampling",
        ):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in TABLES:
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a table of keyword arguments")
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("give exactly one of epochs or steps")
        for name in ("epochs", "steps", "train_size", "test_size", "early_stopping", "threads"):
            positive_int("", name, getattr(self, name), allow_none=True)
        positive_int("", "batch_size", self.batch_size)
        number("", "lr", self.lr, low=0, low_open=True)
        number("", "weight_decay", self.weight_decay, low=0)
        number("", "momentum", self.momentum, low=0, high=1, allow_none=True)
        number("", "label_smoothing", self.label_smoothing, low=0, high=1, high_open=True)
        number("", "val_size", self.val_size, low=0)
        number("", "lr_factor", self.lr_factor, low=1)
        if not isinstance(self.finetune, str):
            raise ConfigError(f"finetune must be 'head', 'last:N' or 'all', got {self.finetune!r}")
        if self.val_size >= 1.0 and not float(self.val_size).is_integer():
            raise ConfigError(f"val_size is a fraction below 1 or a count, got {self.val_size}")
        number("", "clip_grad", self.clip_grad, low=0, low_open=True, allow_none=True)
        for name, example in (("ema", 0.999), ("lookahead", 0.95)):
            decay = getattr(self, name)
            if decay is not None:
                number("", name, decay, low=0, low_open=True, high=1)
                if decay >= 1.0:
                    raise ConfigError(f"{name} is a decay below 1 (e.g. {example}), not {decay}")
        from striate.data.augment_spec import check_augment  # (torch: see __post_init__)
        from striate.engine.optim import check_options
        from striate.evaluate.tta import parse_tta

        check_augment(self.augment)
        parse_tta(self.tta)
        if self.opt_options:
            check_options(self.opt, self.opt_options)
        if not isinstance(self.snapshots, bool) and (
            not isinstance(self.snapshots, int) or self.snapshots < 1
        ):
            raise ConfigError(
                f"snapshots must be true/false or a positive number of epochs, got "
                f"{self.snapshots!r}"
            )
        if self.snapshots is True and self.schedule != "sgdr":
            raise ConfigError(
                f"snapshots are taken at the warm restarts of schedule 'sgdr', and this run uses "
                f"{self.schedule!r}: use --schedule sgdr, or --snapshot-every N (epochs)"
            )
        if self.sampling not in SAMPLINGS:
            raise ConfigError(
                f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}"
            )
        if isinstance(self.sgds_transient, bool) or not isinstance(self.sgds_transient, int):
            raise ConfigError(f"sgds_transient must be a whole number, got {self.sgds_transient!r}")
        if self.sgds_transient < 0:
            raise ConfigError(f"sgds_transient must be >= 0, got {self.sgds_transient}")
        number("", "sgds_drop", self.sgds_drop, low=0, high=1, high_open=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")


SAMPLINGS = ("uniform", "sgds", "sgds-unbiased")
TABLES = ("model_options", "opt_options", "schedule_options")  # keyword arguments, merged by key


def canonical(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the old names of `TrainConfig.ALIASES` read as the new ones (with a
    DeprecationWarning); both names at once are refused."""
    old = [k for k in values if k in TrainConfig.ALIASES]
    if not old:
        return values
    out = dict(values)
    for k in old:
        new = TrainConfig.ALIASES[k]
        if new in out:
            raise ConfigError(f"{k} is the old name of {new}: give {new} alone")
        warnings.warn(
            f"the option {k} is now called {new}; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=3,
        )
        out[new] = out.pop(k)
    return out


def merge(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`values` with `overrides` on top: None values skipped, and the keyword tables
    (`TABLES`) merged key by key rather than replaced. Old names
    (`wd`) count as the new ones, so an override replaces an old file's value."""
    out = dict(canonical(values))
    for k, v in canonical({k: v for k, v in overrides.items() if v is not None}).items():
        if k in TABLES and isinstance(out.get(k), dict):
            v = {**out[k], **v}
        out[k] = v
    return out


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """The options in a TOML file, with a clear error for a missing or malformed one."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError as e:
        raise ConfigError(f"config file {p} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from e
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p} is not valid TOML: {e}") from e
    return {k.replace("-", "_"): v for k, v in values.items()}
