"""A check's verdict (`Check`) and the doctor's report: table, JSON, figures."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from striate.train.activations import LayerStats, plot_histograms
from striate.train.activations import plot_layer_stats as _plot_layer_stats
from striate.train.error_analysis import ERROR_LABELS, ErrorAnalysis

STATUSES = ("pass", "warn", "fail", "skip")


_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@dataclass
class Check:
    """One diagnostic: `status` is pass/warn/fail/skip, `value` its main number (or None),
    `advice` one line for the user, `detail` the numbers behind it."""

    name: str
    status: str
    value: float | None
    advice: str
    detail: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        value = self.value
        if value is not None and not math.isfinite(value):
            value = str(value)  # JSON has no NaN/inf
        return {
            "name": self.name,
            "status": self.status,
            "value": value,
            "advice": self.advice,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class DoctorReport:
    """The checks in order, the per-layer activation statistics, and the loss curves recorded."""

    checks: list[Check]
    activations: list[LayerStats] = field(default_factory=list)
    curves: dict[str, list[float]] = field(default_factory=dict)
    layer_ratios: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    error_analysis: ErrorAnalysis | None = None

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; ran {', '.join(c.name for c in self.checks)}")

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (NaN/inf as strings)."""
        return _clean(
            {
                "passed": not self.failed,
                "counts": self.counts(),
                "checks": [c.to_dict() for c in self.checks],
                "activations": [s.to_dict() for s in self.activations],
                "layer_ratios": self.layer_ratios,
                "curves": self.curves,
                "settings": self.settings,
                **(
                    {"error_analysis": self.error_analysis.to_dict()}
                    if self.error_analysis is not None
                    else {}
                ),
            }
        )

    def add_error_analysis(self, analysis: ErrorAnalysis) -> Check:
        """Record an error analysis (`striate.train.error_analysis`) and add its verdict as the
        check "error_analysis": warn when the largest gap stands out of the sampling noise (there
        is something to act on), pass otherwise. Returns that check."""
        self.error_analysis = analysis
        self.checks = [c for c in self.checks if c.name != "error_analysis"]
        errors = ", ".join(f"{ERROR_LABELS[k]} {v:.2%}" for k, v in analysis.errors.items())
        largest = analysis.largest
        if largest is None:
            check = Check("error_analysis", "pass", None, analysis.advice, errors)
        else:
            noise = f" ±{largest.noise:.2%}" if largest.noise is not None else ""
            check = Check(
                "error_analysis",
                "warn" if largest.significant else "pass",
                largest.value,
                analysis.advice,
                f"largest gap: {largest.name} {largest.value:+.2%}{noise} ({errors})",
            )
        self.checks.append(check)
        return check

    def table(self, title: str = "striate doctor"):
        """The checks as a rich Table (status coloured)."""
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=title)
        for col in ("check", "status", "value", "advice"):
            t.add_column(col, overflow="fold")
        for c in self.checks:
            style = _STYLE[c.status]
            t.add_row(
                c.name,
                f"[{style}]{c.status}[/{style}]",
                escape(c.detail or _fmt(c.value)),
                escape(c.advice),
            )
        return t

    def __rich__(self):
        return self.table()

    def table_text(self) -> str:
        """The checks as plain text, one line each."""
        width = max((len(c.name) for c in self.checks), default=5)
        lines = [
            f"{c.name:<{width}}  {c.status:<4}  {c.detail or _fmt(c.value)}  — {c.advice}"
            for c in self.checks
        ]
        return "\n".join(lines)

    __str__ = table_text

    def figures(self) -> dict[str, Figure]:
        """The plots as matplotlib figures, keyed by the PNG name they are saved under."""
        figs: dict[str, Figure] = {}
        if self.activations:
            figs["doctor_activations.png"] = plot_histograms(self.activations)
            figs["doctor_layer_stats.png"] = _plot_layer_stats(self.activations)
        if self.curves:
            figs["doctor_curves.png"] = plot_curves(self.curves)
        return figs


def _clean(obj: Any) -> Any:
    """`obj` with non-finite floats as strings ("nan", "inf") and tuples as lists, for JSON."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _fmt(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}"


def plot_curves(curves: Mapping[str, Sequence[float]]) -> Figure:
    """The loss per step of the short runs (overfit, learning_rate, fit_gap), one panel each."""
    names = [k for k, v in curves.items() if len(v)]
    fig = Figure(figsize=(3.6 * max(1, len(names)), 3.0))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(names)), squeeze=False)).ravel()
    for ax, name in zip(axes, names, strict=False):
        values = np.asarray([float(v) for v in curves[name]], dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values)
        ax.set_title(f"{name}: loss per step", fontsize=9)
        ax.set_xlabel("step")
        finite = values[np.isfinite(values)]
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 50:
            ax.set_yscale("log")
    fig.tight_layout()
    return fig
