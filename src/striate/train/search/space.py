"""The search space: a searched hyper-parameter (`Param`), its command-line and TOML forms, and
its check against the training configuration it is applied to."""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from striate import models  # noqa: F401  (registers the families)
from striate.checks import is_number
from striate.errors import ConfigError
from striate.models.registry import builder
from striate.train.config import TrainConfig

if TYPE_CHECKING:
    import optuna

KINDS = ("log", "uniform", "int", "logint", "choice")
# fields a trial may not change: they define the data and where things go, or are set per trial
FIXED_FIELDS = ("data", "root", "val_size", "train_size", "test_size", "seed", "device", "out")
# an old name of a TrainConfig field -> the field (wd -> weight_decay)
_ALIASES: dict[str, str] = getattr(TrainConfig, "ALIASES", {})
_FORMAT = "kind:LOW:HIGH (kind log, uniform, int or logint) or choice:A,B,C"


@dataclass(frozen=True)
class Param:
    """One searched hyper-parameter: a range (`log`/`uniform` floats, `int`/`logint` integers;
    `log*` uniform in log space) or a list of `choices`."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def log(self) -> bool:
        return self.kind in ("log", "logint")

    @property
    def numeric(self) -> bool:
        return self.kind != "choice"

    def spec(self) -> str:
        """The command-line form, e.g. `log:0.0001:1` (bounds to 4 significant digits)."""
        if self.kind == "choice":
            return "choice:" + ",".join(str(c) for c in self.choices)
        return f"{self.kind}:{self.low:.4g}:{self.high:.4g}"

    def as_list(self) -> list[Any]:
        """The exact JSON/TOML form: `["log", 0.0001, 1.0]` or `["choice", [32, 64]]`."""
        if self.kind == "choice":
            return ["choice", list(self.choices)]
        return [self.kind, self.low, self.high]

    def distribution(self) -> optuna.distributions.BaseDistribution:
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(self.choices)
        if self.kind in ("int", "logint"):
            return d.IntDistribution(int(self.low), int(self.high), log=self.log)
        return d.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, self.choices)
        if self.kind in ("int", "logint"):
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def position(self, value: Any) -> float | None:
        """Where `value` lies in the range, 0 (low) to 1 (high), on a log scale for log kinds;
        for numeric choices its rank; None where that means nothing."""
        if self.kind == "choice":
            nums = [c for c in self.choices if is_number(c)]
            if len(nums) != len(self.choices) or len(nums) < 3 or not is_number(value):
                return None
            ordered = sorted(nums)
            return ordered.index(value) / (len(ordered) - 1) if value in ordered else None
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return (v - lo) / (hi - lo)


def _scalar(text: str) -> Any:
    """A choice from the command line: an int, a float, true/false/none, else the string."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(t)
        except ValueError:
            pass
    return t


def make_param(name: str, kind: str, *values: Any) -> Param:
    """A checked Param: `make_param("lr", "log", 1e-4, 1)`, `make_param("b", "choice", [32])`."""
    name = str(name).strip().replace("-", "_")
    if not name:
        raise ConfigError(f"a searched parameter needs a name: NAME={_FORMAT}")
    if kind not in KINDS:
        raise ConfigError(
            f"{name}: unknown kind {kind!r}; use {_FORMAT}, e.g. lr=log:1e-4:1, "
            f"dropout=uniform:0:0.5, batch_size=choice:32,64,128"
        )
    if kind == "choice":
        choices = values[0] if len(values) == 1 and isinstance(values[0], (list, tuple)) else values
        choices = tuple(choices)
        if not choices:
            raise ConfigError(f"{name}: choice needs at least one value, e.g. choice:32,64,128")
        for c in choices:
            if not (c is None or isinstance(c, (bool, int, float, str))):
                raise ConfigError(
                    f"{name}: a choice must be a number, string, bool or none, got {c!r}"
                )
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"{name}: the choices {list(choices)} repeat a value")
        return Param(name, kind, choices=choices)
    if len(values) != 2:
        raise ConfigError(f"{name}: {kind} needs LOW and HIGH, e.g. {name}={kind}:1e-4:1")
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{name}: the bounds of {kind} must be numbers, got {values[0]!r} and {values[1]!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{name}: the bounds must be finite, got {low:g} and {high:g}")
    if low >= high:
        raise ConfigError(
            f"{name}: the low bound {low:g} must be below the high bound {high:g} "
            f"(for a fixed value set the option itself, not a search range)"
        )
    if kind in ("log", "logint") and low <= 0:
        raise ConfigError(
            f"{name}: a log range needs positive bounds, got {low:g}..{high:g}; use a small "
            f"positive low (e.g. {name}=log:1e-6:{high:g}) or uniform:{low:g}:{high:g}"
        )
    if kind in ("int", "logint"):
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"{name}: {kind} needs whole-number bounds, got {low:g}..{high:g}")
        return Param(name, kind, int(low), int(high))
    return Param(name, kind, low, high)


def parse_param(text: str) -> Param:
    """`lr=log:1e-4:1`, `dropout=uniform:0:0.5`, `batch_size=choice:32,64,128` → Param."""
    if "=" not in text:
        raise ConfigError(f"search parameter {text!r} is not NAME={_FORMAT} (e.g. lr=log:1e-4:1)")
    name, spec = text.split("=", 1)
    return parse_spec(name, spec)


def parse_spec(name: str, spec: Any) -> Param:
    """A Param from a string `kind:...`, a sequence `("log", 1e-4, 1)` / `("choice", [32, 64])`,
    or a plain list of choices (as a TOML `[search]` table may give)."""
    if isinstance(spec, Param):
        return spec
    if isinstance(spec, str):
        kind, _, rest = spec.strip().partition(":")
        kind = kind.strip().lower()
        if kind == "choice":
            return make_param(name, kind, [_scalar(v) for v in rest.split(",") if v.strip()])
        if kind not in KINDS:
            return make_param(name, kind)  # the error names the kinds
        parts = rest.split(":") if rest else []
        return make_param(name, kind, *parts)
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], str) and spec[0] in KINDS:
        return make_param(name, spec[0], *spec[1:])
    if isinstance(spec, (list, tuple)):
        return make_param(name, "choice", list(spec))
    raise ConfigError(
        f"{name}: cannot read the search range {spec!r}; write it as {_FORMAT}, e.g. "
        f'"log:1e-4:1", or as ["log", 1e-4, 1] or ["choice", [32, 64]] in TOML'
    )


def parse_space(spec: Iterable[str] | Mapping[str, Any]) -> dict[str, Param]:
    """The search space from command-line strings (`lr=log:1e-4:1`) or a mapping
    (`{"lr": ("log", 1e-4, 1), "batch_size": ("choice", [32, 64, 128])}`, a TOML table)."""
    params = (
        [parse_spec(k, v) for k, v in spec.items()]
        if isinstance(spec, Mapping)
        else [p if isinstance(p, Param) else parse_param(p) for p in spec]
    )
    space: dict[str, Param] = {}
    for p in params:
        if p.name in space:
            raise ConfigError(f"{p.name} is searched twice; give one range for it")
        space[p.name] = p
    return space


def _int_field(name: str) -> bool:
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    t = types.get(name, "")
    return "int" in t and "float" not in t and "bool" not in t


def _model_options(model: str) -> list[str]:
    return list(inspect.signature(builder(model)).parameters)[2:]


def _target(name: str, config: TrainConfig) -> tuple[str, str]:
    """Where a searched name goes: ("field", NAME), ("model_options", X) or ("schedule_options",
    X). A bare name that is no TrainConfig field but an argument of the model is a model
    option (so `dropout` searches the ConvNet's dropout)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    name = _ALIASES.get(name, name)  # an old name of a field (wd) searches the field
    if "." in name:
        table, _, key = name.partition(".")
        if table not in ("model_options", "schedule_options") or not key:
            raise ConfigError(
                f"unknown search parameter {name!r}: a dotted name is model_options.X or "
                f"schedule_options.X"
            )
        if table == "model_options" and key not in _model_options(config.model):
            raise ConfigError(
                f"unknown search parameter {name!r}: model {config.model!r} has no option "
                f"{key!r}; its options are {', '.join(_model_options(config.model)) or 'none'}"
            )
        return table, key
    if name in FIXED_FIELDS:
        raise ConfigError(
            f"{name} cannot be searched: it is fixed for the whole search (every trial uses the "
            f"same data split and its own seed); set it as an option instead"
        )
    if name in fields:
        if name in ("model_options", "schedule_options"):
            raise ConfigError(f"search {name}.X for one keyword argument, not the whole table")
        return "field", name
    if name in _model_options(config.model):
        return "model_options", name
    raise ConfigError(
        f"unknown search parameter {name!r}: not an option of striate train "
        f"({', '.join(sorted(fields - set(FIXED_FIELDS)))}) nor of model {config.model!r} "
        f"({', '.join(_model_options(config.model)) or 'none'})"
    )


def apply_params(config: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """`config` with the sampled `params` set (checked like any configuration)."""
    values = config.to_dict()
    values["model_options"] = dict(values["model_options"])
    values["schedule_options"] = dict(values["schedule_options"])
    for name, v in params.items():
        table, key = _target(name, config)
        if table == "field":
            values[key] = v
        else:
            values[table][key] = v
    if "steps" in params and "epochs" not in params:
        values["epochs"] = None
    if "epochs" in params and "steps" not in params:
        values["steps"] = None
    return TrainConfig.from_dict(values)


def check_space(space: Mapping[str, Param], config: TrainConfig) -> dict[str, Param]:
    """The space checked against `config`: every name known, every bound a valid setting; a
    range over an integer option (batch_size, epochs) samples integers."""
    if not space:
        raise ConfigError("nothing to search: give at least one --param NAME=kind:LOW:HIGH")
    checked: dict[str, Param] = {}
    targets: dict[tuple[str, str], str] = {}
    for name, p in space.items():
        if name in _ALIASES:
            warnings.warn(
                f"the option {name} is now called {_ALIASES[name]}; search {_ALIASES[name]} "
                f"(the old name goes in the next release)",
                DeprecationWarning,
                stacklevel=2,
            )
        table, key = _target(name, config)
        if (table, key) in targets:
            raise ConfigError(
                f"{targets[table, key]} and {name} set the same option: give one range for it"
            )
        targets[table, key] = name
        if table == "field" and _int_field(key) and p.kind in ("log", "uniform"):
            if not (float(p.low).is_integer() and float(p.high).is_integer()):
                raise ConfigError(f"{name} is a whole number: give whole-number bounds")
            p = Param(p.name, "logint" if p.log else "int", int(p.low), int(p.high))
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        for v in values:
            try:
                apply_params(config, {name: v})
            except ConfigError as e:
                raise ConfigError(f"search range of {name}: {e}") from None
        checked[name] = p
    return checked


def space_as_dict(space: Mapping[str, Param]) -> dict[str, list[Any]]:
    """The space in its exact JSON form, `{"lr": ["log", 0.0001, 1.0]}` (`parse_space` reads it)."""
    return {n: p.as_list() for n, p in space.items()}
