"""Hyper-parameter search: random (or TPE) search in stages, coarse to fine, on an Optuna study.

    space = parse_space(["lr=log:1e-4:1", "wd=log:1e-6:1e-2", "dropout=uniform:0:0.5"])
    result = search(TrainConfig(data="digits"), space, stages=coarse_fine(20, 8), out="runs/s")
    result.best["config"]                      # the TrainConfig settings of the best trial

The practice of the reference lectures (cs231n lecture 6, "coarse -> fine cross-validation in
stages"): sample at random, in log space for scale parameters such as the learning rate and
weight decay; a coarse stage of many short trials (few epochs, maybe a subset of the training
images), then a fine stage of fewer, longer trials in a range narrowed around the best coarse
ones (`narrow`); stop a trial early when its loss exceeds 3× its initial loss ("if the cost is
ever > 3 * original cost, break out early"); choose on validation accuracy; and check that the
best value does not lie at the edge of a searched range (`edge_warnings`): the optimum may lie
beyond it.

Each stage is an Optuna study (`NAME-coarse`, `NAME-fine`; `NAME` for the one stage of
`trials`) stored in a journal file (`OUT/study.journal`) or a database URL, so several
processes (or machines) that point at it share the trials, and a search run again with the same
folder continues where it stopped: finished trials count toward the requested number, a trial
left running by a process that died is marked failed and queued to run again.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from striate._atomic import atomic_path, atomic_write
from striate.errors import ConfigError, StriateError
from striate.train.callbacks import Callback
from striate.train.config import TrainConfig

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

    from striate.train.trainer import Trainer

KINDS = ("log", "uniform", "int", "logint", "choice")
SAMPLERS = ("random", "tpe")
PRUNERS = ("none", "median", "percentile", "halving", "hyperband")
# fields a trial may not change: they define the data and where things go, or are set per trial
FIXED_FIELDS = ("data", "root", "val_size", "train_size", "test_size", "seed", "device", "out")
_NUMERIC_CHOICE = (int, float)
_FORMAT = "kind:LOW:HIGH (kind log, uniform, int or logint) or choice:A,B,C"


# --------------------------------------------------------------------------- the search space


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
            nums = [c for c in self.choices if _is_number(c)]
            if len(nums) != len(self.choices) or len(nums) < 3 or not _is_number(value):
                return None
            ordered = sorted(nums)
            return ordered.index(value) / (len(ordered) - 1) if value in ordered else None
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return (v - lo) / (hi - lo)


def _is_number(v: Any) -> bool:
    return isinstance(v, _NUMERIC_CHOICE) and not isinstance(v, bool)


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
    types = {f.name: str(f.type) for f in TrainConfig.__dataclass_fields__.values()}
    t = types.get(name, "")
    return "int" in t and "float" not in t and "bool" not in t


def _model_options(model: str) -> list[str]:
    import inspect

    from striate import models  # noqa: F401  (registers the families)
    from striate.models.registry import _builder

    return list(inspect.signature(_builder(model)).parameters)[2:]


def _target(name: str, config: TrainConfig) -> tuple[str, str]:
    """Where a searched name goes: ("field", NAME), ("model_options", X) or ("schedule_options",
    X). A bare name that is no TrainConfig field but an argument of the model is a model
    option (so `dropout` searches the ConvNet's dropout)."""
    fields = set(TrainConfig.__dataclass_fields__)
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
    for name, p in space.items():
        table, key = _target(name, config)
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


def narrow(
    space: Mapping[str, Param],
    trials: Sequence[Mapping[str, Any]],
    keep: float = 0.25,
    min_keep: int = 3,
    margin: float = 0.5,
) -> dict[str, Param]:
    """The range for the next stage: around the best trials of the last one.

    The best `keep` fraction of the completed trials (at least `min_keep`, by val_acc) spans, in
    each numeric parameter, [lo, hi] (in log space for log kinds); the new range is that span
    widened by `margin` of its width on each side (at least 5% of the old range), clipped to the
    old range. A choice keeps the values the best trials took. With no completed trial the
    space is returned as it was.
    """
    done = [t for t in trials if t.get("state") == "complete" and _finite(t.get("val_acc"))]
    if not done:
        return dict(space)
    done.sort(key=lambda t: -t["val_acc"])
    top = done[: min(len(done), max(min_keep, math.ceil(keep * len(done))))]
    out: dict[str, Param] = {}
    for name, p in space.items():
        values = [t["params"][name] for t in top if name in t.get("params", {})]
        if not values:
            out[name] = p
            continue
        if p.kind == "choice":
            kept = tuple(c for c in p.choices if c in values)
            out[name] = Param(name, "choice", choices=kept or p.choices)
            continue
        f = math.log if p.log else float
        inv = math.exp if p.log else float
        lo_all, hi_all = f(p.low), f(p.high)
        lo, hi = min(f(v) for v in values), max(f(v) for v in values)
        pad = max(margin * (hi - lo), 0.05 * (hi_all - lo_all))
        # at a bound: the bound itself (exp(log(x)) may round)
        new_lo = p.low if lo - pad <= lo_all else max(p.low, inv(lo - pad))
        new_hi = p.high if hi + pad >= hi_all else min(p.high, inv(hi + pad))
        if p.kind in ("int", "logint"):
            new_lo, new_hi = math.floor(new_lo + 1e-9), math.ceil(new_hi - 1e-9)
            if new_lo >= new_hi:
                new_lo, new_hi = max(p.low, new_lo - 1), min(p.high, new_hi + 1)
            out[name] = Param(name, p.kind, int(new_lo), int(new_hi))
        else:
            out[name] = Param(name, p.kind, float(new_lo), float(new_hi))
    return out


def edge_warnings(
    space: Mapping[str, Param], params: Mapping[str, Any], stage: str = "", edge: float = 0.1
) -> list[str]:
    """A warning for each parameter whose best value lies within `edge` (a fraction of the
    range, in log space for log kinds) of a bound of its searched range, or is the smallest or
    largest of three or more numeric choices: the optimum may lie beyond the range."""
    warnings = []
    where = f" ({stage} stage)" if stage else ""
    for name, p in space.items():
        if name not in params:
            continue
        pos = p.position(params[name])
        if pos is None:
            continue
        side = "lower" if pos <= edge else "upper" if pos >= 1 - edge else None
        if side is None:
            continue
        shown = p.spec().partition(":")[2].replace(":", "..")
        warnings.append(
            f"best {name}={_short(params[name])} lies at the {side} edge of the searched range "
            f"{shown}{where}: the optimum may lie beyond it; widen the range"
        )
    return warnings


# --------------------------------------------------------------------------- stages, callbacks


@dataclass(frozen=True)
class Stage:
    """One round of trials: `trials` of them, each `epochs` long (None: the config's), on
    `train_size` images of the training part (None: all). A stage after the first searches the
    range narrowed around the best `keep` fraction of the previous stage's trials (`narrow`)."""

    name: str
    trials: int
    epochs: int | None = None
    train_size: int | None = None
    keep: float = 0.25

    def __post_init__(self) -> None:
        for key in ("trials", "epochs", "train_size"):
            v = getattr(self, key)
            if v is None and key != "trials":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"stage {self.name}: {key} must be a positive integer, got {v!r}")
        if not 0 < self.keep <= 1:
            raise ConfigError(f"stage {self.name}: keep must be a fraction in (0, 1]")


def coarse_fine(
    coarse: int,
    fine: int,
    *,
    coarse_epochs: int | None = None,
    fine_epochs: int | None = None,
    coarse_train_size: int | None = None,
    keep: float = 0.25,
) -> list[Stage]:
    """The two stages of the lectures: many short coarse trials, then fewer longer ones in the
    narrowed range (a stage with 0 trials is left out)."""
    stages = []
    if coarse:
        stages.append(Stage("coarse", coarse, coarse_epochs, coarse_train_size))
    if fine:
        stages.append(Stage("fine", fine, fine_epochs, None, keep))
    if not stages:
        raise ConfigError("no trials to run: give --trials N, or --coarse N and/or --fine M")
    return stages


class LossAbort(Callback):
    """Stop training when the loss exceeds `factor` × the loss of the first step (cs231n: "if
    the cost is ever > 3 * original cost, break out early"): the settings diverge."""

    def __init__(self, factor: float = 3.0) -> None:
        self.factor = factor
        self.initial: float | None = None
        self.reason: str | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.initial, self.reason = None, None

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if self.initial is None:
            self.initial = loss
        elif loss > self.factor * self.initial:
            self.reason = (
                f"loss {loss:.4g} exceeded {self.factor:g}x the initial loss {self.initial:.4g} "
                f"at step {trainer.step}"
            )
            trainer.should_stop = True
            trainer.stop_reason = self.reason


class ReportToTrial(Callback):
    """Reports the validation accuracy of each epoch to the Optuna trial, stops the training
    when the pruner says so, and keeps the trial's heartbeat fresh (so that a live trial is
    never taken for one left by a dead process)."""

    def __init__(self, trial: optuna.trial.Trial, heartbeat: float = 30.0) -> None:
        self.trial = trial
        self.heartbeat = heartbeat
        self.pruned: str | None = None
        self._beat = time.time()

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if time.time() - self._beat > self.heartbeat:
            self._beat = time.time()
            self.trial.set_user_attr("heartbeat", self._beat)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        acc = metrics.get("val_acc")
        if acc is None or not _finite(acc):
            return
        self.trial.report(float(acc), trainer.epoch)
        self._beat = time.time()
        self.trial.set_user_attr("heartbeat", self._beat)
        if trainer.step < trainer.total_steps and self.trial.should_prune():
            self.pruned = f"pruned after epoch {trainer.epoch} (val_acc {acc:.2%})"
            trainer.should_stop = True
            trainer.stop_reason = self.pruned


# --------------------------------------------------------------------------- storage, samplers


def open_storage(storage: str | None, out: Path | None) -> Any:
    """The Optuna storage: a database URL (sqlite:///x.db, postgresql://...) goes to Optuna
    as it is; a path (or None: OUT/study.journal) is a journal file that processes on one
    machine (or a shared file system) share; with neither, memory."""
    from optuna.storages import InMemoryStorage, JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if storage and "://" in storage:
        return storage
    path = Path(storage) if storage else (out / "study.journal" if out is not None else None)
    if path is None:
        return InMemoryStorage()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        # constant_liar: running trials count as bad, so parallel workers spread out
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, constant_liar=True)
    raise ConfigError(f"unknown sampler {kind!r}; choose one of {', '.join(SAMPLERS)}")


def make_pruner(kind: str | None) -> optuna.pruners.BasePruner:
    import optuna

    p = optuna.pruners
    makers = {
        "none": p.NopPruner,
        "median": lambda: p.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        "percentile": lambda: p.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=1),
        "halving": p.SuccessiveHalvingPruner,
        "hyperband": p.HyperbandPruner,
    }
    if (kind or "none") not in makers:
        raise ConfigError(f"unknown pruner {kind!r}; choose one of {', '.join(PRUNERS)}")
    return makers[kind or "none"]()


def _trial_sampler_seed(seed: int, stage: int, number: int) -> int:
    """Each trial's sampler seed follows from the search seed, the stage and the trial number,
    so trials sample the same values whichever process runs them."""
    return (seed * 1_000_003 + stage * 10_007 + number) % (2**31 - 1)


# --------------------------------------------------------------------------- the search


@dataclass
class SearchResult:
    """What a search found: every trial (sorted by val_acc, best first), the best one, each
    stage's space, warnings, and where the files went."""

    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    spaces: dict[str, dict[str, Param]]
    warnings: list[str] = field(default_factory=list)
    out: Path | None = None
    interrupted: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "trials": self.trials,
            "spaces": {s: {n: p.spec() for n, p in sp.items()} for s, sp in self.spaces.items()},
            "warnings": self.warnings,
            "interrupted": self.interrupted,
        }

    def plot(self) -> Figure:
        return plot_search(self.trials, self.spaces)


class _Searcher:
    def __init__(
        self,
        config: TrainConfig,
        space: dict[str, Param],
        stages: list[Stage],
        storage: Any,
        study_name: str,
        sampler: str,
        pruner: str | None,
        seed: int,
        abort_factor: float,
        progress: bool,
        poll: float,
        stale_after: float,
    ) -> None:
        self.config, self.space, self.stages = config, space, stages
        self.storage, self.study_name = storage, study_name
        self.sampler, self.pruner, self.seed = sampler, pruner, seed
        self.abort_factor, self.progress = abort_factor, progress
        self.poll, self.stale_after = poll, stale_after
        self.host, self.token = socket.gethostname(), uuid.uuid4().hex
        self.data: Any = None
        self.subsets: dict[int | None, Any] = {}
        self.running: set[int] = set()
        self.spaces: dict[str, dict[str, Param]] = {}
        self.studies: dict[int, optuna.Study] = {}
        self.records: list[dict[str, Any]] = []
        self.interrupted = False
        if progress:
            from rich.console import Console

            self.console = Console(stderr=True, soft_wrap=True)

    def say(self, text: str) -> None:
        if self.progress:
            from rich.markup import escape

            self.console.print(escape(text))

    # ---------------------------------------------------------------- studies

    def study(self, index: int) -> optuna.Study:
        if index in self.studies:
            return self.studies[index]
        import optuna

        stage = self.stages[index]
        # a named stage has its own study, whichever stages this call runs
        name = self.study_name if stage.name == "search" else f"{self.study_name}-{stage.name}"
        study = optuna.create_study(
            storage=self.storage,
            study_name=name,
            direction="maximize",
            sampler=make_sampler(self.sampler, self.seed),
            pruner=make_pruner(self.pruner),
            load_if_exists=True,
        )
        settings = {"epochs": stage.epochs, "train_size": stage.train_size, "keep": stage.keep}
        settings["config"] = {
            k: v for k, v in self.config.to_dict().items() if k not in ("out", "device")
        }
        _set_once(study, "settings", settings)
        saved = study.user_attrs["settings"]
        if saved != json.loads(json.dumps(settings)):
            diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            raise ConfigError(
                f"study {name!r} in this storage was run with other settings ({', '.join(diff)} "
                f"differ): continue it with the same options, or start another with --study NAME"
            )
        self.studies[index] = study
        return study

    def stage_space(self, index: int, study: optuna.Study) -> dict[str, Param]:
        """The first stage searches the given space; a later one the range narrowed around the
        best trials of the one before, fixed in the study once chosen."""
        if index == 0:
            space = self.space
        else:
            previous = self.spaces[self.stages[index - 1].name]
            before = [r for r in self.records if r["stage"] == self.stages[index - 1].name]
            space = narrow(previous, before, keep=self.stages[index].keep)
        _set_once(study, "space", {n: p.as_list() for n, p in space.items()})
        saved = parse_space(study.user_attrs["space"])
        if index == 0 and saved != space:
            raise ConfigError(
                f"study {study.study_name!r} searched another space "
                f"({', '.join(p.name + '=' + p.spec() for p in saved.values())}): continue it "
                f"with the same --param ranges, or start another with --study NAME"
            )
        return check_space(saved, self.config) if index else saved

    # ---------------------------------------------------------------- trials

    def counted(self, study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
        """The trials that use up the stage's budget: running or finished, neither waiting nor
        discarded (left by a dead process, or over the budget)."""
        from optuna.trial import TrialState

        return [
            t
            for t in study.get_trials(deepcopy=False)
            if t.state != TrialState.WAITING and "discarded" not in t.user_attrs
        ]

    def fail_stale(self, study: optuna.Study) -> None:
        """Mark failed the trials left RUNNING by a process that is gone (on this machine: its
        pid is not alive; elsewhere: no heartbeat for `stale_after` seconds), and queue their
        parameters to run again (once, whichever process saw it first)."""
        from optuna.trial import TrialState

        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t._trial_id in self.running or not self._stale(t):
                continue
            why = f"left running by process {t.user_attrs.get('pid')} on {t.user_attrs.get('host')}"
            if self._discard(study, t, why):
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
                self.say(f"trial {t.number} was {why}: marked failed, queued again")

    def _stale(self, t: optuna.trial.FrozenTrial) -> bool:
        attrs = t.user_attrs
        if attrs.get("host") == self.host and "pid" in attrs:
            pid = int(attrs["pid"])
            if pid == os.getpid():
                return True  # this process runs one trial at a time: not that one
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        beat = attrs.get("heartbeat")
        if beat is None and t.datetime_start is not None:
            beat = t.datetime_start.timestamp()
        return beat is not None and time.time() - float(beat) > self.stale_after

    def _discard(self, study: optuna.Study, t: optuna.trial.FrozenTrial, why: str) -> bool:
        """Mark a running trial failed and not counted; True for the process whose mark won."""
        from optuna.trial import TrialState

        storage = study._storage
        try:
            storage.set_trial_user_attr(t._trial_id, "discarded", f"{why} [{self.token}]")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another process finished or marked it first
            return False
        now = storage.get_trial(t._trial_id)
        return now.user_attrs.get("discarded", "").endswith(f"[{self.token}]")

    def run_stage(self, index: int) -> None:
        stage = self.stages[index]
        study = self.study(index)
        space = self.spaces[stage.name] = self.stage_space(index, study)
        if index:
            self.say(
                f"{stage.name} stage: " + ", ".join(f"{n}={p.spec()}" for n, p in space.items())
            )
        while True:
            self.fail_stale(study)
            counted = self.counted(study)
            if len(counted) < stage.trials:
                self.run_trial(index, study, space)
                if self.interrupted:
                    return
                continue
            from optuna.trial import TrialState

            if any(t.state == TrialState.RUNNING for t in counted):
                time.sleep(self.poll)  # other processes' trials: the next stage needs them
                continue
            break
        self.records = self.collect()

    def run_trial(self, index: int, study: optuna.Study, space: dict[str, Param]) -> None:
        from optuna.trial import TrialState

        from striate.train.run import RunData, build_model, build_trainer, finetune_setup
        from striate.train.run import loaders as make_loaders
        from striate.train.trainer import TrainingDiverged

        stage = self.stages[index]
        trial = study.ask()
        self.running.add(trial._trial_id)
        try:
            study.sampler = make_sampler(
                self.sampler, _trial_sampler_seed(self.seed, index, trial.number)
            )
            for k, v in (("pid", os.getpid()), ("host", self.host), ("heartbeat", time.time())):
                trial.set_user_attr(k, v)
            before = [t for t in self.counted(study) if t.number < trial.number]
            if len(before) >= stage.trials:  # another process took the last place
                frozen = study._storage.get_trial(trial._trial_id)
                self._discard(study, frozen, "over the stage's number of trials")
                return
            params = {name: p.suggest(trial) for name, p in space.items()}
            seed = self.config.seed + trial.number
            trial.set_user_attr("seed", seed)
            cfg = apply_params(self.config, params)
            values = cfg.to_dict()
            values["seed"] = seed
            if stage.epochs is not None and "epochs" not in params and "steps" not in params:
                values.update(epochs=stage.epochs, steps=None)
            cfg = TrainConfig.from_dict(values)
            trial.set_user_attr("config", {k: v for k, v in values.items() if k != "out"})
            start = time.perf_counter()
            abort, report = LossAbort(self.abort_factor), ReportToTrial(trial)
            state, reason, history = TrialState.COMPLETE, None, []
            try:
                data = RunData(self.train_subset(stage.train_size), *self._rest())
                model = build_model(cfg, data.train)
                extra = finetune_setup(cfg, model)
                from striate.train.recipes import model_callbacks

                extra["callbacks"] = (
                    extra.get("callbacks", []) + model_callbacks(model) + [abort, report]
                )
                trainer = build_trainer(cfg, None, progress=False, **extra)
                train, val, _ = make_loaders(cfg, data, trainer.device)
                history = trainer.fit(model, train, val)
                if trainer.interrupted:
                    self.interrupted = True
                elif abort.reason:
                    state, reason = TrialState.PRUNED, "aborted: " + abort.reason
                elif report.pruned:
                    state, reason = TrialState.PRUNED, report.pruned
            except TrainingDiverged as e:
                state, reason = TrialState.PRUNED, "aborted: " + str(e).splitlines()[0]
                history = trainer.history
            except StriateError as e:
                state, reason = TrialState.FAIL, f"failed: {e}"
            except BaseException:
                self.interrupted = True
                raise
            seconds = time.perf_counter() - start
            if self.interrupted:
                return
            accs = [h["val_acc"] for h in history if _finite(h.get("val_acc"))]
            best = int(np.argmax(accs)) if accs else None
            attrs = {
                "seconds": seconds,
                "epochs_run": len(history),
                "reason": reason,
                "val_acc": accs[best] if best is not None else None,
                "val_loss": history[best].get("val_loss") if best is not None else None,
                "train_loss": history[-1]["train_loss"] if history else None,
            }
            for k, v in attrs.items():
                trial.set_user_attr(k, v)
            if state == TrialState.COMPLETE and attrs["val_acc"] is None:
                state, reason = TrialState.FAIL, "failed: no validation accuracy (val_size 0?)"
                trial.set_user_attr("reason", reason)
            study.tell(trial, attrs["val_acc"] if state == TrialState.COMPLETE else None, state)
            self.running.discard(trial._trial_id)
            shown = "  ".join(f"{k}={_short(v)}" for k, v in params.items())
            acc = f"val_acc {attrs['val_acc']:.2%}" if attrs["val_acc"] is not None else ""
            self.say(
                f"{stage.name} #{trial.number}: {acc}{'  ' if acc else ''}{shown}  "
                f"({seconds:.1f} s){'  ' + reason if reason else ''}"
            )
        finally:
            if trial._trial_id in self.running:
                self.running.discard(trial._trial_id)
                frozen = study._storage.get_trial(trial._trial_id)
                if frozen.state == TrialState.RUNNING and self._discard(
                    study, frozen, "interrupted"
                ):
                    study.enqueue_trial(frozen.params, user_attrs={"retry_of": trial.number})

    def train_subset(self, size: int | None) -> Any:
        from striate.train.run import _subset

        if size not in self.subsets:
            self.subsets[size] = _subset(self.data.train, size, self.config.seed)
        return self.subsets[size]

    def _rest(self) -> tuple[Any, Any, Any]:
        return self.data.val, self.data.test, self.data.normalizer

    # ---------------------------------------------------------------- results

    def collect(self) -> list[dict[str, Any]]:
        """Every counted trial of every stage begun so far, as a record."""
        records = []
        for index, stage in enumerate(self.stages):
            if stage.name not in self.spaces:
                continue
            for t in self.counted(self.study(index)):
                a = t.user_attrs
                status = t.state.name.lower()
                if t.state.name == "PRUNED" and str(a.get("reason", "")).startswith("aborted"):
                    status = "aborted"
                records.append(
                    {
                        "stage": stage.name,
                        "trial": t.number,
                        "state": status,
                        "val_acc": a.get("val_acc"),
                        "val_loss": a.get("val_loss"),
                        "train_loss": a.get("train_loss"),
                        "epochs": a.get("epochs_run"),
                        "seconds": a.get("seconds"),
                        "seed": a.get("seed"),
                        "params": dict(t.params),
                        "reason": a.get("reason"),
                        "config": a.get("config"),
                    }
                )
        return sort_trials(records)


def sort_trials(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best validation accuracy first; trials without one last."""

    def key(r: dict[str, Any]) -> tuple:
        acc = r.get("val_acc")
        return (0, -acc) if _finite(acc) else (1, 0.0)

    return sorted(records, key=key)


def search(
    config: TrainConfig,
    space: Mapping[str, Any] | Iterable[str],
    *,
    trials: int | None = None,
    stages: Sequence[Stage] | None = None,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    study_name: str = "search",
    sampler: str = "random",
    pruner: str | None = "none",
    seed: int | None = None,
    abort_factor: float = 3.0,
    progress: bool = True,
    poll: float = 2.0,
    stale_after: float = 600.0,
) -> SearchResult:
    """Search `space` around `config`: `trials` trials, or the `stages` (e.g. `coarse_fine`).

    Each trial trains `config` with the sampled values and its own seed (config.seed + trial
    number) on the same train/val split, reports the validation accuracy of each epoch to
    Optuna (`pruner`: none, median, percentile, halving, hyperband) and stops early when the
    loss exceeds `abort_factor` × the initial loss (state "aborted"). The study lives in
    `storage` (default: the journal `OUT/study.journal`; a database URL such as
    sqlite:///s.db or postgresql://... for several machines); run again with the same `out`
    and `study_name` to continue. With `out` the folder gets results.csv, results.json,
    val_acc.png (val accuracy against each parameter) and best.toml (the best trial's config).
    """
    start = time.perf_counter()
    if (trials is None) == (stages is None):
        raise ConfigError("give exactly one of trials (one stage) or stages")
    if stages is None:
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise ConfigError(f"trials must be a positive integer, got {trials!r}")
        stages = [Stage("search", trials)]
    stages = list(stages)
    if len({s.name for s in stages}) != len(stages):
        raise ConfigError("stage names must differ")
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    make_pruner(pruner)
    if not (isinstance(abort_factor, (int, float)) and abort_factor > 1):
        raise ConfigError(f"abort_factor must be a number above 1, got {abort_factor!r}")
    if config.val_size <= 0:
        raise ConfigError("a search chooses on validation accuracy: give val_size > 0")
    space = check_space(parse_space(space), config)
    seed = config.seed if seed is None else seed
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        out_path.mkdir(parents=True, exist_ok=True)
    import optuna

    from striate.train.run import load_run_data

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = _Searcher(
        config,
        space,
        stages,
        open_storage(storage, out_path),
        study_name,
        sampler,
        pruner,
        seed,
        float(abort_factor),
        progress,
        poll,
        stale_after,
    )
    s.data = load_run_data(config)
    try:
        for index in range(len(stages)):
            s.run_stage(index)
            if s.interrupted:
                break
    except KeyboardInterrupt:
        s.interrupted = True
    records = s.collect()
    warnings: list[str] = []
    for stage in stages:
        done = [r for r in records if r["stage"] == stage.name and r["state"] == "complete"]
        if done and stage.name in s.spaces:
            warnings += edge_warnings(s.spaces[stage.name], done[0]["params"], stage.name)
    complete = [r for r in records if r["state"] == "complete"]
    last = stages[-1].name
    finals = [r for r in complete if r["stage"] == last] or complete
    best = finals[0] if finals else None
    result = SearchResult(
        records,
        best,
        s.spaces,
        warnings,
        out_path,
        s.interrupted,
        time.perf_counter() - start,
    )
    if out_path is not None:
        write_results(result, out_path)
    return result


# --------------------------------------------------------------------------- results


def write_results(result: SearchResult, out: Path) -> None:
    """results.csv, results.json, val_acc.png and best.toml in `out` (atomic writes)."""
    names = _param_names(result.spaces)
    with atomic_write(out / "results.csv", "w") as f:
        f.write(results_csv(result.trials, names))
    with atomic_write(out / "results.json", "w") as f:
        json.dump(result.to_dict(), f, indent=2, default=_jsonable)
    if result.trials:
        import matplotlib.pyplot as plt

        fig = result.plot()
        with atomic_path(out / "val_acc.png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
        plt.close(fig)
    if result.best is not None and result.best.get("config"):
        with atomic_write(out / "best.toml", "w") as f:
            f.write(
                f"# best trial: {result.best['stage']} #{result.best['trial']}, val_acc "
                f"{result.best['val_acc']:.4f}\n# striate train --config best.toml\n"
            )
            f.write(to_toml(result.best["config"]))


def _param_names(spaces: Mapping[str, Mapping[str, Param]]) -> list[str]:
    names: list[str] = []
    for sp in spaces.values():
        names += [n for n in sp if n not in names]
    return names


def results_csv(trials: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    buf = io.StringIO()
    cols = ["stage", "trial", "state", "val_acc", "val_loss", "epochs", "seconds", "seed"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*cols, *names, "reason"])
    for t in trials:
        w.writerow(
            [_cell(t.get(c)) for c in cols]
            + [_cell(t["params"].get(n)) for n in names]
            + [t.get("reason") or ""]
        )
    return buf.getvalue()


def plot_search(
    trials: Sequence[Mapping[str, Any]], spaces: Mapping[str, Mapping[str, Param]]
) -> Figure:
    """Validation accuracy against each searched parameter, one panel each, a colour per stage
    (log x-axis for log ranges); trials aborted for a diverging loss as red crosses (at their
    val accuracy, or the lowest); dashed lines at the bounds of the first stage's range."""
    from matplotlib.figure import Figure

    names = _param_names(spaces)
    first = next(iter(spaces.values()), {})
    cols = min(3, max(1, len(names)))
    rows = -(-len(names) // cols) if names else 1
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    stages = [s for s in spaces if any(t["stage"] == s for t in trials)]  # in search order
    colours = dict(zip(stages, ("tab:blue", "tab:orange", "tab:green", "tab:purple"), strict=False))
    accs = [t["val_acc"] for t in trials if _finite(t.get("val_acc"))]
    floor = min(accs) if accs else 0.0
    for ax, name in zip(axes, names, strict=False):
        p = first.get(name) or next(sp[name] for sp in spaces.values() if name in sp)
        cats = list(p.choices) if p.kind == "choice" else None
        rng = np.random.default_rng(0)

        def x_of(v: Any, cats: list | None = cats, rng: Any = rng) -> float:
            if cats is None:
                return float(v)
            return cats.index(v) + rng.uniform(-0.15, 0.15) if v in cats else math.nan

        for stage in stages:
            pts = [t for t in trials if t["stage"] == stage and name in t["params"]]
            bad = [t for t in pts if t["state"] == "aborted"]
            ok = [t for t in pts if _finite(t.get("val_acc")) and t not in bad]
            ax.scatter(
                [x_of(t["params"][name]) for t in ok],
                [100 * t["val_acc"] for t in ok],
                s=22,
                alpha=0.8,
                color=colours.get(stage),
                label=stage,
            )
            if bad:
                ax.scatter(
                    [x_of(t["params"][name]) for t in bad],
                    [100 * (t["val_acc"] if _finite(t.get("val_acc")) else floor) for t in bad],
                    marker="x",
                    color="tab:red",
                    label=f"{stage}: aborted",
                )
        if p.log:
            ax.set_xscale("log")
        if cats is not None:
            ax.set_xticks(range(len(cats)), [str(c) for c in cats])
        else:
            for bound in (p.low, p.high):
                ax.axvline(float(bound), color="gray", linestyle="--", linewidth=0.8)
        ax.set_xlabel(name + (" (log)" if p.log else ""))
        ax.set_ylabel("val accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    if names:
        axes[0].legend(fontsize=8)
    return fig


def to_toml(values: Mapping[str, Any]) -> str:
    """A TrainConfig dict as TOML (None values left out: they are the defaults' "unset")."""
    lines, tables = [], []
    for k, v in values.items():
        if v is None:
            continue
        if isinstance(v, Mapping):
            tables.append((k, v))
        else:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, table in tables:
        lines.append(f"\n[{k}]")
        lines += [f"{tk} = {_toml_value(tv)}" for tk, tv in table.items() if tv is not None]
    return "\n".join(lines) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise ConfigError(f"cannot write {v!r} to TOML")


def _set_once(study: optuna.Study, key: str, value: Any) -> None:
    if key not in study.user_attrs:
        study.set_user_attr(key, json.loads(json.dumps(value, default=_jsonable)))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _cell(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")
