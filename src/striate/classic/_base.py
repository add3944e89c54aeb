"""What every classical estimator shares: turning inputs into validated tensors on the device.

Inputs are NumPy arrays (or anything array-like), torch tensors, or an ImageSet, whose images are
flattened to N×(C·H·W) features on the 0–1 scale and whose labels serve as `y`. NumPy and CPU
tensors go through scikit-learn's own validation (so its messages and `n_features_in_` follow the
estimator contract); CUDA tensors are checked in place. Every problem raises `InputError`, which is
both a `StriateError` (one line in the CLI) and a `ValueError` (scikit-learn's contract).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from striate.data.imageset import ImageSet
from striate.device import resolve_device
from striate.errors import InputError

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def image_features(ds: ImageSet) -> torch.Tensor:
    """An ImageSet as float32 features N×(C·H·W) on the 0–1 scale."""
    return ds.images.flatten(1).float().div_(255)


def _first_line(e: ValueError) -> str:
    """scikit-learn's message without its paragraph of advice, keeping the reshape hint."""
    text = str(e)
    line = text.splitlines()[0]
    if "Reshape your data" in text:
        line += (
            " Reshape your data: X.reshape(-1, 1) if it is one feature, X.reshape(1, -1) if it "
            "is one sample."
        )
    return line


class TorchEstimator(BaseEstimator):
    """Base for striate's scikit-learn estimators that compute with torch on `self.device`."""

    def _device(self) -> torch.device:
        try:
            return resolve_device(getattr(self, "device", "auto"))
        except Exception as e:  # noqa: BLE001 - an unusable device is an argument error
            raise InputError(str(e)) from e

    def _validate(
        self,
        X: Any,
        y: Any = None,
        *,
        reset: bool,
        dtype: torch.dtype = torch.float32,
        min_samples: int = 1,
    ) -> tuple[torch.Tensor, np.ndarray | None]:
        """X as a 2-D `dtype` tensor on the device (y, if any, as a NumPy array); sets or checks
        `n_features_in_`."""
        name = type(self).__name__
        if isinstance(X, ImageSet):
            if y is None and reset:
                y = X.labels.numpy()
            X = image_features(X)
        if isinstance(X, torch.Tensor) and X.device.type != "cpu":
            Xt = self._validate_device_tensor(X, reset=reset, dtype=dtype, name=name)
        else:
            if isinstance(X, torch.Tensor):
                X = X.detach().numpy()
            if isinstance(y, torch.Tensor):
                y = y.detach().cpu().numpy()
            np_dtype = [np.float32, np.float64] if dtype == torch.float32 else np.float64
            try:
                if y is None:
                    X = validate_data(
                        self, X, reset=reset, dtype=np_dtype, ensure_min_samples=min_samples
                    )
                else:
                    X, y = validate_data(
                        self, X, y, reset=reset, dtype=np_dtype, ensure_min_samples=min_samples
                    )
            except ValueError as e:
                raise InputError(f"{name}: {_first_line(e)}") from e
            if not X.flags.writeable:  # torch warns on read-only memory; such inputs are rare
                X = X.copy()
            Xt = torch.from_numpy(np.ascontiguousarray(X)).to(self._device(), dtype)
        return Xt, (None if y is None else np.asarray(y))

    def _validate_device_tensor(
        self, X: torch.Tensor, *, reset: bool, dtype: torch.dtype, name: str
    ) -> torch.Tensor:
        if X.ndim != 2:
            raise InputError(f"{name}: expected a 2-D tensor N×D of features, got {tuple(X.shape)}")
        if len(X) == 0:
            raise InputError(f"{name}: found a tensor with 0 samples; at least 1 is required")
        if not torch.isfinite(X).all():
            raise InputError(f"{name}: input contains NaN or infinity; clean or impute it first")
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise InputError(
                f"{name}: X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return X.to(self._device(), dtype)

    def _check_fitted(self) -> None:
        check_is_fitted(self)


class ClassifierInputs:
    """Label handling for classifiers: `classes_` and labels as indices 0..K-1."""

    def _require_labels(self, X: Any, y: Any) -> None:
        """Refuse a fit without labels (an ImageSet carries its own), in scikit-learn's words."""
        if y is None and not isinstance(X, ImageSet):
            raise InputError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: give "
                f"labels y, or an ImageSet, which carries them"
            )

    def _encode_labels(self, y: np.ndarray | None, device: torch.device) -> torch.Tensor:
        name = type(self).__name__
        if y is None:
            raise InputError(f"{name}: fit needs labels y (or an ImageSet, which carries them)")
        try:
            check_classification_targets(y)
        except ValueError as e:
            raise InputError(f"{name}: {e}") from e
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InputError(
                f"{name}: the training set has one class ('{self.classes_[0]}'); a classifier "
                f"needs at least 2 classes"
            )
        return torch.from_numpy(index.astype(np.int64)).to(device)
