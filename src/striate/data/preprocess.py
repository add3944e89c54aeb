"""Preprocessing whose statistics are fitted on training data only, then applied to any batch.

Four transforms share one convention: `fit(train)` (an ImageSet, or an N×C×H×W uint8 tensor read
as /255, or a float tensor already on the 0–1 scale) computes the statistics in float64, in chunks
of bounded size, and returns `self`; fitted attributes end in `_`; `transform(x)` (also `x ↦ t(x)`)
and `inverse_transform(x)` (also `inverse`) work on float batches on whatever device and in whatever
float dtype `x` has (uint8 batches are read as /255 into float32).

- `Normalizer`: per-channel mean and standard deviation.
- `MeanImage`: subtract the per-pixel mean image (Krizhevsky et al. 2012, AlexNet).
- `PCA`: project onto the leading principal components, optionally whitened.
- `ZCA`: zero-phase whitening, W = U diag(1/sqrt(S + eps)) Uᵀ (Bell & Sejnowski 1997).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from striate.checks import positive_number
from striate.data.imageset import ImageSet
from striate.errors import StriateError

DataLike = ImageSet | torch.Tensor | np.ndarray

__all__ = ["PCA", "ZCA", "MeanImage", "Normalizer"]

_CHUNK_ELEMENTS = 1 << 22  # float64 values per chunk (32 MiB) bound the memory of a fit


def _fmt(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def _fit_data(data: DataLike, who: str) -> torch.Tensor:
    """The N×C×H×W uint8 or float tensor behind `data`, checked."""
    if isinstance(data, ImageSet):
        t = data.images
    elif isinstance(data, np.ndarray):
        t = torch.from_numpy(data)
    elif isinstance(data, torch.Tensor):
        t = data
    else:
        raise StriateError(
            f"{who}.fit expects an ImageSet or an N×C×H×W tensor, got {type(data).__name__}"
        )
    if t.ndim != 4:
        raise StriateError(
            f"{who}.fit expects images N×C×H×W, got shape {_fmt(t.shape)}: "
            f"add a channel axis for grey images (x[:, None])"
        )
    if t.dtype != torch.uint8 and not t.is_floating_point():
        raise StriateError(
            f"{who}.fit expects uint8 pixels (0–255) or floats on the 0–1 scale, got {t.dtype}"
        )
    if len(t) == 0:
        raise StriateError(f"cannot fit {who} on an empty set of images")
    return t


def _chunks(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """`t` as float64 rows (N'×D) on the 0–1 scale, a bounded number of rows at a time."""
    d = t[0].numel()
    step = max(1, _CHUNK_ELEMENTS // d)
    device = torch.device("cpu") if t.device.type == "mps" else t.device  # MPS has no float64
    for start in range(0, len(t), step):
        chunk = t[start : start + step].to(device=device, dtype=torch.float64)
        if t.dtype == torch.uint8:
            chunk = chunk / 255
        yield chunk.reshape(len(chunk), d)


def _mean_cov(t: torch.Tensor, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and covariance (divided by N - 1) of flattened images, in two passes."""
    n = len(t)
    if n < 2:
        raise StriateError(f"{who} needs at least 2 images to estimate a covariance, got {n}")
    total = sum(chunk.sum(0) for chunk in _chunks(t))
    mean = total / n
    cov = torch.zeros(mean.numel(), mean.numel(), dtype=torch.float64, device=mean.device)
    for chunk in _chunks(t):
        centred = chunk - mean
        cov.addmm_(centred.T, centred)
    return mean.cpu(), (cov / (n - 1)).cpu()


def _eigh_descending(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (largest first, clamped at 0) and eigenvectors (columns) of a covariance."""
    evals, evecs = torch.linalg.eigh(cov)
    return evals.flip(0).clamp_min(0), evecs.flip(1)


class _Fitted:
    """The shared fit/transform convention; subclasses set `_fitted` to an attribute of `fit`."""

    _fitted = "mean_"

    def fit(self, data: DataLike) -> _Fitted:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.transform(x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Undo `transform` (same as `inverse_transform`)."""
        return self.inverse_transform(x)

    def _check_fitted(self) -> None:
        if not hasattr(self, self._fitted):
            name = type(self).__name__
            raise StriateError(
                f"this {name} is not fitted yet: call {name}(...).fit(train_data) first"
            )

    def _reset(self) -> None:
        self.__dict__.pop("_cache", None)

    def _param(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Fitted tensor `name` in `like`'s dtype and on its device, converted once and kept."""
        cache = self.__dict__.setdefault("_cache", {})
        key = (name, like.device, like.dtype)
        if key not in cache:
            # cast on the CPU first: some devices (MPS) have no float64
            cache[key] = getattr(self, name).to(dtype=like.dtype).to(like.device)
        return cache[key]

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        """A float batch: uint8 is read as /255 into float32; other integer types are refused."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise StriateError(
                f"{type(self).__name__} expects a tensor of images, got {type(x).__name__}"
            )
        if x.dtype == torch.uint8:
            return x.float() / 255
        if not x.is_floating_point():
            raise StriateError(
                f"{type(self).__name__} expects a float batch on the 0–1 scale (or uint8), "
                f"got {x.dtype}"
            )
        return x

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """`x` checked, as a float batch (`_batch`) of the shape the transform was fitted on."""
        self._check_fitted()
        x = self._batch(x)
        self._check_shape(x)
        return x

    def _check_shape(self, x: torch.Tensor) -> None:
        """`x` must end in the C×H×W the transform was fitted on."""
        shape = tuple(self.shape_)
        if x.ndim < 3 or tuple(x.shape[-3:]) != shape:
            raise StriateError(
                f"{type(self).__name__} was fitted on images of shape {_fmt(shape)} but got a "
                f"batch of shape {_fmt(x.shape)}: fit it on training data shaped like the "
                f"images it will transform"
            )


class Normalizer(_Fitted):
    """Per-channel standardisation `(x - mean) / std`, statistics on the 0–1 pixel scale.

    Give `mean` and `std` (one value per channel) to use known statistics without fitting, e.g.
    `Normalizer(mean=[0.1307], std=[0.3081])` for MNIST; `fit` replaces them. The standard
    deviation is the population one (divided by N); a constant channel gets std 1, as in
    scikit-learn's StandardScaler, so that nothing is divided by zero.
    """

    def __init__(
        self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
    ) -> None:
        self.mean = mean
        self.std = std
        if (mean is None) != (std is None):
            raise StriateError(
                "Normalizer needs both mean and std (one value per channel), or neither"
            )
        if mean is not None:
            m = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
            s = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
            if len(m) != len(s) or len(m) == 0:
                raise StriateError(
                    f"Normalizer got {len(m)} means and {len(s)} stds: give one of each per channel"
                )
            if not bool(torch.isfinite(m).all() and torch.isfinite(s).all() and (s > 0).all()):
                raise StriateError(
                    f"Normalizer needs finite means and positive stds, got mean={m.tolist()} "
                    f"std={s.tolist()}"
                )
            self.mean_, self.std_ = m, s
            self.shape_: tuple[int, ...] | None = None

    def fit(self, data: DataLike) -> Normalizer:
        """Per-channel mean and std of `data`, merged over chunks (Chan et al. 1979)."""
        t = _fit_data(data, "Normalizer")
        c = t.shape[1]
        count, mean, m2 = 0, None, None
        for chunk in _chunks(t):
            x = chunk.reshape(len(chunk), c, -1).transpose(0, 1).reshape(c, -1)
            m = x.shape[1]
            chunk_mean = x.mean(1)
            chunk_m2 = (x - chunk_mean[:, None]).square().sum(1)
            if mean is None:
                count, mean, m2 = m, chunk_mean, chunk_m2
                continue
            delta = chunk_mean - mean
            total = count + m
            mean = mean + delta * (m / total)
            m2 = m2 + chunk_m2 + delta.square() * (count * m / total)
            count = total
        std = (m2 / count).sqrt()
        self._reset()
        self.mean_ = mean.cpu()
        self.std_ = torch.where(std > 0, std, torch.ones_like(std)).cpu()
        self.shape_ = tuple(t.shape[1:])
        return self

    def _check_shape(self, x: torch.Tensor) -> None:
        """Only the channels (axis -3) must match: any image size is standardised."""
        c = len(self.mean_)
        if x.ndim < 3 or x.shape[-3] != c:
            fitted = f" ({_fmt(self.shape_)})" if self.shape_ else ""
            raise StriateError(
                f"Normalizer was fitted on {c}-channel images{fitted} but got a batch of shape "
                f"{_fmt(x.shape)}: channels must be axis -3 and match the training data"
            )

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """`(x - mean) / std` per channel (channels on axis -3), on `x`'s device and dtype."""
        x = self._input(x)
        mean = self._param("mean_", x)[:, None, None]
        std = self._param("std_", x)[:, None, None]
        return (x - mean) / std

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """`x * std + mean`: back to the 0–1 pixel scale."""
        x = self._input(x)
        return x * self._param("std_", x)[:, None, None] + self._param("mean_", x)[:, None, None]

    def state_dict(self) -> dict[str, list[float]]:
        """Plain lists, ready for JSON (e.g. `model.json`)."""
        self._check_fitted()
        return {"mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Normalizer:
        """Rebuild a fitted Normalizer from `state_dict()`."""
        if not isinstance(state, dict) or not {"mean", "std"} <= state.keys():
            raise StriateError(
                "a Normalizer state needs 'mean' and 'std' lists (as written by state_dict())"
            )
        return cls(mean=state["mean"], std=state["std"])

    def __repr__(self) -> str:
        if not hasattr(self, "mean_"):
            return "Normalizer()"
        mean = [round(v, 4) for v in self.mean_.tolist()]
        std = [round(v, 4) for v in self.std_.tolist()]
        return f"Normalizer(mean={mean}, std={std})"


class MeanImage(_Fitted):
    """Subtract the per-pixel mean image (C×H×W) of the training set.

    The preprocessing of AlexNet (Krizhevsky, Sutskever & Hinton 2012): "subtracting the mean
    activity over the training set from each pixel".
    """

    def fit(self, data: DataLike) -> MeanImage:
        t = _fit_data(data, "MeanImage")
        total = sum(chunk.sum(0) for chunk in _chunks(t))
        self._reset()
        self.mean_ = (total / len(t)).reshape(t.shape[1:]).cpu()
        self.shape_ = tuple(t.shape[1:])
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """`x - mean_image` for a batch (…×C×H×W) of the fitted image shape."""
        x = self._input(x)
        return x - self._param("mean_", x)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x)
        return x + self._param("mean_", x)

    def state_dict(self) -> dict[str, Any]:
        """The mean image as nested lists (C×H×W), ready for JSON."""
        self._check_fitted()
        return {"mean": self.mean_.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MeanImage:
        if not isinstance(state, dict) or "mean" not in state:
            raise StriateError("a MeanImage state needs a 'mean' C×H×W nested list")
        mean = torch.as_tensor(state["mean"], dtype=torch.float64)
        if mean.ndim != 3:
            raise StriateError(f"a MeanImage mean must be C×H×W, got shape {_fmt(mean.shape)}")
        obj = cls()
        obj.mean_, obj.shape_ = mean, tuple(mean.shape)
        return obj

    def __repr__(self) -> str:
        return "MeanImage()"


class PCA(_Fitted):
    """Principal component analysis of flattened images, optionally whitened.

    Fitted by the eigendecomposition of the float64 covariance (divided by N - 1, as scikit-learn
    does). `n_components`: None keeps min(N, D); an int keeps that many; a float in (0, 1) keeps
    the fewest components explaining at least that fraction of the variance. Component signs are
    fixed so that each component's largest-magnitude entry is positive. With `whiten`, the
    projections are divided by sqrt(explained variance) so that each has unit variance on the
    training data (variances below 1e-12 of the largest count as that floor, not as zero).
    """

    _fitted = "components_"

    def __init__(self, n_components: int | float | None = None, whiten: bool = False) -> None:
        self.n_components = n_components
        self.whiten = whiten

    def fit(self, data: DataLike) -> PCA:
        t = _fit_data(data, "PCA")
        n, d = len(t), t[0].numel()
        k, fraction = self._n_keep(n, d)
        mean, cov = _mean_cov(t, "PCA")
        evals, evecs = _eigh_descending(cov)
        total = torch.diagonal(cov).sum()
        ratio = evals / total if total > 0 else torch.zeros_like(evals)
        if fraction is not None:  # fewest components explaining `fraction`, as scikit-learn
            k = int(torch.searchsorted(ratio.cumsum(0), fraction, right=True)) + 1
            k = min(k, n, d)
        components = evecs[:, :k].T.contiguous()
        big = components.abs().argmax(1)
        components *= torch.sign(components[torch.arange(k), big])[:, None]
        self._reset()
        self.mean_ = mean
        self.components_ = components
        self.explained_variance_ = evals[:k].clone()
        self.explained_variance_ratio_ = ratio[:k].clone()
        self.n_components_ = k
        self.shape_ = tuple(t.shape[1:])
        floor = max(float(evals[0]), 1e-300) * 1e-12
        self.scale_ = self.explained_variance_.clamp_min(floor).sqrt()
        return self

    def _n_keep(self, n: int, d: int) -> tuple[int, float | None]:
        """Components to keep, or the fraction of variance to explain when given as a float."""
        nc = self.n_components
        if nc is None:
            return min(n, d), None
        if isinstance(nc, bool) or not isinstance(nc, (int, float, np.integer, np.floating)):
            raise StriateError(f"PCA n_components must be None, an int or a fraction, got {nc!r}")
        if isinstance(nc, (float, np.floating)):
            if not 0 < nc < 1:
                raise StriateError(
                    f"PCA n_components={nc}: a float must be a fraction of variance in (0, 1)"
                )
            return min(n, d), float(nc)
        if not 1 <= nc <= min(n, d):
            raise StriateError(
                f"PCA n_components={nc} is out of range: {n} images of {d} values allow "
                f"1 to {min(n, d)}"
            )
        return int(nc), None

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Projections (…×k) of images (…×C×H×W) onto the components."""
        x = self._input(x)
        flat = x.reshape(*x.shape[:-3], -1) - self._param("mean_", x)
        z = flat @ self._param("components_", x).T
        if self.whiten:
            z = z / self._param("scale_", x)
        return z

    def inverse_transform(self, z: torch.Tensor) -> torch.Tensor:
        """Images (…×C×H×W) rebuilt from projections (…×k): the best rank-k approximation."""
        self._check_fitted()
        z = self._batch(z)
        if z.ndim < 1 or z.shape[-1] != self.n_components_:
            raise StriateError(
                f"PCA has {self.n_components_} components but got projections of shape "
                f"{_fmt(z.shape)}: the last axis must hold the {self.n_components_} projections"
            )
        if self.whiten:
            z = z * self._param("scale_", z)
        flat = z @ self._param("components_", z) + self._param("mean_", z)
        return flat.reshape(*z.shape[:-1], *self.shape_)

    def __repr__(self) -> str:
        return f"PCA(n_components={self.n_components!r}, whiten={self.whiten!r})"


class ZCA(_Fitted):
    """Zero-phase component analysis whitening of flattened images; output has the input's shape.

    W = U diag(1 / sqrt(S + eps)) Uᵀ, with U S Uᵀ the eigendecomposition of the training
    covariance (Bell & Sejnowski 1997, "The 'independent components' of natural scenes are edge
    filters"; used for CIFAR-10 by Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny
    Images", appendix, and by Coates, Lee & Ng 2011). Of all whitening matrices, this one keeps the
    whitened images closest to the originals. `eps` (on the 0–1 pixel scale) damps the directions
    of tiny variance, which would otherwise be amplified noise.
    """

    _fitted = "matrix_"

    def __init__(self, eps: float = 1e-2) -> None:
        self.eps = eps

    def fit(self, data: DataLike) -> ZCA:
        eps = positive_number("ZCA", "eps", self.eps)
        t = _fit_data(data, "ZCA")
        mean, cov = _mean_cov(t, "ZCA")
        evals, evecs = _eigh_descending(cov)
        # W = U diag(1/sqrt(S + eps)) U^T  (Bell & Sejnowski 1997; Krizhevsky 2009; Coates 2011)
        w = (evecs * (evals + eps).rsqrt()) @ evecs.T
        w_inv = (evecs * (evals + eps).sqrt()) @ evecs.T
        total = torch.diagonal(cov).sum()
        self._reset()
        self.mean_ = mean
        self.matrix_ = (w + w.T) / 2  # symmetric by construction; remove rounding asymmetry
        self.inverse_matrix_ = (w_inv + w_inv.T) / 2
        self.eigenvalues_ = evals
        self.explained_variance_ratio_ = evals / total if total > 0 else torch.zeros_like(evals)
        self.shape_ = tuple(t.shape[1:])
        return self

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Whitened images, same shape as `x` (…×C×H×W)."""
        x = self._input(x)
        flat = x.reshape(*x.shape[:-3], -1) - self._param("mean_", x)
        return (flat @ self._param("matrix_", x)).reshape(x.shape)

    def inverse_transform(self, x: torch.Tensor) -> torch.Tensor:
        """Images back on the 0–1 pixel scale from whitened ones."""
        x = self._input(x)
        flat = x.reshape(*x.shape[:-3], -1) @ self._param("inverse_matrix_", x)
        return (flat + self._param("mean_", x)).reshape(x.shape)

    def __repr__(self) -> str:
        return f"ZCA(eps={self.eps!r})"
