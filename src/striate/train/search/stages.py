"""Stages of a search, coarse to fine: a stage's settings, the lectures' two stages, the range a
later stage searches (`narrow`) and the warning that the best value lies at the edge of a range."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from striate.checks import number, positive_int
from striate.errors import ConfigError
from striate.train.search._values import finite, short
from striate.train.search.space import Param


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
        owner = f"stage {self.name}"
        positive_int(owner, "trials", self.trials)
        positive_int(owner, "epochs", self.epochs, allow_none=True)
        positive_int(owner, "train_size", self.train_size, allow_none=True)
        number(owner, "keep", self.keep, low=0, low_open=True, high=1)

    def as_dict(self) -> dict[str, Any]:
        """The settings that define the stage (its number of trials may grow on a resume)."""
        return {k: v for k, v in asdict(self).items() if k != "trials"}


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
    done = [t for t in trials if t.get("state") == "complete" and finite(t.get("val_acc"))]
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
            f"best {name}={short(params[name])} lies at the {side} edge of the searched range "
            f"{shown}{where}: the optimum may lie beyond it; widen the range"
        )
    return warnings


def stage_study(study: str, stage: str) -> str:
    """The Optuna study of a stage: the search's own name for the single stage "search",
    NAME-STAGE for a named stage (NAME-coarse, NAME-fine)."""
    return study if stage == "search" else f"{study}-{stage}"


def describe_stage(stage: Stage | Mapping[str, Any]) -> str:
    """How long a stage's trials train: "full-length training", "1 epoch on 300 images"."""
    get = stage.get if isinstance(stage, Mapping) else lambda k: getattr(stage, k)
    epochs, size = get("epochs"), get("train_size")
    text = "full-length training" if epochs is None else f"{epochs} epoch{'s' * (epochs != 1)}"
    return text + (f" on {size} images" if size is not None else "")
