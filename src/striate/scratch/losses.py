"""Losses of the NumPy reference engine: each returns the mean loss and its gradient with
respect to the scores, ready for the last layer's `backward`."""

from __future__ import annotations

from typing import Any

import numpy as np

from striate.errors import InputError

__all__ = ["accuracy", "softmax_cross_entropy"]


def softmax_cross_entropy(logits: np.ndarray, labels: Any) -> tuple[float, np.ndarray]:
    """(mean over the batch of -log softmax(logits)[label], dL/dlogits) for logits (N, K) and
    integer labels (N,) in [0, K).

    Computed through log-sum-exp after subtracting each row's maximum, so logits like 1000 give a
    finite loss. The gradient is (softmax(logits) - onehot(labels)) / N, in the logits' dtype.
    """
    logits, labels = _checked("softmax_cross_entropy", logits, labels)
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = -log_probs[rows, labels].mean()
    grad = np.exp(log_probs)
    grad[rows, labels] -= 1
    return float(loss), grad / n


def accuracy(logits: np.ndarray, labels: Any) -> float:
    """The fraction of rows whose highest score is at the label."""
    logits, labels = _checked("accuracy", logits, labels)
    return float((logits.argmax(axis=1) == labels).mean())


def _checked(owner: str, logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """`logits` as a float (N, K) array with N, K >= 1 and `labels` as int (N,) in [0, K)."""
    if not isinstance(logits, np.ndarray) or logits.dtype.kind != "f" or logits.ndim != 2:
        what = (
            f"shape {logits.shape} and dtype {logits.dtype}"
            if isinstance(logits, np.ndarray)
            else type(logits).__name__
        )
        raise InputError(f"{owner}: logits must be a float array of shape (N, K), got {what}")
    n, k = logits.shape
    if n == 0 or k == 0:
        raise InputError(f"{owner}: logits must have at least one row and column, got {(n, k)}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu" or labels.shape != (n,):
        raise InputError(
            f"{owner}: labels must be {n} integers (one per row of logits), got shape "
            f"{labels.shape} and dtype {labels.dtype}"
        )
    if labels.min() < 0 or labels.max() >= k:
        raise InputError(
            f"{owner}: labels must be class indices in [0, {k - 1}] for {k} columns of logits, "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return logits, labels
