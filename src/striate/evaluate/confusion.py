"""Confusion matrices: counted in one bincount, drawn as a matplotlib figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from striate.errors import InputError


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
