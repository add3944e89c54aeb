"""Neighbourhood Components Analysis: a linear map A learned so that kNN works well after it.

Goldberger, Roweis, Hinton, Salakhutdinov (2004), "Neighbourhood Components Analysis", NIPS 17.
Each point i picks a neighbour j ≠ i at random with

    p_ij = exp(-‖A x_i - A x_j‖²) / Σ_{k≠i} exp(-‖A x_i - A x_k‖²),      p_ii = 0,

and is classified correctly with probability p_i = Σ_{j in class(i)} p_ij. NCA maximises the
log-likelihood Σ_i log p_i (the paper's second objective); a rectangular A (d × D, d < D) reduces
the dimension, which shrinks kNN's storage and search time by D/d.

How it trains (the tricks of Zakka's post "kNN classification using Neighbourhood Components
Analysis", 2020, and where this differs):

- the log objective (the post's "summing log probabilities is more stable"), computed with
  logsumexp and the diagonal at -inf before the softmax, so a point never picks itself; the
  loss minimised is -mean_i log p_i + reg·‖A‖²_F, a point with no class-mate in its batch being
  left out of the mean; the gradient is written out (`_NCALogProb`) and checked in the tests;
- mini-batches: each step draws `batch_size` points (shuffled passes over the data) and the
  softmax runs over the batch, so a step costs O(B²·d) instead of O(N²·d); Adam, with a step size
  relative to the size of A's entries and decayed by a cosine, replaces conjugate gradients;
- the inputs are standardised (mean and standard deviation of the training set, kept and applied
  by `transform`), so the optimiser moves every feature's weights at the same relative pace;
- initialisation: PCA of the features as given (the paper's and scikit-learn's), then one scale
  factor so that the squared distances start at `_INIT_SQ_DIST` on average: soft neighbourhoods,
  the purpose of the post's small random init. The post's L2 penalty is `reg` (off by default:
  with a cosine-decayed step A does not blow up); its hinge term is not used (the PCA start does
  not collapse).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from striate.checks import integer, is_int, number, one_of, positive_int, positive_number
from striate.classic._base import ClassifierInputs, TorchEstimator
from striate.data.imageset import ImageSet
from striate.errors import InputError, StriateError
from striate.progress import progress_bar

__all__ = ["NCA", "nca_log_probs", "nca_loss", "plot_embedding"]

_INITS = ("pca", "identity", "random")
_INIT_SQ_DIST = 20.0  # mean squared embedding distance at the start (soft neighbourhoods)
_PCA_COV_MAX_FEATURES = 4096  # above this, PCA init eigendecomposes a Gram matrix of rows
_PCA_GRAM_ROWS = 4096  # the rows (a random subset) that Gram matrix is made of
_STAT_CHUNK_ROWS = 4096


_EXP_FLOOR = {torch.float32: -30.0, torch.float64: -80.0}  # see _NCALogProb.forward


class _NCALogProb(torch.autograd.Function):
    """log p_i of embedded points z (B×d), with its gradient written out (fewer passes over the
    B×B matrices than autograd, and no subnormal floats, which are slow on CPUs).

    `same` (B×B, bool) marks class-mates j ≠ i. Returns log p_i and `valid`, the points that have
    a class-mate; the others get log p_i = 0 and no gradient. Row maxima are subtracted before
    each exponential (logsumexp) and the shifted logits clamped at a floor (-30 in float32, -80
    in float64): a term that small weighs less than B·e^-30 ≈ 1e-13·B relative to the largest,
    far below the rounding error.
    """

    @staticmethod
    def forward(ctx, z, same):
        floor = _EXP_FLOOR.get(z.dtype, -30.0)
        sq = (z * z).sum(1)
        logits = torch.mm(z, z.T).mul_(2).sub_(sq[:, None]).sub_(sq[None, :]).clamp_max_(0)
        logits.fill_diagonal_(-math.inf)  # -‖z_i - z_j‖², a point is never its own neighbour
        top = logits.amax(1, keepdim=True)
        p = (logits - top).clamp_min_(floor).exp_()
        p.fill_diagonal_(0)
        den = p.sum(1, keepdim=True)
        p.div_(den)  # p_ij
        logits.masked_fill_(~same, -math.inf)  # only class-mates from here on
        top_same = logits.amax(1, keepdim=True)
        valid = torch.isfinite(top_same)  # -inf: no class-mate
        top_same = torch.where(valid, top_same, 0)
        q = logits.sub_(top_same).clamp_min_(floor).exp_().mul_(same)
        num = torch.where(valid, q.sum(1, keepdim=True), 1)
        q.div_(num)  # p_ij / p_i over the class-mates
        log_p = torch.where(valid, top_same + num.log() - top - den.log(), 0)[:, 0]
        valid = valid[:, 0]
        ctx.save_for_backward(z, p, q, valid)
        ctx.mark_non_differentiable(valid)
        return log_p, valid

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad, _):
        z, p, q, valid = ctx.saved_tensors
        # d log p_i / d(-D_ij) = q_ij - p_ij;  dD_ij/dz_i = 2(z_i - z_j) = -dD_ij/dz_j
        w = (q - p).mul_((grad * valid)[:, None])
        s = w + w.T
        grad_z = (s @ z).sub_(s.sum(1)[:, None] * z).mul_(2)
        return grad_z, None


def nca_log_probs(z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log p_i of embedded points `z` (B×d, B ≥ 2) with labels `y` (B,), and which points count.

    A point counts when it has a class-mate among the other points; for the others log p_i is
    reported as 0. Each point is excluded from its own neighbourhood (p_ii = 0).
    """
    if len(z) < 2:
        raise InputError(f"NCA needs at least 2 points to form neighbourhoods, got {len(z)}")
    same = y[:, None] == y[None, :]
    same.fill_diagonal_(False)
    return _NCALogProb.apply(z, same)


def nca_loss(A: torch.Tensor, X: torch.Tensor, y: torch.Tensor, reg: float = 0.0) -> torch.Tensor:
    """The NCA loss of the map `A` (d×D) on points `X` (N×D) with labels `y` (N,), differentiable:

        -(1/M) Σ_i log p_i + reg·‖A‖²_F,

    M being the number of points with a class-mate (the others are left out of the mean).
    """
    return _loss(X @ A.T, y, A, reg)


def _loss(z: torch.Tensor, y: torch.Tensor, A: torch.Tensor, reg: float) -> torch.Tensor:
    """nca_loss from the embedded points z = X Aᵀ."""
    log_p, valid = nca_log_probs(z, y)
    return -log_p.sum() / valid.sum().clamp_min(1) + reg * (A * A).sum()


class NCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClassifierInputs, TorchEstimator):
    """Neighbourhood Components Analysis (Goldberger et al. 2004), a scikit-learn transformer.

    Learns A (n_components × n_features) maximising the leave-one-out log-likelihood of a soft
    nearest-neighbour classifier; put it before a kNN classifier (a `Pipeline`) to reduce the
    dimension and the error. Trained with Adam on mini-batches, in float32 on `device` (see the
    module docstring); `transform` keeps float64 input in float64.

    Parameters:
        n_components: output dimension (None: n_features).
        init: "pca" (leading principal axes of the training data), "identity" (the first
            n_components features) or "random" (Gaussian on the standardised features); each is
            then scaled by one factor so the initial neighbourhoods are soft.
        max_iter: number of optimiser steps, one mini-batch each (with batch_size ≥ N, the
            full-batch iterations of scikit-learn's NCA).
        batch_size: points per step; the softmax runs over the points of the batch.
        learning_rate: Adam's step size relative to the RMS entry of the initial map, decayed
            to 0 by a cosine over max_iter steps.
        reg: L2 penalty reg·‖A‖²_F on the map acting on standardised features.
        standardize: scale each feature to zero mean and unit variance before learning.
        tol: stop early once the mean loss over a block of steps (one pass over the data, at
            least 20 steps) has failed 3 times in a row to improve on the best by
            tol·max(1, |best|); 0 runs all max_iter steps.
        random_state: seeds the init and the batches (drawn on the CPU, so the same on any device).
        device: "auto" (CUDA, MPS, then CPU), "cpu", "cuda", ...
        verbose: show a progress bar.

    Fitted attributes: `components_` (the map on the features as given:
    transform(X) = (X - mean_) @ components_.T, i.e. components_ = A / scale_), `mean_`, `scale_`
    (ones when standardize=False), `classes_`, `n_iter_` (steps taken), `loss_curve_` (the loss
    of each step), `n_features_in_`.
    """

    def __init__(
        self,
        n_components: int | None = None,
        *,
        init: str = "pca",
        max_iter: int = 200,
        batch_size: int = 500,
        learning_rate: float = 0.03,
        reg: float = 0.0,
        standardize: bool = True,
        tol: float = 1e-4,
        random_state: int | None = 0,
        device: str = "auto",
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.reg = reg
        self.standardize = standardize
        self.tol = tol
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ----------------------------------------------------------------------------- contract

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def _check_params(self) -> None:
        name, bad = type(self).__name__, InputError
        positive_int(name, "n_components", self.n_components, allow_none=True, error=bad)
        one_of(name, "init", self.init, _INITS, error=bad)
        positive_int(name, "max_iter", self.max_iter, error=bad)
        hint = "the softmax needs neighbours"
        integer(name, "batch_size", self.batch_size, low=2, hint=hint, error=bad)
        positive_number(name, "learning_rate", self.learning_rate, error=bad)
        for key in ("reg", "tol"):
            number(name, key, getattr(self, key), low=0, error=bad)

    def _seed(self) -> int:
        if is_int(self.random_state) and self.random_state >= 0:
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    # ----------------------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> NCA:
        """Learn the map from training points `X` (N×D array, tensor or ImageSet) and labels `y`."""
        name = type(self).__name__
        self._check_params()
        self._require_labels(X, y)
        Xt, y = self._validate(X, y, reset=True, min_samples=2)
        n, n_features = Xt.shape
        device = Xt.device
        if y is not None and len(np.unique(y)) == 1:
            raise InputError(
                f"{name}: the training set has one class ('{np.asarray(y).ravel()[0]}'); NCA "
                f"learns a metric that separates classes, so it needs at least 2"
            )
        labels = self._encode_labels(y, device)
        if not bool((torch.bincount(labels) >= 2).any()):
            raise InputError(
                f"{name}: every class has a single sample, so no point has a neighbour of its own "
                f"class; NCA needs at least 2 samples of some class"
            )
        d = n_features if self.n_components is None else int(self.n_components)
        if d > n_features:
            raise InputError(
                f"{name}: n_components={d} is larger than the number of features "
                f"({n_features}); choose n_components ≤ {n_features}"
            )

        mean, scale = self._moments(Xt)
        gen = torch.Generator().manual_seed(self._seed())  # CPU: the same draws on every device
        A0 = self._initial_map(Xt, mean, scale, d, gen)
        A, curve = self._train(Xt, labels, mean, scale, A0, gen)

        self.mean_ = mean.cpu().numpy()
        self.scale_ = scale.cpu().numpy()
        self.components_ = (A.to(scale.device, torch.float64) / scale).cpu().numpy()
        self.loss_curve_ = curve
        self.n_iter_ = len(curve)
        return self

    def _moments(self, Xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-feature mean and standard deviation in float64 (zero spreads, and every spread
        when standardize=False, become 1)."""
        n, D = Xt.shape
        work = _float64_device(Xt.device)
        shift = Xt[0].to(work, torch.float64)
        s1 = torch.zeros(D, dtype=torch.float64, device=work)
        s2 = torch.zeros_like(s1)
        for start in range(0, n, _STAT_CHUNK_ROWS):  # float64 sums without a float64 copy of X
            c = Xt[start : start + _STAT_CHUNK_ROWS].to(work, torch.float64) - shift
            s1 += c.sum(0)
            s2 += (c * c).sum(0)
        m = s1 / n
        mean = shift + m
        if not self.standardize:
            return mean, torch.ones_like(mean)
        std = (s2 / n - m * m).clamp_min(0).sqrt()
        small = std <= 10 * torch.finfo(Xt.dtype).eps * mean.abs().clamp_min(1)
        return mean, torch.where(small, torch.ones_like(std), std)

    def _initial_map(
        self,
        Xt: torch.Tensor,
        mean: torch.Tensor,
        scale: torch.Tensor,
        d: int,
        gen: torch.Generator,
    ) -> torch.Tensor:
        """A0 (d×D, float32, acting on standardised features), scaled so neighbourhoods are soft."""
        n, D = Xt.shape
        work = _float64_device(Xt.device)
        m = mean.to(Xt.device, Xt.dtype)
        centred = lambda idx: (Xt[idx] - m).to(work, torch.float64)  # noqa: E731
        centred32 = lambda idx: (Xt[idx] - m).to(work)  # noqa: E731
        pick = lambda k: torch.randperm(n, generator=gen)[:k].to(Xt.device)  # noqa: E731
        if self.init == "random":  # Gaussian in the standardised coordinates
            A0 = torch.randn(d, D, generator=gen, dtype=torch.float64).to(work)
        else:  # a map on the features as given, expressed in standardised coordinates below
            if self.init == "identity" or (
                D > _PCA_COV_MAX_FEATURES and d >= min(n, _PCA_GRAM_ROWS)
            ):  # (too few rows for a PCA of that many components: start from the identity)
                A0 = torch.eye(d, D, dtype=torch.float64, device=work)
            elif D <= _PCA_COV_MAX_FEATURES:  # eigenvectors of the covariance of all the points
                cov = torch.zeros(D, D, dtype=torch.float64, device=work)
                for start in range(0, n, _STAT_CHUNK_ROWS):
                    c = centred32(slice(start, start + _STAT_CHUNK_ROWS))
                    cov += (c.T @ c).double()  # float32 products, float64 sums: enough to start
                A0 = torch.linalg.eigh(cov)[1][:, -d:].flip(1).T
            else:  # many features: PCA of a random subset of rows through their Gram matrix
                sub = centred(pick(_PCA_GRAM_ROWS))
                sub -= sub.mean(0)
                vals, vecs = torch.linalg.eigh(sub @ sub.T)
                top = vals[-d:].flip(0).clamp_min(1e-12).sqrt()[:, None]
                A0 = vecs[:, -d:].flip(1).T @ sub / top
            A0 = A0 * scale  # A_raw (x - mean) = (A_raw diag(scale)) (x - mean) / scale
        if self.init == "pca":  # eigenvectors have arbitrary signs: fix them for determinism
            A0 = A0 * torch.sign(A0.gather(1, A0.abs().argmax(1, keepdim=True)))
        # Soft neighbourhoods: one factor so that E‖A0(x_i - x_j)‖² = 2·Σ var(A0 x) = _INIT_SQ_DIST.
        probe = centred(pick(_STAT_CHUNK_ROWS)) / scale
        spread = 2 * float(((probe - probe.mean(0)) @ A0.T).var(0, correction=0).sum())
        if spread > 0:
            A0 = A0 * math.sqrt(_INIT_SQ_DIST / spread)
        return A0.to(Xt.device, torch.float32)

    def _train(
        self,
        Xt: torch.Tensor,
        labels: torch.Tensor,
        mean: torch.Tensor,
        scale: torch.Tensor,
        A0: torch.Tensor,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, list[float]]:
        """Adam on mini-batches, step size `learning_rate`·rms(A0) decayed by a cosine to 0."""
        n = len(Xt)
        m, inv_scale = mean.to(Xt.device, Xt.dtype), (1 / scale).to(Xt.device, Xt.dtype)
        n_batches = max(1, min(math.ceil(n / self.batch_size), n // 2))  # batches of ≥ 2 points
        block = max(20, n_batches)  # steps per check of the loss: at least one pass over the data
        steps = self.max_iter
        lr = self.learning_rate * float(A0.square().mean().sqrt())  # relative to A's entries
        beta1, beta2, eps = 0.9, 0.999, 1e-8 * lr
        A = A0.clone().requires_grad_(True)
        m1, m2 = torch.zeros_like(A0), torch.zeros_like(A0)
        losses = torch.zeros(steps, dtype=torch.float64, device=Xt.device)
        best, stale, step, shown, done = math.inf, 0, 0, 0, False
        with progress_bar("NCA", steps, "steps", enabled=bool(self.verbose)) as advance:
            while not done:
                for idx in torch.randperm(n, generator=gen).to(Xt.device).tensor_split(n_batches):
                    W = A * inv_scale  # standardisation folded into the map: no B×D passes
                    z = Xt[idx] @ W.T - m @ W.T  # = ((x - mean) / scale) Aᵀ
                    loss = _loss(z, labels[idx], A, self.reg)
                    (g,) = torch.autograd.grad(loss, A)
                    losses[step] = loss.detach()
                    step += 1
                    with torch.no_grad():  # Adam (Kingma & Ba 2015), written out
                        m1.lerp_(g, 1 - beta1)
                        m2.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                        rate = 0.5 * (1 + math.cos(math.pi * (step - 1) / steps)) * lr
                        denom = (m2 / (1 - beta2**step)).sqrt_().add_(eps)
                        A.addcdiv_(m1, denom, value=-rate / (1 - beta1**step))
                    if step % block and step < steps:
                        continue
                    advance(step - shown)
                    shown = step
                    recent = float(losses[max(0, step - block) : step].mean())
                    if not math.isfinite(recent):
                        raise StriateError(
                            f"NCA diverged (loss {recent}); lower learning_rate "
                            f"(now {self.learning_rate}) or raise reg"
                        )
                    if self.tol > 0:  # stop after 3 checks without a relative gain of tol
                        stale = 0 if recent < best - self.tol * max(1.0, abs(best)) else stale + 1
                        best = min(best, recent)
                    done = step >= steps or stale >= 3
                    if done:
                        break
        return A.detach(), losses[:step].tolist()

    # ----------------------------------------------------------------------------- use

    def transform(self, X: Any) -> Any:
        """Embed `X`: (X - mean_) @ components_.T. NumPy (or ImageSet) in, NumPy out; a tensor in,
        a tensor on the estimator's device out. float64 input stays float64, the rest is float32."""
        check_is_fitted(self)
        dtype = torch.float64 if _is_float64(X) else torch.float32
        Xt, _ = self._validate(X, reset=False, dtype=dtype)
        W = torch.as_tensor(self.components_, dtype=dtype, device=Xt.device)
        mean = torch.as_tensor(self.mean_, dtype=dtype, device=Xt.device)
        Z = (Xt - mean) @ W.T
        return Z if isinstance(X, torch.Tensor) else Z.cpu().numpy()


def _float64_device(device: torch.device) -> torch.device:
    """Where float64 statistics are computed: the device itself, or the CPU for MPS (no float64)."""
    return torch.device("cpu") if device.type == "mps" else device


def _is_float64(X: Any) -> bool:
    if isinstance(X, ImageSet):
        return False
    dtype = getattr(X, "dtype", None)
    if dtype is None:  # lists and the like become float64 arrays, as in scikit-learn
        return True
    if isinstance(dtype, torch.dtype):
        return dtype == torch.float64
    try:
        return np.dtype(dtype) == np.float64
    except TypeError:
        return True


def plot_embedding(
    X2: Any, y: Any, classes: Any = None, *, title: str | None = None, point_size: float = 6.0
) -> Figure:
    """A scatter plot of 2-D points `X2` (N×2) coloured by label `y`; a matplotlib Figure.

    `classes` names integer labels (classes[k] for label k, e.g. an ImageSet's `classes`); without
    it the legend shows the label values.
    """
    X2 = X2.detach().cpu().numpy() if isinstance(X2, torch.Tensor) else np.asarray(X2)
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if X2.ndim != 2 or X2.shape[1] != 2:
        raise InputError(
            f"plot_embedding needs N×2 points, got shape {X2.shape}; fit NCA(n_components=2)"
        )
    if y.shape != (len(X2),):
        raise InputError(f"plot_embedding needs one label per point: {len(X2)} points, y {y.shape}")
    labels = np.unique(y)
    if len(labels) <= 20:
        cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
        colors = [cmap(k) for k in range(len(labels))]
    else:
        colors = list(colormaps["turbo"](np.linspace(0, 1, len(labels))))
    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.add_subplot()
    for lab, color in zip(labels, colors, strict=True):
        pts = X2[y == lab]
        named = classes is not None and isinstance(lab, numbers.Integral)
        name = str(classes[int(lab)]) if named else str(lab)
        ax.scatter(pts[:, 0], pts[:, 1], s=point_size, color=color, label=name, linewidths=0)
    if len(labels) <= 30:
        ax.legend(markerscale=2.5, fontsize="small", loc="best", frameon=False)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(title or "NCA embedding")
    return fig
