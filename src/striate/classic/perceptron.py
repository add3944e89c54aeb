"""The perceptron (Rosenblatt 1958): the perceptron trick, perceptrons as logic gates, and why XOR
needs two layers (003_*.txt lesson 2; 004_*.txt).

The perceptron's output is ``step(w·x + b)``. The *perceptron trick* moves the line towards a
misclassified point: ``w ← w + η·y·x``, ``b ← b + η·y`` with ``y = ±1``. `Perceptron` applies it
to every misclassified point of an epoch at once (the batch perceptron: Duda, Hart and Stork,
*Pattern Classification*, 2nd ed., §5.5.1), a tensor operation per epoch instead of a Python loop
over points; like the online rule it stops after finitely many epochs on linearly separable data
(the perceptron convergence theorem), and never on data that are not, such as XOR. Several classes
are one-vs-rest, all trained together, as scikit-learn's ``Perceptron`` does.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning

from striate.checks import is_int, is_number, one_of
from striate.classic._base import ClassifierInputs, TorchEstimator
from striate.data.imageset import ImageSet
from striate.errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["GATES", "Perceptron", "gate", "plot_decision_boundary", "xor"]

GATES: dict[str, tuple[tuple[float, ...], float]] = {
    "and": ((1.0, 1.0), -1.5),
    "or": ((1.0, 1.0), -0.5),
    "nand": ((-1.0, -1.0), 1.5),
    "not": ((-1.0,), 0.5),  # one input: the others are ignored
}
"""Weights and bias of the notes' logic-gate perceptrons on 0/1 inputs."""


def gate(name: str, x: Any) -> np.ndarray:
    """The output (0 or 1) of the perceptron gate `name` on rows of 0/1 inputs."""
    name = one_of("perceptron", "gate", name, tuple(GATES), error=InputError)
    w, b = GATES[name]
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] != len(w):
        raise InputError(f"perceptron: the {name} gate takes {len(w)} input(s), got {x.shape[1]}")
    return (x @ np.asarray(w) + b >= 0).astype(np.int64)


def xor(x: Any) -> np.ndarray:
    """XOR by two layers of perceptrons: AND(OR(x), NAND(x)); no single perceptron computes it."""
    hidden = np.stack([gate("or", x), gate("nand", x)], axis=1)
    return gate("and", hidden)


class Perceptron(ClassifierMixin, ClassifierInputs, TorchEstimator):
    """The perceptron classifier: mistake-driven updates until every training point is on its
    side (or ``max_iter`` epochs), one-vs-rest for several classes.

    Parameters
    ----------
    eta0 : the step η of the perceptron trick (scikit-learn's name).
    max_iter : the most epochs; a training set still misclassified after them gives a
        ``ConvergenceWarning`` (it is not linearly separable, or needs more epochs).
    device : "auto", "cpu", "cuda", … where the updates run.
    """

    def __init__(self, eta0: float = 1.0, max_iter: int = 1000, device: str = "auto") -> None:
        self.eta0 = eta0
        self.max_iter = max_iter
        self.device = device

    def _check_params(self) -> None:
        name = type(self).__name__
        if not (is_number(self.eta0) and self.eta0 > 0):
            raise InputError(f"{name}: eta0 must be a number > 0, got {self.eta0!r}")
        if not (is_int(self.max_iter) and self.max_iter >= 1):
            raise InputError(f"{name}: max_iter must be an integer >= 1, got {self.max_iter!r}")

    def fit(self, X: Any, y: Any = None) -> Perceptron:
        """Train on ``X`` (N×D, or an ImageSet) and labels ``y``."""
        self._check_params()
        self._require_labels(X, y)
        Xt, y_np = self._validate(X, y, reset=True, dtype=torch.float64)
        yt = self._encode_labels(y_np, Xt.device)
        k = len(self.classes_)
        # targets ±1: one column for two classes (classes_[1] is +1), else one per class
        if k == 2:
            T = (2 * yt - 1).to(Xt.dtype)[:, None]
        else:
            T = torch.where(torch.nn.functional.one_hot(yt, k).bool(), 1.0, -1.0).to(Xt.dtype)
        Xb = torch.cat([Xt, torch.ones(len(Xt), 1, dtype=Xt.dtype, device=Xt.device)], 1)
        W = torch.zeros(Xb.shape[1], T.shape[1], dtype=Xt.dtype, device=Xt.device)
        eta = float(self.eta0)
        mistakes, epochs = [], 0
        while True:
            wrong = (T * (Xb @ W) <= 0).to(Xt.dtype)  # on the line counts as a mistake
            mistakes.append(int(wrong.sum()))
            if mistakes[-1] == 0 or epochs == int(self.max_iter):
                break
            W += eta * Xb.T @ (wrong * T)  # the trick, for every misclassified point at once
            epochs += 1
        if mistakes[-1]:
            warnings.warn(
                f"{type(self).__name__}: {mistakes[-1]} training point(s) still on the wrong "
                f"side after max_iter={self.max_iter} epochs: the classes may not be linearly "
                "separable (XOR is not), or it needs more epochs",
                ConvergenceWarning,
                stacklevel=2,
            )
        W = W.cpu()
        self.coef_ = W[:-1].T.contiguous().numpy()
        self.intercept_ = W[-1].clone().numpy()
        self.n_iter_ = epochs
        self.mistakes_ = np.asarray(mistakes)
        return self

    def _scores(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        Xt, _ = self._validate(X, reset=False, dtype=torch.float64)
        W = torch.from_numpy(self.coef_).to(Xt.device)
        b = torch.from_numpy(self.intercept_).to(Xt.device)
        return torch.addmm(b, Xt, W.T)

    def decision_function(self, X: Any) -> np.ndarray:
        """``w·x + b``: N scores of ``classes_[1]`` for two classes, else N×K."""
        scores = self._scores(X).cpu().numpy()
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        """The class on whose side of the line (or with the highest score) each point is."""
        scores = self._scores(X)
        index = (scores[:, 0] > 0).long() if scores.shape[1] == 1 else scores.argmax(1)
        return self.classes_[index.cpu().numpy()]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)``; an ImageSet supplies its own labels."""
        if y is None and isinstance(X, ImageSet):
            y = X.labels.numpy()
        return super().score(X, y, sample_weight=sample_weight)


def plot_decision_boundary(
    model: Any, X: Any, y: Any, resolution: int = 200, ax: Axes | None = None
) -> Figure:
    """Two-feature points coloured by class over the regions a fitted classifier assigns (the
    perceptron's are half-planes: its lines ``w·x + b = 0`` drawn too), on `ax` or a new figure."""
    import matplotlib.pyplot as plt

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise InputError(f"plot_decision_boundary: X must be N×2, got shape {X.shape}")
    pad = 0.1 * (X.max(0) - X.min(0) + 1e-9)
    lo, hi = X.min(0) - pad, X.max(0) + pad
    gx, gy = np.meshgrid(
        np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    )
    grid = np.c_[gx.ravel(), gy.ravel()]
    classes = list(model.classes_)
    region = np.searchsorted(classes, model.predict(grid)).reshape(gx.shape)
    fig, ax = plt.subplots(figsize=(4.2, 4)) if ax is None else (ax.figure, ax)
    ax.contourf(
        gx, gy, region, levels=np.arange(len(classes) + 1) - 0.5, cmap="coolwarm", alpha=0.25
    )
    for i, c in enumerate(classes):
        pts = X[y == c]
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=18,
            color=plt.cm.coolwarm(i / max(1, len(classes) - 1)),
            edgecolor="k",
            label=str(c),
        )
    if isinstance(model, Perceptron):
        xs = np.array([lo[0], hi[0]])
        for w, b in zip(model.coef_, model.intercept_, strict=True):
            if abs(w[1]) > 1e-12:
                ax.plot(xs, -(w[0] * xs + b) / w[1], "k--", lw=1)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig
