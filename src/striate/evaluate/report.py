"""The run report: one self-contained HTML file that shows what a training run did.

It needs nothing but a browser: the figures are embedded as base64 PNG data URIs and the style is
inline, so the file can be mailed or archived alone. Sections, in order: final metrics, the
configuration, training curves (`plot_history`, `plot_steps`), the confusion matrix with accuracy
per class, the most confused class pairs, the test images with the highest loss, the "Doctor"
section of `striate doctor` (`doctor_section`) when given, and any extra sections striate adds.
A part that was not recorded (no history, no confusion matrix, ...) says "not available" instead
of failing the report.

Everything that comes from the user (title, class names, configuration values, metric names) is
HTML-escaped; only ``extra_sections`` bodies, which striate itself writes, go in verbatim. The file
is written atomically: a figure that fails leaves any earlier report untouched and no partial file.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import itertools
import json
import math
import numbers
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

import striate
from striate._atomic import atomic_path, atomic_write, jsonable
from striate.checks import is_number
from striate.errors import ConfigError
from striate.evaluate.confusion import most_confused, per_class_accuracy, plot_confusion
from striate.evaluate.curves import STEP_KEYS, plot_history, plot_steps
from striate.evaluate.histograms import plot_histograms

__all__ = ["add_section", "doctor_section", "plot_worst", "write_report"]

WORST_KEYS = ("images", "true", "pred", "loss", "prob")
GRID_COLUMNS = 8

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.na { color: #777; font-style: italic; }
.meta { color: #777; font-size: 0.85em; }
"""


def _e(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def _mpl(text: str) -> str:
    """User text for a matplotlib label, with "$" escaped so it is never parsed as math."""
    return str(text).replace("$", r"\$")


def _number(v: Any) -> str:
    if hasattr(v, "item"):  # a numpy or torch scalar
        with contextlib.suppress(ValueError, RuntimeError, TypeError):
            v = v.item()
    if not is_number(v):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    return f"{float(v):.5g}" if math.isfinite(v) else str(float(v))


def _png(fig: Figure, dpi: int = 100, save: str | os.PathLike | None = None) -> str:
    """The figure as a PNG data URI (also written to `save`, atomically, when given); the figure
    is cleared afterwards to free its artists."""
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if save else None)
    finally:
        fig.clear()
    if save is not None:
        with atomic_path(Path(save)) as tmp:
            Path(tmp).write_bytes(buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig: Figure, alt: str, save: str | os.PathLike | None = None) -> str:
    """An <img> of `fig` as an inline PNG, for an HTML report section; `save` also writes the
    same PNG to a file (one rendering for both)."""
    return f'<img alt="{_e(alt)}" src="{_png(fig, save=save)}">'


def _na(what: str = "") -> str:
    return f'<p class="na">{_e(what + ": " if what else "")}not available</p>'


def _table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Collection[int] = ()
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if j in numeric else f"<td>{_e(c)}</td>"
            for j, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _shown(obj: Any) -> Any:
    """The JSON form of a configuration value (`jsonable`'s), or its text."""
    if isinstance(obj, Mapping):
        return dict(obj)
    try:
        return jsonable(obj)
    except TypeError:
        return str(obj)


def _class_name(classes: Sequence[str], i: int) -> str:
    return str(classes[i]) if 0 <= i < len(classes) else str(i)


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _check_worst(worst: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, list]]:
    if not isinstance(worst, Mapping):
        raise ConfigError(
            f"worst must be a dict with keys {', '.join(WORST_KEYS)} or None, "
            f"got {type(worst).__name__}"
        )
    missing = [k for k in WORST_KEYS if k not in worst]
    if missing:
        raise ConfigError(
            f"worst is missing {missing}; it needs {', '.join(WORST_KEYS)} "
            "(images uint8 N×C×H×W, then one label, loss and probability per image)"
        )
    images = worst["images"]
    images = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ConfigError(
            "worst['images'] must be a uint8 array N×C×H×W with C = 1 or 3, "
            f"got {images.dtype} of shape {images.shape}"
        )
    cols = {}
    for k in WORST_KEYS[1:]:
        v = worst[k]
        v = v.tolist() if hasattr(v, "tolist") else list(v)
        if len(v) != len(images):
            raise ConfigError(
                f"worst[{k!r}] has {len(v)} values for {len(images)} images: give one per image"
            )
        cols[k] = v
    return images, cols


def plot_worst(
    images: np.ndarray,
    true: Sequence[int],
    pred: Sequence[int],
    loss: Sequence[float],
    prob: Sequence[float],
    classes: Sequence[str],
) -> Figure:
    """A grid of images (uint8 N×C×H×W) titled "true → pred (loss)" over "p=prob", grey for one
    channel, upscaled by nearest neighbour so small images stay sharp."""
    n = len(images)
    ncols = max(1, min(n, GRID_COLUMNS))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(1.7 * ncols, 1.95 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k >= n:
            continue
        img = images[k]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        else:
            ax.imshow(img.transpose(1, 2, 0), interpolation="nearest")
        t, p = _class_name(classes, int(true[k])), _class_name(classes, int(pred[k]))
        ax.set_title(
            f"{_short(t)} → {_short(p)} ({float(loss[k]):.2f})\np={float(prob[k]):.2f}",
            fontsize=7,
            parse_math=False,
        )
    fig.tight_layout()
    return fig


def _value(name: str, v: Any) -> str:
    """A metric as the CLI prints it: accuracies in percent, other numbers to 5 digits."""
    if str(name).endswith(("acc", "top5")) and isinstance(v, numbers.Real) and math.isfinite(v):
        return f"{float(v):.2%}"
    return _number(v)


def _classification_sections(
    classes: Sequence[str],
    confusion: np.ndarray | None,
    pairs: list[tuple[str, str, int]] | None,
    worst: tuple[np.ndarray, dict[str, list]] | None,
) -> Iterator[str]:
    """The confusion matrix, the most confused pairs and the worst test images (a classifier's
    run; other tasks have no classes)."""
    yield "<section>\n<h2>Confusion matrix</h2>\n"
    if confusion is not None:
        cm = np.asarray(confusion)
        yield figure_html(plot_confusion(cm, [_mpl(c) for c in classes]), "confusion matrix")
        acc = per_class_accuracy(cm)
        support, correct = cm.sum(1), np.diag(cm)
        rows = [
            (c, _number(s), _number(r), "—" if np.isnan(a) else f"{a:.2%}")
            for c, s, r, a in zip(classes, support, correct, acc, strict=True)
        ]
        yield _table(("class", "samples", "correct", "accuracy"), rows, numeric={1, 2, 3})
    else:
        yield _na()
    yield "\n</section>\n"

    yield "<section>\n<h2>Most confused classes</h2>\n"
    if pairs is None:
        yield _na()
    elif pairs:
        yield _table(("true", "predicted as", "count"), pairs, numeric={2})
    else:
        yield "<p>No mistakes: every off-diagonal count is zero.</p>"
    yield "\n</section>\n"

    yield "<section>\n<h2>Test images with the highest loss</h2>\n"
    if worst is not None and len(worst[0]):
        images, cols = worst
        yield "<p>Titled true class → predicted class (loss), then p, the probability.</p>"
        yield figure_html(
            plot_worst(images, classes=classes, **cols), "test images with the highest loss"
        )
    else:
        yield _na()
    yield "\n</section>\n"


def _front(
    title: str, run: Mapping[str, Any], final: Mapping[str, Any], config: Mapping[str, Any]
) -> Iterator[str]:
    """The head of the document, then the run's facts, its final metrics and its configuration."""
    yield (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n"
        f'<p class="meta">striate {_e(striate.__version__)} run report</p>\n'
    )

    if run:
        yield "<section>\n<h2>Run</h2>\n"
        yield _table(("what", "value"), [(k, _number(v)) for k, v in run.items()])
        yield "\n</section>\n"

    yield "<section>\n<h2>Final metrics</h2>\n"
    if final:
        rows = [(k, _value(k, v)) for k, v in final.items()]
        yield _table(("metric", "value"), rows, numeric={1})
    else:
        yield _na()
    yield "\n</section>\n"

    yield "<section>\n<h2>Configuration</h2>\n"
    if config:
        text = json.dumps(config, indent=2, ensure_ascii=False, default=_shown)
        yield f"<pre>{_e(text)}</pre>"
    else:
        yield _na()
    yield "\n</section>\n"


def _curves(
    history: Sequence[Mapping[str, Any]],
    steps: Mapping[str, Sequence[float]],
    metrics: Sequence[str],
) -> Iterator[str]:
    """The training curves: `metrics` per epoch, and the per-step values."""
    yield "<section>\n<h2>Training curves</h2>\n"
    yield (
        figure_html(plot_history(history, metrics), f"{' and '.join(metrics)} per epoch")
        if history
        else _na("per-epoch history")
    )
    has_steps = any(np.size(v) for v in steps.values())
    yield (
        figure_html(plot_steps(steps), "learning rate, momentum and loss per step")
        if has_steps
        else _na("per-step values")
    )
    yield "\n</section>\n"


def _back(doctor: Mapping[str, Any] | None, extra: Sequence[tuple[str, str]]) -> Iterator[str]:
    """The Doctor section (when given), the extra sections and the end of the document."""
    if doctor is not None:
        yield f"<section>\n<h2>Doctor</h2>\n{doctor_section(doctor)}\n</section>\n"
    for heading, body in extra:
        yield f"<section>\n<h2>{_e(heading)}</h2>\n{body}\n</section>\n"
    yield "</body>\n</html>\n"


def write_report(
    path: str | os.PathLike,
    *,
    title: str,
    run: Mapping[str, Any] | None = None,
    config: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
    steps: Mapping[str, Sequence[float]],
    final: Mapping[str, float],
    classes: Sequence[str],
    confusion: np.ndarray | None,
    worst: Mapping[str, Any] | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
    doctor: Mapping[str, Any] | None = None,
    metrics: Sequence[str] = ("loss", "acc"),
) -> Path:
    """Write the self-contained HTML report of a run to `path` (atomically) and return the path.

    `run` is what the run resolved to and where it ran (device, precision, parameters, data
    sizes, time, versions: `striate.engine.run_info.run_facts`), shown first.
    `history` is one dict per epoch (see `plot_history`), `steps` per-step lists (see
    `plot_steps`), `final` the final metrics by name, `confusion` a K×K count matrix for the K
    `classes`, and `worst` ``{"images": uint8 N×C×H×W, "true", "pred": class indices, "loss",
    "prob": floats}`` for the test images with the highest loss. `extra_sections` are
    (heading, html) pairs appended as they are; the html is trusted, the heading escaped.
    `doctor` is a `DoctorReport.to_dict()` (`striate doctor`), shown as a "Doctor" section.
    `metrics` are the per-epoch curves drawn (a task's `metrics`); without `classes` (a task
    other than classification) the confusion and worst-image sections are left out.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name such as {path / 'report.html'}")
    checks = (
        ("run", run, Mapping, "a dict {fact: value}"),
        ("config", config, Mapping, "a dict"),
        ("steps", steps, Mapping, "a dict of per-step lists"),
        ("final", final, Mapping, "a dict {metric name: value}"),
    )
    for name, value, kind, what in checks:
        if value is not None and not isinstance(value, kind):
            raise ConfigError(f"{name} must be {what}, got {type(value).__name__}")
    if history is not None and (
        isinstance(history, (str, bytes, Mapping)) or not isinstance(history, Sequence)
    ):
        raise ConfigError(
            f"history must be a list with one dict per epoch, got {type(history).__name__}"
        )
    if isinstance(classes, (str, bytes)) or not isinstance(classes, (Sequence, np.ndarray)):
        raise ConfigError(f"classes must be a list of class names, got {type(classes).__name__}")
    extra = list(extra_sections)
    for i, item in enumerate(extra):
        if not (
            isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item)
        ):
            raise ConfigError(
                f"extra_sections[{i}] must be a (heading, html) pair of strings, got {item!r:.80}"
            )
    classes = [str(c) for c in classes]
    # Check every part before drawing anything, so a user mistake is reported at once.
    unknown = sorted(set(steps or {}) - set(STEP_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {unknown} in steps; the valid keys are {', '.join(STEP_KEYS)}"
        )
    pairs = None if confusion is None else most_confused(confusion, classes, n=10)
    checked_worst = None if worst is None else _check_worst(worst)
    if doctor is not None and not (isinstance(doctor, Mapping) and "checks" in doctor):
        raise ConfigError("doctor must be a DoctorReport.to_dict() (a dict with 'checks') or None")
    # the document in pieces, so the file is written as each figure is drawn
    parts = itertools.chain(
        _front(str(title), run or {}, final or {}, config or {}),
        _curves(history or [], steps or {}, metrics),
        _classification_sections(classes, confusion, pairs, checked_worst) if classes else (),
        _back(doctor, extra),
    )
    with atomic_write(path, "wb") as f:
        for part in parts:
            f.write(part.encode("utf-8"))
    return path


_DOCTOR_COLOURS = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e", "skip": "#777"}


def doctor_section(doctor: Mapping[str, Any]) -> str:
    """The body of the "Doctor" section: the table of checks (status, value, advice) and the
    histograms of the activations, from a `DoctorReport.to_dict()`."""
    rows = []
    for c in doctor.get("checks", []):
        status = str(c.get("status", ""))
        colour = _DOCTOR_COLOURS.get(status, "#222")
        value = c.get("detail") or _number(c.get("value", ""))
        rows.append(
            f"<tr><td>{_e(c.get('name', ''))}</td>"
            f'<td style="color:{colour};font-weight:bold">{_e(status)}</td>'
            f"<td>{_e(value)}</td><td>{_e(c.get('advice', ''))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("check", "status", "value", "advice"))
    verdict = "a check failed" if not doctor.get("passed", True) else "no check failed"
    body = (
        f"<p>striate doctor: {_e(verdict)}.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    analysis = doctor.get("error_analysis")
    if isinstance(analysis, Mapping) and analysis.get("gaps"):
        errors = analysis.get("errors", {})
        rows = [
            (
                g.get("name", ""),
                f"{g.get('to', '')} {_pct(errors.get(g.get('to')))} − "
                f"{g.get('from', '')} {_pct(errors.get(g.get('from')))}",
                _pct(g.get("value"), sign=True),
                "±" + _pct(g.get("noise")) if g.get("noise") is not None else "",
            )
            for g in analysis["gaps"]
        ]
        body += f"<h3>Error analysis (human-level error {_e(_pct(errors.get('human')))})</h3>"
        body += _table(("gap", "errors", "difference", "noise (2 s.e.)"), rows, numeric={2, 3})
        if analysis.get("advice"):
            body += f"<p>{_e(analysis['advice'])}</p>"
    if doctor.get("activations"):
        body += figure_html(
            plot_histograms(doctor["activations"]), "activation histograms per layer"
        )
    return body


def _pct(v: Any, sign: bool = False) -> str:
    if not isinstance(v, numbers.Real) or not math.isfinite(v):
        return "—"
    return f"{float(v):+.2%}" if sign else f"{float(v):.2%}"


def add_section(path: str | os.PathLike, heading: str, body: str) -> Path:
    """Put a section (trusted html `body`) into an existing report, replacing one with the same
    heading, before the end of the document; written atomically."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the report {path}: {e}") from e
    start_tag = f"<section>\n<h2>{_e(heading)}</h2>\n"
    section = f"{start_tag}{body}\n</section>\n"
    start = text.find(start_tag)
    if start >= 0:
        end = text.find("</section>\n", start)
        text = text[:start] + section + text[end + len("</section>\n") :]
    elif "</body>" in text:
        at = text.rfind("</body>")
        text = text[:at] + section + text[at:]
    else:
        text += section
    with atomic_write(path, "wb") as f:
        f.write(text.encode("utf-8"))
    return path
