"""k-nearest-neighbour classification (lecture 2): exact, chunked, deterministic search in torch,
and the choice of k by k-fold cross-validation.

Tie-breaking
------------
- Neighbours: ordered by exact distance; among equal distances the **lower training index** wins.
- Votes: the class with the most votes (or the largest sum of weights) wins; among tied classes the
  one whose **nearest member is closest**, then the **lower class index** (position in
  ``classes_``). On a vote tie ``predict`` may therefore differ from the argmax of
  ``predict_proba``, which gives the tied classes equal probability.

The exact search itself (chunked float32 products, a float64 re-rank, and a certificate that
makes the answer the float64 brute force's on every device) is `classic/_knn_index.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin

from striate.checks import is_int, positive_int
from striate.classic._base import ClassifierInputs, TorchEstimator
from striate.classic._knn_index import METRICS, Index
from striate.data.imageset import ImageSet
from striate.data.splits import kfold
from striate.errors import InputError, StriateError
from striate.progress import progress_bar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["KNNClassifier", "KSelection", "select_k"]

WEIGHTS = ("uniform", "distance")
_CV_QUERIES = 4096  # select_k searches a fold's queries in blocks of this many (for progress)


class KNNClassifier(ClassifierMixin, ClassifierInputs, TorchEstimator):
    """k-nearest-neighbour classifier with exact search by l2, l1 or cosine distance.

    ``weights="distance"`` weighs each neighbour by 1/distance (neighbours at distance 0 take all
    the weight, as in scikit-learn). Search and tie rules are in the module docstring: neighbours
    are exact and ordered by (distance, training index); a vote tie goes to the class whose
    nearest member is closest, then to the lower class index. ``batch_size`` queries ×
    ``ref_batch_size`` training points bound the working memory; they do not change results.
    """

    def __init__(
        self,
        n_neighbors: int = 1,
        metric: str = "l2",
        weights: str = "uniform",
        batch_size: int = 1024,
        ref_batch_size: int = 8192,
        device: str | torch.device = "auto",
    ) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.weights = weights
        self.batch_size = batch_size
        self.ref_batch_size = ref_batch_size
        self.device = device

    # ------------------------------------------------------------------ estimator API

    def fit(self, X: Any, y: Any = None) -> KNNClassifier:
        """Store the training set on the device (float32) with its labels."""
        name = type(self).__name__
        self._check_params()
        self._require_labels(X, y)
        if isinstance(y, torch.Tensor):  # labels may come from any device
            y = y.detach().cpu().numpy()
        Xt, yv = self._validate(X, y, reset=True)
        y_idx = self._encode_labels(yv, torch.device("cpu"))
        if self.n_neighbors > len(Xt):
            raise InputError(
                f"{name}: n_neighbors={self.n_neighbors} but the training set has only "
                f"{len(Xt)} samples: use n_neighbors <= {len(Xt)}"
            )
        self._index = Index(Xt, self.metric)
        self._y = y_idx
        self.n_samples_fit_ = len(Xt)
        return self

    def kneighbors(
        self, X: Any = None, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Distances and training indices of each query's neighbours, nearest first, as NumPy.

        Distances are Euclidean (not squared) for l2. ``X=None`` queries the training points,
        each excluding itself, as scikit-learn does.
        """
        dist, idx = self._kneighbors(X, n_neighbors)
        if not return_distance:
            return idx.cpu().numpy()
        return self._user_distance(dist).cpu().numpy(), idx.cpu().numpy()

    def predict(self, X: Any = None) -> np.ndarray:
        """The class of each sample by majority (or distance-weighted) vote of its neighbours.

        ``X=None`` predicts the training points, each without its own vote (as scikit-learn).
        """
        votes, pred = self._votes(X)
        return self.classes_[pred.numpy()]

    def predict_proba(self, X: Any = None) -> np.ndarray:
        """Vote fractions (or shares of the 1/distance weights) per class, in ``classes_`` order."""
        votes, _ = self._votes(X)
        return (votes / votes.sum(1, keepdim=True)).numpy()

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)``; an ImageSet supplies its own labels."""
        if y is None and isinstance(X, ImageSet):
            y = X.labels.numpy()
        return super().score(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------------ internals

    def _check_params(self) -> None:
        name = type(self).__name__
        for param in ("n_neighbors", "batch_size", "ref_batch_size"):
            positive_int(name, param, getattr(self, param), error=InputError)
        if self.metric not in METRICS:
            raise InputError(
                f"{name}: unknown metric {self.metric!r}; use one of {', '.join(METRICS)}"
            )
        if self.weights not in WEIGHTS:
            raise InputError(
                f"{name}: unknown weights {self.weights!r}; use one of {', '.join(WEIGHTS)}"
            )

    def _kneighbors(self, X: Any, n_neighbors: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact (float64, squared for l2) distances and indices on the device, (n, k)."""
        self._check_fitted()
        name = type(self).__name__
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        k = positive_int(name, "n_neighbors", k, error=InputError)
        exclude_self = X is None
        if exclude_self:
            Q = self._index.X
            available, what = len(Q) - 1, "other training samples (each point excludes itself)"
        else:
            Q, _ = self._validate(X, reset=False)
            available, what = self.n_samples_fit_, "training samples"
        if k > available:
            raise InputError(
                f"{name}: n_neighbors={k} but there are only {available} {what}: "
                f"use n_neighbors <= {available}"
            )
        return self._index.search(
            Q,
            k,
            batch_size=int(self.batch_size),
            ref_batch_size=int(self.ref_batch_size),
            exclude_self=exclude_self,
        )

    def _user_distance(self, dist: torch.Tensor) -> torch.Tensor:
        return dist.sqrt() if self.metric == "l2" else dist

    def _votes(self, X: Any) -> tuple[torch.Tensor, torch.Tensor]:
        dist, idx = self._kneighbors(X, None)
        dist, idx = self._user_distance(dist).cpu(), idx.cpu()
        return _vote(self._y[idx], dist, len(self.classes_), self.weights)


def _vote(
    labels: torch.Tensor, dist: torch.Tensor, n_classes: int, weights: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Votes per class (float64, n × C) and the winner under the documented tie rule.

    `labels` and `dist` (n × k, CPU) hold each query's neighbours in (distance, index) order.
    """
    if weights == "distance":
        w = 1.0 / dist
        zero = torch.isinf(w)
        hit = zero.any(1)  # a neighbour at distance 0 takes all the weight (scikit-learn's rule)
        w[hit] = zero[hit].to(w.dtype)
    else:
        w = torch.ones_like(dist)
    n = len(labels)
    votes = torch.zeros(n, n_classes, dtype=torch.float64).scatter_add_(1, labels, w)
    nearest = torch.full((n, n_classes), math.inf, dtype=torch.float64)
    nearest.scatter_reduce_(1, labels, dist, reduce="amin")
    tied = votes == votes.max(1, keepdim=True).values
    closest = torch.where(tied, nearest, math.inf).min(1, keepdim=True).values
    tied &= nearest == closest
    return votes, tied.to(torch.int8).argmax(1)  # argmax gives the first (lowest) class


# ---------------------------------------------------------------------- choosing k


@dataclass(frozen=True)
class KSelection:
    """Cross-validated accuracy of kNN per k: `accuracy[f, j]` is fold f's accuracy at `ks[j]`."""

    ks: np.ndarray
    accuracy: np.ndarray
    metric: str = "l2"

    @property
    def mean(self) -> np.ndarray:
        return self.accuracy.mean(0)

    @property
    def std(self) -> np.ndarray:
        return self.accuracy.std(0)

    @property
    def best_k(self) -> int:
        """The k with the highest mean accuracy; on a tie, the smaller k."""
        return int(self.ks[int(np.argmax(self.mean))])  # ks ascend; argmax takes the first

    def plot(self) -> Figure:
        """Each fold's accuracy against k, with the mean ± std across folds (lecture 2's figure)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.add_subplot()
        n_folds = len(self.accuracy)
        for f in range(n_folds):
            ax.scatter(self.ks, self.accuracy[f], s=12, color="tab:blue", alpha=0.5)
        ax.errorbar(
            self.ks, self.mean, yerr=self.std, color="tab:blue", capsize=3, label="mean ± std"
        )
        ax.axvline(self.best_k, color="grey", linestyle=":", label=f"best k = {self.best_k}")
        ax.set_xlabel("k")
        ax.set_ylabel("cross-validation accuracy")
        ax.set_title(f"Cross-validation on k ({n_folds} folds, {self.metric} distance)")
        ax.legend()
        return fig


def select_k(
    X: Any,
    y: Any = None,
    ks: Iterable[int] = (1, 3, 5, 8, 10, 12, 15, 20, 50, 100),
    folds: int = 5,
    metric: str = "l2",
    random_state: int = 0,
    device: str | torch.device = "auto",
    verbose: bool = False,
) -> KSelection:
    """Cross-validate k for a uniform-vote kNN on stratified folds (lecture 2).

    Folds come from `striate.data.kfold(labels, folds, seed=random_state)`. Each fold's neighbour
    lists are computed once, for the largest k, and every k is scored from their prefixes (with
    `KNNClassifier`'s tie rules), so the cost is that of one search per fold. `verbose` shows
    the progress of the searches (every sample is a query once, in blocks of `_CV_QUERIES`).
    """
    probe = KNNClassifier(metric=metric, device=device)
    probe._check_params()
    ks_arr = _check_ks(ks)
    if y is None and not isinstance(X, ImageSet):
        raise InputError("select_k needs labels y (or an ImageSet, which carries them)")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    Xt, yv = probe._validate(X, y, reset=True, min_samples=2)
    codes = torch.from_numpy(np.unique(yv, return_inverse=True)[1].astype(np.int64).reshape(-1))
    try:
        splits = kfold(codes, k=folds, seed=random_state)
    except StriateError as e:
        raise InputError(f"select_k: {e}") from e
    k_max = int(ks_arr[-1])
    smallest_train = min(len(train) for train, _ in splits)
    if k_max > smallest_train:
        raise InputError(
            f"select_k: k={k_max} but a training fold has only {smallest_train} samples: "
            f"use ks up to {smallest_train}"
        )
    acc = np.zeros((folds, len(ks_arr)))
    dev = Xt.device
    label = f"cross-validating k ({folds} folds)"
    with progress_bar(label, len(codes), "queries", enabled=verbose) as advance:
        for f, (train, val) in enumerate(splits):
            est = KNNClassifier(n_neighbors=k_max, metric=metric, device=device)
            est.fit(Xt[train.to(dev)], codes[train].numpy())
            dists, idxs = [], []
            for start in range(0, len(val), _CV_QUERIES):  # blocks only pace the progress
                block = val[start : start + _CV_QUERIES]
                dist, idx = est._kneighbors(Xt[block.to(dev)], k_max)
                dists.append(est._user_distance(dist).cpu())
                idxs.append(idx.cpu())
                advance(len(block))
            dist, labels = torch.cat(dists), est._y[torch.cat(idxs)]
            truth = torch.from_numpy(np.searchsorted(est.classes_, codes[val].numpy()))
            for j, k in enumerate(ks_arr):
                _, pred = _vote(labels[:, :k], dist[:, :k], len(est.classes_), "uniform")
                acc[f, j] = float((pred == truth).double().mean())
    return KSelection(ks=ks_arr, accuracy=acc, metric=metric)


def _check_ks(ks: Iterable[int]) -> np.ndarray:
    try:
        values = list(ks)
    except TypeError as e:
        raise InputError(f"select_k: ks must be a sequence of positive integers, got {ks!r}") from e
    bad = [k for k in values if not (is_int(k) and k >= 1)]
    if not values:
        raise InputError("select_k: ks must be a non-empty sequence of positive integers")
    if bad:
        raise InputError(f"select_k: ks must be positive integers; got {bad[0]!r}")
    return np.unique(np.asarray(values, dtype=np.int64))
