"""The settings of a training run, in one place: defaults, a TOML file, command-line overrides.

    config = TrainConfig.load("run.toml", lr=0.1)      # the file, then overrides on top

Names follow the command line (`--batch-size` is `batch_size`). Tables `[model_options]` and
`[schedule_options]` pass keyword arguments to the model builder and the schedule.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from striate.errors import ConfigError


@dataclass
class TrainConfig:
    """Every option of `striate train`; the defaults train the small ConvNet on digits."""

    data: str = "digits"
    root: str | None = None
    model: str = "convnet_small"
    model_options: dict[str, Any] = field(default_factory=dict)
    init: str = "default"
    weights: str | None = None
    finetune: str = "all"
    lr_factor: float = 1.0
    epochs: int | None = 30
    steps: int | None = None
    batch_size: int = 64
    opt: str = "sgd"
    lr: float = 0.1
    wd: float = 5e-4
    momentum: float | None = None  # the optimiser's usual value (0.9 for SGD, 0 for RMSProp)
    nesterov: bool = True  # with opt "sgd"; other optimisers ignore it
    schedule: str = "onecycle"
    schedule_options: dict[str, Any] = field(default_factory=dict)
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    augment: str = "auto"
    precision: str = "auto"
    channels_last: bool | str = "auto"
    clip_grad: float | None = None
    ema: float | None = None
    lookahead: float | None = None
    early_stopping: int | None = None
    snapshots: bool | int = False  # True: at each SGDR restart; N: every N epochs
    tta: bool | str = False
    val_size: float = 0.1
    train_size: int | None = None
    test_size: int | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None

    def __post_init__(self) -> None:
        self.validate()
        from striate.models.registry import canonical_name

        self.model = canonical_name(self.model)  # --model convnet-small is convnet_small

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
        """Defaults, then the TOML file at `path`, then `overrides` (None values are skipped)."""
        values = read_toml(path) if path is not None else {}
        return cls.from_dict(merge(values, overrides))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
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
        def positive_int(name: str, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")

        def number(name: str, low: float, high: float = math.inf, *, open_low=False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > low if open_low else v >= low) and v <= high
            if not ok:
                bound = f"> {low}" if open_low else f">= {low}"
                raise ConfigError(
                    f"{name} must be a number {bound}"
                    + (f" and <= {high}" if high < math.inf else "")
                    + f", got {v!r}"
                )

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
        ):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("model_options", "schedule_options"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a table of keyword arguments")
        if (self.epochs is None) == (self.steps is None):
            raise ConfigError("give exactly one of epochs or steps")
        positive_int("epochs", allow_none=True)
        positive_int("steps", allow_none=True)
        positive_int("batch_size")
        positive_int("train_size", allow_none=True)
        positive_int("test_size", allow_none=True)
        positive_int("early_stopping", allow_none=True)
        number("lr", 0.0, open_low=True)
        number("wd", 0.0)
        if self.momentum is not None:
            number("momentum", 0.0, 1.0)
        number("label_smoothing", 0.0, 1.0)
        number("val_size", 0.0, 1.0)
        number("lr_factor", 1.0)
        if not isinstance(self.finetune, str):
            raise ConfigError(f"finetune must be 'head', 'last:N' or 'all', got {self.finetune!r}")
        if self.label_smoothing >= 1.0:
            raise ConfigError(f"label_smoothing must be below 1, got {self.label_smoothing}")
        if self.val_size >= 1.0 and not float(self.val_size).is_integer():
            raise ConfigError(f"val_size is a fraction below 1 or a count, got {self.val_size}")
        if self.clip_grad is not None:
            number("clip_grad", 0.0, open_low=True)
        for name, example in (("ema", 0.999), ("lookahead", 0.95)):
            decay = getattr(self, name)
            if decay is not None:
                number(name, 0.0, 1.0, open_low=True)
                if decay >= 1.0:
                    raise ConfigError(f"{name} is a decay below 1 (e.g. {example}), not {decay}")
        from striate.evaluate.tta import parse_tta

        parse_tta(self.tta)
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")


def merge(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`values` with `overrides` on top: None values skipped, and the keyword tables
    (model_options, schedule_options) merged key by key rather than replaced."""
    out = dict(values)
    for k, v in overrides.items():
        if v is None:
            continue
        if k in ("model_options", "schedule_options") and isinstance(out.get(k), dict):
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
