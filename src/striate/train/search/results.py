"""What a search found and the files it writes: the trials sorted best first, the best trial
(preferring the last stage's, whose trials train longest, and saying so), results.csv,
results.json, val_acc.png and best.toml."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from striate._atomic import atomic_write, save_figure, write_json
from striate.errors import ConfigError
from striate.train.search._values import cell, finite, short
from striate.train.search.space import Param
from striate.train.search.stages import describe_stage

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class SearchResult:
    """What a search found: every trial (sorted by val_acc, best first), the best one (the best
    trial of the last stage that completed one: its trials train longest; `best_overall` is the
    top of the table), each stage's space and settings, warnings, and where the files went."""

    trials: list[dict[str, Any]]
    best: dict[str, Any] | None
    spaces: dict[str, dict[str, Param]]
    warnings: list[str] = field(default_factory=list)
    out: Path | None = None
    interrupted: bool = False
    seconds: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)
    study: str | None = None
    best_overall: dict[str, Any] | None = None

    @property
    def summary(self) -> str:
        """One line on the best trial, and on a trial of an earlier stage that scored higher."""
        return best_summary(self.best, self.best_overall, self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "best": self.best,
            "best_overall": self.best_overall,
            "summary": self.summary,
            "trials": self.trials,
            "spaces": {s: {n: p.spec() for n, p in sp.items()} for s, sp in self.spaces.items()},
            "stages": self.stages,
            "warnings": self.warnings,
            "interrupted": self.interrupted,
        }

    def plot(self) -> Figure:
        return plot_search(self.trials, self.spaces)


def sort_trials(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best validation accuracy first; trials without one last."""

    def key(r: dict[str, Any]) -> tuple:
        acc = r.get("val_acc")
        return (0, -acc) if finite(acc) else (1, 0.0)

    return sorted(records, key=key)


def choose_best(
    trials: Sequence[Mapping[str, Any]], stages: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the chosen trial, the best trial overall) among the completed `trials`. The chosen one is
    the best of the last stage that completed a trial: a later stage trains longer (coarse to
    fine), so its accuracies are the better estimates of what the settings reach."""
    done = sort_trials([dict(t) for t in trials if t.get("state") == "complete"])
    done = [t for t in done if finite(t.get("val_acc"))]
    if not done:
        return None, None
    order = [s["name"] for s in stages] or [done[0]["stage"]]
    for name in reversed(order):
        last = [t for t in done if t["stage"] == name]
        if last:
            return last[0], done[0]
    return done[0], done[0]


def best_summary(
    best: Mapping[str, Any] | None,
    overall: Mapping[str, Any] | None,
    stages: Sequence[Mapping[str, Any]],
) -> str:
    """`best: trial 3, val accuracy 95.00% (lr=0.01)`; with stages, which stage and how long its
    trials train, and the best trial of an earlier stage when it scored higher."""
    if best is None:
        return "no trial completed"
    shown = ", ".join(f"{k}={short(v)}" for k, v in best["params"].items())
    what = f"trial {best['trial']}, val accuracy {best['val_acc']:.2%} ({shown})"
    by_name = {s["name"]: s for s in stages}
    if len(stages) <= 1 and best["stage"] == "search":
        return f"best: {what}"
    stage = by_name.get(best["stage"])
    how = f" ({describe_stage(stage)})" if stage is not None else ""
    line = f"best {best['stage']}-stage trial{how}: {what}"
    if overall is not None and overall["val_acc"] > best["val_acc"]:
        other = by_name.get(overall["stage"])
        after = f" after {describe_stage(other)}" if other is not None else ""
        line += (
            f"; the best {overall['stage']} trial ({overall['trial']}) scored "
            f"{overall['val_acc']:.2%}{after}, a shorter and rougher estimate"
        )
    return line


def is_best(trial: Mapping[str, Any], best: Mapping[str, Any] | None) -> bool:
    return best is not None and (trial["stage"], trial["trial"]) == (best["stage"], best["trial"])


def write_results(result: SearchResult, out: Path) -> None:
    """results.csv, results.json, val_acc.png and best.toml in `out` (atomic writes)."""
    names = _param_names(result.spaces)
    with atomic_write(out / "results.csv", "w") as f:
        f.write(results_csv(result.trials, names, result.best))
    write_json(out / "results.json", result.to_dict())
    if result.trials:
        import matplotlib.pyplot as plt

        fig = result.plot()
        save_figure(fig, out / "val_acc.png")
        plt.close(fig)
    if result.best is not None and result.best.get("config"):
        with atomic_write(out / "best.toml", "w") as f:
            f.write(f"# {result.summary}\n# striate train --config best.toml\n")
            f.write(to_toml(result.best["config"]))


def _param_names(spaces: Mapping[str, Mapping[str, Param]]) -> list[str]:
    names: list[str] = []
    for sp in spaces.values():
        names += [n for n in sp if n not in names]
    return names


def results_csv(
    trials: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    best: Mapping[str, Any] | None = None,
) -> str:
    """The trials as CSV, one row each; the column `best` says "yes" on the chosen trial."""
    buf = io.StringIO()
    cols = ["stage", "trial", "state", "val_acc", "val_loss", "epochs", "seconds", "seed"]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*cols, *names, "best", "reason"])
    for t in trials:
        w.writerow(
            [cell(t.get(c)) for c in cols]
            + [cell(t["params"].get(n)) for n in names]
            + ["yes" if is_best(t, best) else "", t.get("reason") or ""]
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
    accs = [t["val_acc"] for t in trials if finite(t.get("val_acc"))]
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
            ok = [t for t in pts if finite(t.get("val_acc")) and t not in bad]
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
                    [100 * (t["val_acc"] if finite(t.get("val_acc")) else floor) for t in bad],
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
