"""Confusion matrices: counted in one bincount, drawn as a matplotlib figure, summarised per
class (accuracy within each true class) and as the most frequent mistakes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from striate.checks import non_negative_int
from striate.errors import ConfigError, InputError


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """Counts C[i, j] of samples of true class i predicted as j (labels are indices 0..K-1)."""
    t = torch.as_tensor(np.asarray(y_true) if not isinstance(y_true, torch.Tensor) else y_true)
    p = torch.as_tensor(np.asarray(y_pred) if not isinstance(y_pred, torch.Tensor) else y_pred)
    t, p = t.detach().cpu().long().flatten(), p.detach().cpu().long().flatten()
    if len(t) != len(p):
        raise InputError(
            f"{len(t)} true labels but {len(p)} predictions: give one of each per sample"
        )
    if len(t) and min(int(t.min()), int(p.min())) < 0:
        raise InputError("labels must be class indices 0..K-1, found a negative one")
    k = num_classes if num_classes is not None else int(max(t.max(), p.max())) + 1 if len(t) else 0
    if len(t) and max(int(t.max()), int(p.max())) >= k:
        raise InputError(f"a label is ≥ num_classes={k}; labels must be class indices 0..{k - 1}")
    return torch.bincount(t * k + p, minlength=k * k).reshape(k, k).numpy()


def plot_confusion(
    cm: np.ndarray, classes: Sequence[str] | None = None, normalize: bool = True, title: str = ""
) -> Figure:
    """The matrix as an image, rows normalised to recall when `normalize`, with the counts or
    fractions written in the cells when there are at most 20 classes."""
    cm = np.asarray(cm, dtype=np.float64)
    k = len(cm)
    classes = list(classes) if classes is not None else [str(i) for i in range(k)]
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    size = min(max(4.0, 0.45 * k + 2), 14.0)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(k)
    ax.set_xticks(ticks, classes, rotation=45 if k <= 20 else 90, ha="right", fontsize=7)
    ax.set_yticks(ticks, classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = shown[i, j]
                text = f"{v:.2f}" if normalize else f"{int(v)}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if v > 0.5 * shown.max() else "black",
                )
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title + ' — ' if title else ''}accuracy {accuracy:.1%}", fontsize=9)
    fig.tight_layout()
    return fig


def _check_cm(cm) -> np.ndarray:
    """`cm` as a square float64 matrix of non-negative finite values, or a ConfigError."""
    try:
        m = np.asarray(cm.detach().cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"cm must be a K×K matrix of counts, got {type(cm).__name__}") from None
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConfigError(
            f"cm must be a square K×K matrix (rows true, columns predicted), got shape {m.shape}; "
            "build it with confusion_matrix(y_true, y_pred)"
        )
    if not np.isfinite(m).all() or (m < 0).any():
        raise ConfigError("cm must hold non-negative finite counts; found a negative, NaN or inf")
    return m


def per_class_accuracy(cm) -> np.ndarray:
    """Accuracy within each true class, C[i, i] / Σ_j C[i, j] (the recall of class i); NaN for a
    class with no samples."""
    m = _check_cm(cm)
    support = m.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(m) / support, np.nan)


def most_confused(cm, classes: Sequence[str], n: int = 10) -> list[tuple[str, str, int]]:
    """The `n` largest off-diagonal counts as (true class, predicted class, count), largest first
    (ties in row-major order); zero counts are left out."""
    m = _check_cm(cm)
    classes = [str(c) for c in classes]
    if len(classes) != len(m):
        raise ConfigError(
            f"{len(classes)} class names for a {len(m)}×{len(m)} confusion matrix: "
            "give one name per row"
        )
    non_negative_int("most_confused", "n", n, hint="how many pairs to list")
    if (m != np.round(m)).any():
        raise ConfigError("cm must hold whole counts; pass the matrix before normalising it")
    off = m.copy()
    np.fill_diagonal(off, 0)
    flat = off.ravel()
    order = np.argsort(-flat, kind="stable")[:n]
    order = order[flat[order] > 0]
    rows, cols = np.divmod(order, len(m))
    return [
        (classes[i], classes[j], int(flat[k])) for i, j, k in zip(rows, cols, order, strict=True)
    ]
