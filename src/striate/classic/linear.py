"""Linear classifiers — multiclass SVM and softmax — trained by minibatch SGD on analytic gradients.

The score of class ``k`` is ``s_k = w_k·x + b_k``. With the *bias trick* the bias is a last row of
one weight matrix ``W`` ((D+1)×K), as if every sample had a constant-1 feature: ``s = [x 1]·W``
(computed as ``x·W[:D] + W[D]``, so the column of ones is never built). The bias row is not
regularised: penalising it would pull the decision boundaries toward the origin without
simplifying the model.

Losses, averaged over a minibatch of N samples (CS231n lectures 2–3):

- ``"svm"`` (Weston–Watkins multiclass hinge): ``L_i = Σ_{j≠y_i} max(0, s_j - s_{y_i} + Δ)``.
  Gradient w.r.t. the scores: ``1[margin_ij > 0]`` for ``j ≠ y_i`` and minus their count for
  ``y_i`` (the subgradient 0 at a kink).
- ``"softmax"`` (cross-entropy): ``L_i = -s_{y_i} + log Σ_j exp(s_j)``, evaluated as
  ``m + log Σ_j exp(s_j - m)`` with ``m = max_j s_j`` so no exponent overflows (and shifts below
  ``log(tiny) + 20`` clamped there, so none underflows to a slow subnormal number; the sum moves
  by less than its rounding). Gradient: ``softmax(s) - onehot(y_i)``.

Penalties on ``W[:D]`` with strength ``reg`` (CS231n's form, no ½): ``"l2"`` ``reg·ΣW²``
(gradient ``2·reg·W``), ``"l1"`` ``reg·Σ|W|`` (subgradient ``reg·sign W``), ``"elasticnet"``
``reg·(l1_ratio·Σ|W| + (1 - l1_ratio)·ΣW²)``. Plain SGD with the L1 subgradient leaves weights
small but not exactly zero.

The gradient w.r.t. ``W`` is ``[X 1]ᵀ·dS`` plus the penalty's; every step is a few matrix products
on the device, no autograd and no Python loop over samples.

About 560 lines: one estimator, its two losses with their analytic gradients and its
minibatch solver belong together (scikit-learn's estimators are single modules for the same reason).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if

from striate.checks import fail, is_int, is_number, number, positive_int
from striate.classic._base import ClassifierInputs, TorchEstimator
from striate.data.imageset import ImageSet
from striate.errors import InputError
from striate.progress import progress_bar

__all__ = [
    "LinearClassifier",
    "SearchTable",
    "linear_loss_and_grad",
    "plot_templates",
    "random_search",
]

_LOSSES = ("svm", "softmax")
_PENALTIES = ("l2", "l1", "elasticnet", None)
_SCHEDULES = ("constant", "cosine", "exponential")


def linear_loss_and_grad(
    W: torch.Tensor,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "svm",
    reg: float = 0.0,
    penalty: str | None = "l2",
    l1_ratio: float = 0.5,
    margin: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The regularised loss of a linear classifier and its analytic gradient w.r.t. ``W``.

    ``W`` is (D+1)×K with the bias as its last row, ``X`` N×D features of ``W``'s dtype and
    device, ``y`` N label indices in 0..K-1 (int64). Returns ``(loss, dW)``: a 0-d tensor and a
    tensor of ``W``'s shape. See the module docstring for the formulas.
    """
    n, d = X.shape
    scores = torch.addmm(W[d], X, W[:d])  # [X 1]·W, the bias trick
    yi = y.view(-1, 1)
    if loss == "svm":
        margins = scores - scores.gather(1, yi) + margin
        margins.scatter_(1, yi, 0.0)  # j = y_i is not a term of the sum
        margins.clamp_(min=0.0)
        data_loss = margins.sum() / n
        dscores = (margins > 0).to(scores.dtype)
        dscores.scatter_(1, yi, -dscores.sum(1, keepdim=True))
    else:
        shifted = scores - scores.amax(1, keepdim=True)  # log-sum-exp: no overflow
        # exp of a shift below log(tiny) is subnormal, which slows the CPU ~100×; the clamp
        # changes the sum by < K·e^floor, far below rounding, and the loss keeps the true s_y
        exp = shifted.clamp(min=math.log(torch.finfo(scores.dtype).tiny) + 20).exp_()
        norm = exp.sum(1, keepdim=True)
        data_loss = (norm.log() - shifted.gather(1, yi)).sum() / n
        dscores = exp.div_(norm)  # softmax probabilities
        dscores.scatter_add_(1, yi, torch.full_like(yi, -1, dtype=scores.dtype))
    dscores.div_(n)
    grad = torch.empty_like(W)
    torch.mm(X.T, dscores, out=grad[:d])
    grad[d] = dscores.sum(0)
    reg_loss = _add_penalty(W[:d], grad[:d], reg, penalty, l1_ratio)
    return data_loss + reg_loss, grad


def _add_penalty(
    Wd: torch.Tensor, grad: torch.Tensor, reg: float, penalty: str | None, l1_ratio: float
) -> torch.Tensor | float:
    """Add the penalty's (sub)gradient to ``grad`` in place; return the penalty's value."""
    if penalty is None or reg == 0:
        return 0.0
    l1 = reg if penalty == "l1" else reg * l1_ratio if penalty == "elasticnet" else 0.0
    l2 = reg if penalty == "l2" else reg * (1 - l1_ratio) if penalty == "elasticnet" else 0.0
    value: torch.Tensor | float = 0.0
    if l2:
        value = l2 * Wd.pow(2).sum()
        grad.add_(Wd, alpha=2 * l2)
    if l1:
        value = value + l1 * Wd.abs().sum()
        grad.add_(Wd.sign(), alpha=l1)
    return value


class LinearClassifier(ClassifierMixin, ClassifierInputs, TorchEstimator):
    """Multiclass linear SVM or softmax classifier, trained by minibatch SGD (CS231n lectures 2–3).

    Parameters
    ----------
    loss : "svm" (multiclass hinge, Weston–Watkins) or "softmax" (cross-entropy).
    reg : penalty strength λ (the objective is mean loss + λ·R(W); the bias is not penalised).
    penalty : "l2" (R = ΣW²), "l1" (Σ|W|), "elasticnet" (l1_ratio·Σ|W| + (1-l1_ratio)·ΣW²), None.
    l1_ratio : the L1 share of "elasticnet", in [0, 1].
    margin : the SVM margin Δ (> 0).
    learning_rate : the first step size, or "auto", which follows the scale of the features.
        softmax: ``1 / L`` with ``L = ½·mean ‖[x 1]‖² + 2·λ_L2``, a bound on the curvature of its
        objective (the Hessian of cross-entropy w.r.t. the scores is at most ½), the classical
        safe step of gradient descent; svm (no curvature, the hinge has kinks):
        ``1 / (mean ‖[x 1]‖² + 2·λ_L2)`` (larger steps tested worse on CIFAR-10). The
        same default then suits standardised features and pixels in 0–255 (on mean-subtracted
        CIFAR-10 the svm step is ≈1e-7, the lectures' value).
    batch_size : samples per minibatch (the whole set when it is smaller).
    max_iter : number of SGD steps (minibatches), as CS231n's ``num_iters``; one epoch is
        ``ceil(n_samples / batch_size)`` steps.
    schedule : "cosine" (the step size falls from learning_rate to 0 over max_iter steps, half a
        cosine), "constant", or "exponential" (multiplied by ``lr_decay`` after every epoch, as
        in CS231n's solver).
    lr_decay : the per-epoch factor of the "exponential" schedule.
    momentum : heavy-ball momentum μ: ``v ← μ·v - lr·∇``, ``W ← W + v`` (0 for plain SGD).
    tol, n_iter_no_change : with a ``tol``, stop when the epoch's mean training loss has not
        improved by ``tol`` for ``n_iter_no_change`` epochs in a row; None runs all max_iter steps.
    random_state : seed of the minibatch order (weights start at 0, so nothing else is random).
    device : "auto" (CUDA, then MPS, then CPU), or a torch device.
    verbose : show a progress bar.

    Attributes
    ----------
    coef_ : K×D weights (one row per class, also for two classes, unlike scikit-learn's binary
        linear models; ``decision_function`` still returns one score per sample then).
    intercept_ : K biases. ``classes_``, ``n_features_in_`` as in scikit-learn.
    loss_history_ : the minibatch loss (with penalty) at every step.
    n_iter_ : SGD steps taken. ``learning_rate_`` : the first step size used.
    """

    def __init__(
        self,
        loss: str = "svm",
        reg: float = 1e-4,
        penalty: str | None = "l2",
        l1_ratio: float = 0.5,
        margin: float = 1.0,
        learning_rate: float | str = "auto",
        batch_size: int = 200,
        max_iter: int = 1500,
        schedule: str = "cosine",
        lr_decay: float = 0.95,
        momentum: float = 0.9,
        tol: float | None = None,
        n_iter_no_change: int = 5,
        random_state: int | None = 0,
        device: str | torch.device = "auto",
        verbose: bool = False,
    ) -> None:
        self.loss = loss
        self.reg = reg
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.margin = margin
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.schedule = schedule
        self.lr_decay = lr_decay
        self.momentum = momentum
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ----------------------------------------------------------------------- parameters

    def _check_params(self) -> None:
        name = type(self).__name__

        def bad(param: str, want: str) -> InputError:
            return fail(name, param, want, getattr(self, param), error=InputError)

        def real(param: str, **interval: Any) -> None:
            number(name, param, getattr(self, param), **interval, error=InputError)

        if self.loss not in _LOSSES:
            raise bad("loss", "'svm' or 'softmax'")
        if self.penalty not in _PENALTIES:
            raise bad("penalty", "'l2', 'l1', 'elasticnet' or None")
        if self.schedule not in _SCHEDULES:
            raise bad("schedule", "'cosine', 'constant' or 'exponential'")
        real("reg", low=0)
        real("l1_ratio", low=0, high=1)
        real("margin", low=0, low_open=True)
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            real("learning_rate", low=0, low_open=True)
        for param in ("batch_size", "max_iter", "n_iter_no_change"):
            positive_int(name, param, getattr(self, param), error=InputError)
        real("lr_decay", low=0, high=1, low_open=True)
        real("momentum", low=0, high=1, high_open=True)
        real("tol", low=0, allow_none=True)
        rs = self.random_state
        seed_ok = is_int(rs) and rs >= 0
        if not (rs is None or isinstance(rs, np.random.RandomState) or seed_ok):
            raise bad("random_state", "a non-negative integer, a RandomState or None")

    def _penalty_args(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "reg": float(self.reg),
            "penalty": self.penalty,
            "l1_ratio": float(self.l1_ratio),
            "margin": float(self.margin),
        }

    # ----------------------------------------------------------------------- the loss

    def loss_and_grad(self, W: Any, X: Any, y: Any) -> tuple[Any, Any]:
        """This classifier's objective at ``W`` on ``(X, y)`` and its analytic gradient.

        ``W`` is (D+1)×K with the bias as its last row; ``y`` holds label *indices* 0..K-1 (for a
        fitted model, ``np.searchsorted(clf.classes_, labels)``). Torch input gives
        ``(0-d tensor, tensor)`` in ``W``'s dtype and device; NumPy input gives
        ``(float, ndarray)``. For :func:`striate.gradcheck.gradcheck` use float64.
        """
        self._check_params()
        name = type(self).__name__
        as_numpy = not isinstance(W, torch.Tensor)
        Wt = torch.as_tensor(W)
        if not Wt.is_floating_point() or Wt.ndim != 2:
            raise InputError(f"{name}.loss_and_grad: W must be a 2-D float array (D+1)×K")
        Xt = torch.as_tensor(X).to(Wt.device, Wt.dtype)
        yt = torch.as_tensor(y).to(Wt.device)
        if Xt.ndim != 2 or Xt.shape[1] + 1 != Wt.shape[0]:
            raise InputError(
                f"{name}.loss_and_grad: X must be N×D with D + 1 = {Wt.shape[0]} (W's rows, the "
                f"last one the bias), got shape {tuple(Xt.shape)}"
            )
        if yt.ndim != 1 or len(yt) != len(Xt) or yt.is_floating_point():
            raise InputError(f"{name}.loss_and_grad: y must be {len(Xt)} integer label indices")
        if len(yt) and (int(yt.min()) < 0 or int(yt.max()) >= Wt.shape[1]):
            raise InputError(
                f"{name}.loss_and_grad: y must hold label indices in 0..{Wt.shape[1] - 1}"
            )
        value, grad = linear_loss_and_grad(Wt, Xt, yt.long(), **self._penalty_args())
        if as_numpy:
            return float(value), grad.cpu().numpy()
        return value, grad

    # ----------------------------------------------------------------------- training

    def _initial_lr(self, X: torch.Tensor) -> float:
        if self.learning_rate != "auto":
            return float(self.learning_rate)
        # mean ‖[x 1]‖², summed by chunks of rows so no float64 copy of X is made
        total = sum(float(torch.linalg.vector_norm(c)) ** 2 for c in X.split(8192))
        sq_norm = total / len(X) + 1.0
        args = self._penalty_args()
        l2 = 0.0 if self.penalty in ("l1", None) else args["reg"]
        if self.penalty == "elasticnet":
            l2 *= 1 - args["l1_ratio"]
        curvature = 0.5 * sq_norm if self.loss == "softmax" else sq_norm
        return 1.0 / (curvature + 2 * l2)

    def _step_size(self, lr0: float, step: int, steps_per_epoch: int) -> float:
        if self.schedule == "cosine":
            return lr0 * 0.5 * (1 + math.cos(math.pi * step / self.max_iter))
        if self.schedule == "exponential":
            return lr0 * float(self.lr_decay) ** (step // steps_per_epoch)
        return lr0

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, Integral):
            return int(rs)
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def fit(self, X: Any, y: Any = None) -> LinearClassifier:
        """Train on ``X`` (N×D array or tensor, or an ImageSet) and labels ``y``."""
        self._check_params()
        self._require_labels(X, y)
        Xt, y_np = self._validate(X, y, reset=True)
        yt = self._encode_labels(y_np, Xt.device)
        n, d = Xt.shape
        k = len(self.classes_)
        args = self._penalty_args()
        lr0 = self._initial_lr(Xt)
        batch = min(int(self.batch_size), n)
        steps_per_epoch = math.ceil(n / batch)
        gen = torch.Generator().manual_seed(self._seed())  # on the CPU: same order on any device

        W = torch.zeros(d + 1, k, dtype=Xt.dtype, device=Xt.device)
        velocity = torch.zeros_like(W) if self.momentum else None
        history = torch.zeros(int(self.max_iter), dtype=torch.float32, device=Xt.device)
        best, stale, steps = math.inf, 0, 0
        with progress_bar("fit " + self.loss, int(self.max_iter), "steps", self.verbose) as adv:
            for step in range(int(self.max_iter)):
                pos = step % steps_per_epoch
                if pos == 0:
                    order = torch.randperm(n, generator=gen).to(Xt.device)
                idx = order[pos * batch : (pos + 1) * batch]
                value, grad = linear_loss_and_grad(W, Xt.index_select(0, idx), yt[idx], **args)
                history[step] = value
                lr = self._step_size(lr0, step, steps_per_epoch)
                if velocity is None:
                    W.add_(grad, alpha=-lr)
                else:
                    velocity.mul_(self.momentum).add_(grad, alpha=-lr)
                    W.add_(velocity)
                steps = step + 1
                if pos == steps_per_epoch - 1 or steps == self.max_iter:
                    adv(pos + 1)
                    epoch_loss = float(history[step - pos : step + 1].mean())
                    if not math.isfinite(epoch_loss):
                        raise InputError(
                            f"{type(self).__name__}: the loss diverged (became {epoch_loss}) at "
                            f"step {steps} with learning_rate {lr0:.3g}; lower learning_rate "
                            f"(learning_rate='auto' adapts it to the scale of the features) or "
                            f"the momentum"
                        )
                    if self.tol is not None:
                        stale = stale + 1 if epoch_loss > best - self.tol else 0
                        best = min(best, epoch_loss)
                        if stale >= self.n_iter_no_change:
                            break

        W = W.cpu()
        self.coef_ = W[:d].T.contiguous().numpy()
        self.intercept_ = W[d].clone().numpy()
        self.loss_history_ = history[:steps].cpu().numpy()
        self.n_iter_ = steps
        self.learning_rate_ = lr0
        return self

    # ----------------------------------------------------------------------- prediction

    def _scores(self, X: Any) -> torch.Tensor:
        self._check_fitted()
        Xt, _ = self._validate(X, reset=False)
        W = torch.from_numpy(self.coef_).to(Xt.device, Xt.dtype)
        b = torch.from_numpy(self.intercept_).to(Xt.device, Xt.dtype)
        return torch.addmm(b, Xt, W.T)

    def decision_function(self, X: Any) -> np.ndarray:
        """Class scores N×K (for two classes, scikit-learn's N scores of ``classes_[1]``)."""
        scores = self._scores(X)
        if scores.shape[1] == 2:
            scores = scores[:, 1] - scores[:, 0]
        return scores.cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """The class of the highest score."""
        index = self._scores(X).argmax(1).cpu().numpy()
        return self.classes_[index]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Mean accuracy on ``(X, y)``; an ImageSet supplies its own labels."""
        if y is None and isinstance(X, ImageSet):
            y = X.labels.numpy()
        return super().score(X, y, sample_weight=sample_weight)

    def _is_softmax(self) -> bool:
        return self.loss == "softmax"

    @available_if(_is_softmax)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities N×K, the softmax of the scores (only for ``loss="softmax"``: SVM
        scores are margins, not log-probabilities, so an SVM has no predict_proba)."""
        return torch.softmax(self._scores(X), dim=1).cpu().numpy()

    @available_if(_is_softmax)
    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`, computed stably (log-softmax)."""
        return torch.log_softmax(self._scores(X), dim=1).cpu().numpy()


# --------------------------------------------------------------------------- random search


@dataclass
class SearchTable:
    """The trials of :func:`random_search`: one dict per trial (lr, reg, train_acc, val_acc,
    fit_s), in the order they ran, and the index of the best (highest validation accuracy)."""

    rows: list[dict[str, float]] = field(default_factory=list)
    best_index: int = 0

    @property
    def best(self) -> dict[str, float]:
        return self.rows[self.best_index]

    def to_markdown(self, sort: bool = True) -> str:
        """A Markdown table, best validation accuracy first when ``sort``."""
        rows = sorted(self.rows, key=lambda r: -r["val_acc"]) if sort else self.rows
        lines = [
            "| lr | reg | train acc | val acc | fit s |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['lr']:.3e} | {r['reg']:.3e} | {r['train_acc']:.4f} | {r['val_acc']:.4f} "
            f"| {r['fit_s']:.2f} |"
            for r in rows
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()

    def __len__(self) -> int:
        return len(self.rows)


def random_search(
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    lr_range: tuple[float, float],
    reg_range: tuple[float, float],
    trials: int,
    loss: str = "svm",
    random_state: int = 0,
    verbose: bool = False,
    **params: Any,
) -> tuple[SearchTable, LinearClassifier]:
    """Random search of learning rate and regularisation (log-uniform in the two ranges).

    Trains one :class:`LinearClassifier` per trial on the training set (``params`` are passed to
    it, the same ``random_state`` for all) and scores it on both sets. Returns the table of trials
    and the model with the best validation accuracy (the first one among ties). Search coarse to
    fine, as the lectures advise: a wide range and few steps (``max_iter``) first, then a narrower
    range around the best trials and the full training length.
    """
    for name, bounds in (("lr_range", lr_range), ("reg_range", reg_range)):
        ok = isinstance(bounds, Sequence) and len(bounds) == 2
        ok = ok and all(is_number(v) and math.isfinite(v) for v in bounds)
        if not (ok and 0 < bounds[0] <= bounds[1]):
            raise fail(
                "random_search",
                name,
                "(low, high) with 0 < low <= high",
                bounds,
                hint="sampled log-uniformly",
                error=InputError,
            )
    positive_int("random_search", "trials", trials, error=InputError)
    for forbidden in ("learning_rate", "reg"):
        if forbidden in params:
            raise InputError(f"random_search: {forbidden} is searched; do not pass it")
    rng = np.random.default_rng(random_state)

    def log_uniform(low: float, high: float) -> float:
        if low == high:
            return float(low)
        return float(10 ** rng.uniform(math.log10(low), math.log10(high)))

    table = SearchTable()
    best_model: LinearClassifier | None = None
    with progress_bar("random search", trials, "trials", verbose) as advance:
        for _ in range(trials):
            lr, reg = log_uniform(*lr_range), log_uniform(*reg_range)
            model = LinearClassifier(
                loss=loss, learning_rate=lr, reg=reg, random_state=random_state, **params
            )
            t0 = time.perf_counter()
            model.fit(X_train, y_train)
            fit_s = time.perf_counter() - t0
            row = {
                "lr": lr,
                "reg": reg,
                "train_acc": float(model.score(X_train, y_train)),
                "val_acc": float(model.score(X_val, y_val)),
                "fit_s": fit_s,
            }
            table.rows.append(row)
            if best_model is None or row["val_acc"] > table.best["val_acc"]:
                table.best_index = len(table.rows) - 1
                best_model = model
            advance(1)
    assert best_model is not None
    return table, best_model


# --------------------------------------------------------------------------- templates


def plot_templates(
    model: LinearClassifier, image_shape: Sequence[int], classes: Sequence[str] | None = None
) -> Any:
    """The learned weights as images, one per class: the lectures' class templates.

    Each row of ``coef_`` (the bias left out) is reshaped to ``image_shape`` (C×H×W, or H×W for
    grey images) and rescaled to 0–255 on its own minimum and maximum. Returns a
    ``matplotlib.figure.Figure`` titled with ``classes`` (default ``model.classes_``).
    """
    from matplotlib.figure import Figure

    coef = getattr(model, "coef_", None)
    if coef is None:
        raise InputError("plot_templates: the model is not fitted; call fit first")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or math.prod(shape) != coef.shape[1]:
        raise InputError(
            f"plot_templates: image_shape {shape} does not hold the model's {coef.shape[1]} "
            f"features; give C×H×W (or H×W) whose product is {coef.shape[1]}"
        )
    names = [str(c) for c in (model.classes_ if classes is None else classes)]
    if len(names) != len(coef):
        raise InputError(f"plot_templates: {len(names)} class names for {len(coef)} classes")
    images = _template_images(coef, shape)
    cols = min(len(images), 10)
    rows = math.ceil(len(images) / cols)
    fig = Figure(figsize=(1.4 * cols, 1.6 * rows))
    for i, (img, name) in enumerate(zip(images, names, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        if img.ndim == 2:
            ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(img)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


def _template_images(coef: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Each class's weights as a uint8 image (H×W×C, or H×W), rescaled to 0–255 on its range."""
    out = []
    for w in np.asarray(coef, dtype=np.float64):
        lo, hi = w.min(), w.max()
        scaled = 255.0 * (w - lo) / (hi - lo) if hi > lo else np.full_like(w, 127.5)
        img = scaled.reshape(shape).round().astype(np.uint8)
        if img.ndim == 3:
            img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
        out.append(img)
    return out
