"""Hand-crafted image features as batched scikit-learn transformers: HOG and colour histograms.

Both turn images into a float32 matrix N×F for a linear classifier (CS231n lecture 3: a hue
histogram and HOG, concatenated, e.g. with scikit-learn's `FeatureUnion`). Whole batches are
computed as torch tensor ops on `device` ("auto": CUDA, then MPS, then CPU), a bounded chunk of
images at a time, never image by image in Python.

Inputs: an ImageSet; a NumPy array or torch tensor of images N×C×H×W, integer (uint8) on the
0–255 scale or float on the 0–1 scale (`max_value` says otherwise, e.g. 255 for float 0–255 data);
or a 2-D array N×(C·H·W) of flattened images with `image_shape=(C, H, W)` (one entry may be -1,
as in `reshape`). Values must be finite and lie in [0, max_value]; anything else is an InputError.

References: N. Dalal and B. Triggs, "Histograms of oriented gradients for human detection",
CVPR 2005; scikit-image's `skimage.feature.hog`, whose layout and conventions HOG follows.

About 720 lines: HOG and the colour histograms are two transformers of one family (shared
chunking, devices and checks), as the models' family files are.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from striate.checks import is_int, is_number, positive_int
from striate.classic._base import TorchEstimator
from striate.data.imageset import ImageSet
from striate.errors import InputError

__all__ = [
    "EXPECTED_FAILED_CHECKS",
    "HOG",
    "LUMA",
    "ColorHistogram",
    "hog_cells",
    "normalize_blocks",
    "rgb_to_grey",
    "rgb_to_hsv",
]

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 luma weights for R, G, B (the greyscale used by HOG and `space="grey"`)."""

_CHUNK_PIXELS = 1 << 20  # pixels per channel in one chunk: 1024 CIFAR images, ~60 MB for HOG
_BLOCK_NORMS = ("L2-Hys", "L2", "L1", "L1-sqrt")
_EPS = 1e-5  # block-normalisation epsilon, as skimage.feature.hog

_NOT_RGB = (
    "fits 2-D data whose column count (1, 2, 4, 5 or 10) is not a multiple of 3, so its rows "
    "are not RGB images of shape (3, 1, -1); an InputError says so"
)
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    # HOG(cell=1, block_norm=None, image_shape=(1, 1, -1), max_value=255): every check passes
    "hog": {},
    # ColorHistogram(space="grey", image_shape=(1, 1, -1), max_value=255): every check passes
    "grey_histogram": {},
    # ColorHistogram(image_shape=(3, 1, -1), max_value=255), hue of 1×F RGB images:
    "hsv_histogram": {
        check: _NOT_RGB
        for check in (
            "check_dtype_object",
            "check_estimators_dtypes",
            "check_estimators_fit_returns_self",
            "check_estimators_overwrite_params",
            "check_fit2d_1feature",
            "check_fit2d_1sample",
            "check_fit_check_is_fitted",
            "check_fit_idempotent",
            "check_n_features_in",
            "check_n_features_in_after_fitting",
            "check_positive_only_tag_during_fit",
            "check_readonly_memmap_input",
            "check_transformers_unfitted_stateless",
        )
    },
}
"""Checks of scikit-learn's `check_estimator` expected to fail, with the reason, for the
instances named in the comments (the ones `tests/classic/test_features.py` checks).

scikit-learn's generic checks feed 2-D arrays of a few columns. Read as images of shape
(1, 1, -1) (one row of F pixels; `max_value=255` as the data exceed 1), HOG and the greyscale
histogram pass every check. The RGB histograms need 3 channels, which only some of the arrays
provide. Without `image_shape` every check that fits 2-D data fails by design: a 2-D input is
an InputError asking for image_shape.
"""


# --------------------------------------------------------------------------------------------
# Colour conversions


def rgb_to_grey(images: torch.Tensor) -> torch.Tensor:
    """Luma Y' = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601) of float images …×3×H×W → …×H×W."""
    r, g, b = images.unbind(-3)
    return r * LUMA[0] + g * LUMA[1] + b * LUMA[2]


def _hsv_fractions(rgb: torch.Tensor, parts: str = "hsv") -> dict[str, Any]:
    """The HSV channels in `parts` of …×3×H×W images: "h" and "s" as exact fractions (num, den),
    "v" as the value on the input's scale.

    Hue = num/den with num = 6·hue·delta ∈ [0, 6·delta) and den = 6·delta, so that for integer
    (uint8) inputs both are small integers and `floor(num·bins/den)` bins hue exactly. Ties
    between maximal channels give the same hue whichever formula applies; a grey pixel has hue 0
    and saturation 0, as in `matplotlib.colors.rgb_to_hsv`.
    """
    out: dict[str, Any] = {}
    v = rgb.amax(-3)
    if "v" in parts:
        out["v"] = v
    if "h" in parts or "s" in parts:
        delta = v - rgb.amin(-3)
        if "s" in parts:
            out["s"] = (delta, v.masked_fill(v == 0, 1.0))
        if "h" in parts:
            r, g, b = rgb.unbind(-3)
            six = 6 * delta
            red = g - b
            red = torch.where(red < 0, red + six, red)
            hue = torch.where(
                b == v, 4 * delta + (r - g), torch.where(g == v, 2 * delta + (b - r), red)
            )
            grey = delta == 0
            out["h"] = (hue.masked_fill_(grey, 0.0), six.masked_fill_(grey, 1.0))
    return out


def rgb_to_hsv(images: torch.Tensor) -> torch.Tensor:
    """HSV of RGB images …×3×H×W (float on 0–1, or uint8 on 0–255) as float, each in [0, 1].

    Hue is in [0, 1) (red 0, green 1/3, blue 2/3), the convention of
    `matplotlib.colors.rgb_to_hsv`, which works channels-last.
    """
    if not isinstance(images, torch.Tensor) or images.ndim < 3 or images.shape[-3] != 3:
        raise InputError(
            f"rgb_to_hsv: expected RGB images …×3×H×W, got {tuple(getattr(images, 'shape', ()))}"
        )
    x = images.float() / 255 if not images.is_floating_point() else images
    hsv = _hsv_fractions(x)
    (hn, hd), (sn, sd) = hsv["h"], hsv["s"]
    return torch.stack([hn / hd, sn / sd, hsv["v"]], dim=-3)


# --------------------------------------------------------------------------------------------
# Shared input handling


class _ImageFeatures(TransformerMixin, TorchEstimator):
    """Images in, float32 features out: input parsing, validation, chunking and the contract.

    Stateless: `transform` works unfitted; `fit` records `n_features_in_`, `image_shape_` and
    `n_features_out_`, and later inputs must then have the same image shape.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.positive_only = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- the contract -----------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> _ImageFeatures:
        """Check the images and the parameters; record the image shape and the output size."""
        images, scale = self._fit_inputs(X)
        for _ in self._chunks(images, scale):
            pass  # values checked chunk by chunk, no features computed
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """`fit(X).transform(X)`, checking the images once."""
        images, scale = self._fit_inputs(X)
        return self._compute(images, scale)

    def transform(self, X: Any) -> np.ndarray:
        """Features of the images X as a float32 array N×F (F = `n_features_out_`)."""
        self._check_params()
        images, scale = self._images(X, reset=False)
        self._check_image_shape(images.shape[1:])
        fitted = getattr(self, "image_shape_", None)
        if fitted is not None and tuple(images.shape[1:]) != tuple(fitted):
            raise InputError(
                f"{type(self).__name__}: fitted on images of shape {tuple(fitted)}, got "
                f"{tuple(images.shape[1:])}; features of other sizes do not line up"
            )
        return self._compute(images, scale)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features (their layout is described in the class docstring)."""
        check_is_fitted(self, "n_features_out_")
        if input_features is not None:
            names = np.asarray(input_features, dtype=object)
            if names.ndim != 1 or len(names) != self.n_features_in_:
                raise InputError(
                    f"{type(self).__name__}: input_features should have length "
                    f"{self.n_features_in_} (the pixels of one image), got {names.shape}"
                )
            known = getattr(self, "feature_names_in_", None)
            if known is not None and not np.array_equal(names, known):
                raise InputError(
                    f"{type(self).__name__}: input_features is not equal to feature_names_in_"
                )
        return np.asarray(self._feature_names(self.image_shape_), dtype=object)

    # -- for subclasses ---------------------------------------------------------------------

    def _check_params(self) -> None:
        raise NotImplementedError

    def _check_image_shape(self, shape: tuple[int, int, int]) -> None:
        raise NotImplementedError

    def _feature_names(self, shape: tuple[int, int, int]) -> list[str]:
        raise NotImplementedError

    def _features(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """Features N×F (float32) of a chunk x: float32 N×C×H×W, values in [0, scale]."""
        raise NotImplementedError

    # -- machinery --------------------------------------------------------------------------

    def _check_common_params(self) -> None:
        name = type(self).__name__
        shape = self.image_shape
        if shape is not None:
            ok = (
                isinstance(shape, (tuple, list))
                and len(shape) == 3
                and all(is_int(s) and s >= -1 and s != 0 for s in shape)
                and sum(s == -1 for s in shape) <= 1
            )
            if not ok:
                raise InputError(
                    f"{name}: image_shape must be (C, H, W) of positive ints (one may be -1), "
                    f"got {shape!r}"
                )
        mv = self.max_value
        if not (mv == "auto" or (is_number(mv) and 0 < mv < math.inf)):
            raise InputError(f"{name}: max_value must be 'auto' or a positive number, got {mv!r}")
        positive_int(name, "chunk_size", self.chunk_size, allow_none=True, error=InputError)

    def _fit_inputs(self, X: Any) -> tuple[Any, float]:
        self._check_params()
        images, scale = self._images(X, reset=True)
        shape = tuple(int(s) for s in images.shape[1:])
        self._check_image_shape(shape)
        self.image_shape_ = shape
        self.n_features_out_ = len(self._feature_names(shape))
        return images, scale

    def _images(self, X: Any, *, reset: bool) -> tuple[np.ndarray | torch.Tensor, float]:
        """X as N×C×H×W images (a NumPy array or a tensor, any numeric dtype, not yet checked
        for range) and the value of white on its scale."""
        name = type(self).__name__
        if isinstance(X, ImageSet):
            X = X.images
        if isinstance(X, torch.Tensor):
            images = self._tensor_images(X, reset=reset)
        else:
            images = self._array_images(X, reset=reset)
        if images.shape[0] == 0:
            raise InputError(f"{name}: found 0 images; at least 1 is required")
        return images, self._scale(images.dtype)

    def _tensor_images(self, X: torch.Tensor, *, reset: bool) -> torch.Tensor:
        name = type(self).__name__
        if X.is_complex():
            raise InputError(f"{name}: images must be real numbers, got a {X.dtype} tensor")
        if X.dtype == torch.bool:
            X = X.float()
        if X.ndim == 2:
            if len(X) == 0:
                raise InputError(f"{name}: found 0 images; at least 1 is required")
            self._note_features(X.shape[1], reset=reset)
            return X.reshape(len(X), *self._row_shape(X.shape[1]))
        if X.ndim != 4:
            raise InputError(self._ndim_message(tuple(X.shape)))
        self._note_features(math.prod(X.shape[1:]), reset=reset, four_d=True)
        return X

    def _array_images(self, X: Any, *, reset: bool) -> np.ndarray:
        name = type(self).__name__
        ndim = getattr(X, "ndim", None)  # None for lists and other array-likes
        if ndim is not None and ndim < 2:
            raise InputError(self._ndim_message(tuple(getattr(X, "shape", ()))))
        try:
            if ndim in (None, 2):
                # scikit-learn's own validation: its messages, n_features_in_, feature names
                X = validate_data(
                    self, X, reset=reset, dtype="numeric", ensure_all_finite=True, allow_nd=True
                )
            else:
                X = check_array(
                    X, allow_nd=True, dtype="numeric", ensure_all_finite=True, estimator=self
                )
        except ValueError as e:
            raise InputError(f"{name}: {str(e).splitlines()[0]}") from e
        if X.dtype.kind == "b":
            X = X.astype(np.float32)
        if X.ndim == 2:
            return X.reshape(len(X), *self._row_shape(X.shape[1]))
        if X.ndim != 4:
            raise InputError(self._ndim_message(X.shape))
        self._note_features(math.prod(X.shape[1:]), reset=reset, four_d=True)
        return X

    def _note_features(self, n: int, *, reset: bool, four_d: bool = False) -> None:
        name = type(self).__name__
        if reset:
            self.n_features_in_ = n
            if four_d and hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif hasattr(self, "n_features_in_") and n != self.n_features_in_:
            raise InputError(
                f"{name}: X has {n} features, but {name} is expecting {self.n_features_in_} "
                f"features as input"
            )

    def _row_shape(self, n_features: int) -> tuple[int, int, int]:
        """The image shape of one row of a 2-D input of `n_features` columns."""
        name = type(self).__name__
        if self.image_shape is None:
            raise InputError(
                f"{name}: got a 2-D array of {n_features} columns; pass image_shape=(C, H, W) "
                f"to say how each row is an image, or pass images N×C×H×W"
            )
        shape = list(self.image_shape)
        known = math.prod(s for s in shape if s != -1)
        if -1 in shape:
            if n_features % known:
                raise InputError(
                    f"{name}: {n_features} columns do not fill images of shape "
                    f"{tuple(self.image_shape)}"
                )
            shape[shape.index(-1)] = n_features // known
        elif known != n_features:
            raise InputError(
                f"{name}: rows of {n_features} values are not images of shape "
                f"{tuple(shape)} ({known} values)"
            )
        return tuple(shape)

    def _ndim_message(self, shape: tuple[int, ...]) -> str:
        name = type(self).__name__
        hint = {
            0: "; Reshape your data: one image as X[None], one row as X.reshape(1, -1)",
            1: "; Reshape your data: one row of pixels as X.reshape(1, -1) with image_shape",
            3: "; for greyscale N×H×W add the channel axis (X[:, None])",
        }.get(len(shape), "")
        return (
            f"{name}: expected images N×C×H×W (or rows N×F with image_shape), got an array of "
            f"shape {tuple(shape)}{hint}"
        )

    def _check_channels(self, shape: tuple[int, ...], allowed: tuple[int, ...], what: str) -> None:
        if shape[0] in allowed:
            return
        name = type(self).__name__
        hint = (
            "; the images look channels-last (N×H×W×C): pass X.transpose(0, 3, 1, 2)"
            if shape[-1] in (1, 3)
            else ""
        )
        raise InputError(
            f"{name}: {what} needs images with "
            f"{' or '.join(str(a) for a in allowed)} channels, got shape {tuple(shape)}{hint}"
        )

    def _scale(self, dtype: Any) -> float:
        if self.max_value != "auto":
            return float(self.max_value)
        if isinstance(dtype, torch.dtype):
            return 1.0 if dtype.is_floating_point else 255.0
        return 1.0 if np.dtype(dtype).kind == "f" else 255.0

    def _chunks(self, images: np.ndarray | torch.Tensor, scale: float) -> Iterator[torch.Tensor]:
        """Float32 chunks of the images on the device, values checked against [0, scale]."""
        n, _, h, w = images.shape
        step = self.chunk_size or max(1, _CHUNK_PIXELS // (h * w))
        device = self._device()
        is_uint8 = images.dtype in (np.uint8, torch.uint8)
        for start in range(0, n, step):
            part = images[start : start + step]
            if isinstance(part, np.ndarray):
                if part.dtype.kind == "u" and part.dtype != np.uint8:
                    part = part.astype(np.int64)  # torch has few unsigned types
                elif not part.flags.writeable:
                    part = part.copy()
                part = torch.from_numpy(np.ascontiguousarray(part))
            if part.is_floating_point() and part.dtype != torch.float32:
                part = part.float()  # float64 is slow on GPUs and missing on MPS
            x = part.detach().to(device)
            if not (is_uint8 and scale >= 255):
                self._check_values(x, scale)
            yield x.float()

    def _check_values(self, x: torch.Tensor, scale: float) -> None:
        name = type(self).__name__
        lo, hi = (float(v) for v in torch.aminmax(x))
        if math.isnan(lo) or math.isnan(hi) or math.isinf(lo) or math.isinf(hi):
            raise InputError(f"{name}: Input X contains NaN or infinity; clean the images first")
        if lo < 0:
            raise InputError(
                f"{name}: Negative values in data (min {lo:g}); images are ≥ 0 (uint8 0–255 or "
                f"float 0–1)"
            )
        if hi > scale:
            raise InputError(
                f"{name}: values up to {hi:g} exceed max_value={scale:g}; integer images are on "
                f"the 0–255 scale and float images on 0–1 (divide 0–255 floats by 255, or set "
                f"max_value=255)"
            )

    def _compute(self, images: np.ndarray | torch.Tensor, scale: float) -> np.ndarray:
        out = np.empty((len(images), len(self._feature_names(images.shape[1:]))), np.float32)
        start = 0
        for x in self._chunks(images, scale):
            out[start : start + len(x)] = self._features(x, scale).cpu().numpy()
            start += len(x)
        return out


# --------------------------------------------------------------------------------------------
# HOG


class HOG(_ImageFeatures):
    """Histograms of oriented gradients (Dalal & Triggs 2005) of a batch of images.

    Steps: greyscale (BT.601 luma of RGB, on the 0–1 scale); its square root (`transform_sqrt`,
    Dalal–Triggs' gamma compression); centred-difference gradients [-1, 0, 1] (zero on the
    one-pixel border); orientation atan2(gy, gx), rows pointing down, unsigned in [0°, 180°)
    (or signed in [0°, 360°)), in `bins` equal bins; each pixel votes its gradient magnitude,
    split linearly between the two nearest bin centres (`binning="linear"`, circular) or all to
    its own bin (`"hard"`); votes are averaged over `cell`×`cell` cells; then blocks of
    `block`×`block` cells, stepped one cell, are normalised (`block_norm`), or the cells are
    returned as they are (`block_norm=None`, CS231n's variant). Images whose size is not a
    multiple of `cell` are cropped at the bottom and right after the gradients are taken (as
    skimage does).

    Output layout (row-major, last index fastest): without normalisation (cell row, cell column,
    bin), F = Hc·Wc·bins; with it (block row, block column, cell row in block, cell column in
    block, bin), F = (Hc−block+1)·(Wc−block+1)·block²·bins. For CIFAR-10 (32×32, defaults):
    4×4 cells, 3×3 blocks, F = 324.

    Compared with `skimage.feature.hog(orientations=bins, pixels_per_cell=(cell, cell),
    cells_per_block=(block, block), block_norm=..., transform_sqrt=...)`: the same gradients,
    cell averaging, block layout and norms (eps = 1e-5), so `binning="hard"` on a greyscale image
    on the 0–1 scale reproduces it (skimage bins hard only). skimage takes colour images channel
    by channel (the strongest gradient wins) where this uses luma, and its defaults differ
    (3×3-cell L2-Hys blocks, no square root).

    Defaults: the lecture's 8×8 cells and 9 unsigned bins, linear binning, square-root gamma and
    L2-normalised 2×2-cell blocks. On CIFAR-10 (10k training images, 5k test, HOG + hue histogram,
    standardised, logistic regression) these gave 53.0% where Dalal–Triggs' L2-Hys gave 50.2%
    (51.6% with L2 but no square root; 49.5% for CS231n's cells without blocks); `signed=True,
    bins=18` gave 55.8% (twice the features).
    """

    def __init__(
        self,
        cell: int = 8,
        bins: int = 9,
        block: int = 2,
        block_norm: str | None = "L2",
        signed: bool = False,
        binning: str = "linear",
        transform_sqrt: bool = True,
        image_shape: tuple[int, int, int] | None = None,
        max_value: float | str = "auto",
        chunk_size: int | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.cell = cell
        self.bins = bins
        self.block = block
        self.block_norm = block_norm
        self.signed = signed
        self.binning = binning
        self.transform_sqrt = transform_sqrt
        self.image_shape = image_shape
        self.max_value = max_value
        self.chunk_size = chunk_size
        self.device = device

    def _check_params(self) -> None:
        self._check_common_params()
        for param in ("cell", "bins", "block"):
            positive_int("HOG", param, getattr(self, param), error=InputError)
        if self.block_norm is not None and self.block_norm not in _BLOCK_NORMS:
            raise InputError(
                f"HOG: block_norm must be one of {', '.join(_BLOCK_NORMS)} or None, "
                f"got {self.block_norm!r}"
            )
        if self.binning not in ("linear", "hard"):
            raise InputError(f"HOG: binning must be 'linear' or 'hard', got {self.binning!r}")
        for param in ("signed", "transform_sqrt"):
            if not isinstance(getattr(self, param), (bool, np.bool_)):
                raise InputError(
                    f"HOG: {param} must be True or False, got {getattr(self, param)!r}"
                )

    def _grid(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Cells (rows, columns) and blocks (rows, columns) of images of this shape."""
        hc, wc = shape[1] // self.cell, shape[2] // self.cell
        if self.block_norm is None:
            return hc, wc, hc, wc
        return hc, wc, hc - self.block + 1, wc - self.block + 1

    def _check_image_shape(self, shape: tuple[int, ...]) -> None:
        self._check_channels(shape, (1, 3), "HOG (greyscale or RGB)")
        hc, wc, bh, bw = self._grid(shape)
        if hc < 1 or wc < 1 or bh < 1 or bw < 1:
            need = self.cell * (1 if self.block_norm is None else self.block)
            raise InputError(
                f"HOG: images of {shape[1]}×{shape[2]} pixels are too small for cell={self.cell}"
                + ("" if self.block_norm is None else f" and block={self.block}")
                + f": they need at least {need}×{need} pixels"
            )

    def _feature_names(self, shape: tuple[int, ...]) -> list[str]:
        hc, wc, bh, bw = self._grid(shape)
        if self.block_norm is None:
            return [
                f"hog_c{i}_{j}_o{k}" for i in range(hc) for j in range(wc) for k in range(self.bins)
            ]
        b = self.block
        return [
            f"hog_b{i}_{j}_c{u}_{v}_o{k}"
            for i in range(bh)
            for j in range(bw)
            for u in range(b)
            for v in range(b)
            for k in range(self.bins)
        ]

    def _features(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        grey = x[:, 0] if x.shape[1] == 1 else rgb_to_grey(x)
        grey = grey / scale
        if self.transform_sqrt:
            grey = grey.sqrt()
        cells = hog_cells(
            grey, cell=self.cell, bins=self.bins, signed=self.signed, binning=self.binning
        )
        if self.block_norm is None:
            return cells.flatten(1)
        return normalize_blocks(cells, block=self.block, method=self.block_norm).flatten(1)


def hog_cells(
    grey: torch.Tensor,
    *,
    cell: int = 8,
    bins: int = 9,
    signed: bool = False,
    binning: str = "linear",
) -> torch.Tensor:
    """Orientation histograms N×Hc×Wc×bins of greyscale images N×H×W (see `HOG`)."""
    n, h, w = grey.shape
    gx = torch.zeros_like(grey)
    gy = torch.zeros_like(grey)
    torch.sub(grey[:, :, 2:], grey[:, :, :-2], out=gx[:, :, 1:-1])
    torch.sub(grey[:, 2:, :], grey[:, :-2, :], out=gy[:, 1:-1, :])
    hc, wc = h // cell, w // cell
    gx = gx[:, : hc * cell, : wc * cell]
    gy = gy[:, : hc * cell, : wc * cell]
    magnitude = torch.hypot(gx, gy)
    # position in bins: angle / bin width, in [-bins, bins] (unsigned) or [-bins/2, bins/2]
    position = torch.atan2(gy, gx).mul_(bins / (2 * math.pi if signed else math.pi))
    # flat index of each pixel's cell histogram: ((image·Hc + cell row)·Wc + cell column)·bins
    rows = torch.arange(hc * cell, device=grey.device) // cell
    cols = torch.arange(wc * cell, device=grey.device) // cell
    offset = (rows[:, None] * wc + cols[None, :]) * bins
    offset = torch.arange(n, device=grey.device)[:, None, None] * (hc * wc * bins) + offset
    hist = torch.zeros(n * hc * wc * bins, device=grey.device, dtype=grey.dtype)
    if binning == "hard":
        # axis-aligned gradients (common on flat uint8 regions) sit on bin edges: place them
        # exactly, so that float rounding of atan2 cannot move them to the neighbouring bin
        quarter = bins / 4 if signed else bins / 2  # position of 90°
        position = torch.where(gx == 0, torch.sign(gy) * quarter, position)
        position = position.masked_fill_((gy == 0) & (gx < 0), 2 * quarter).masked_fill_(
            (gy == 0) & (gx >= 0), 0.0
        )
        low = torch.floor(position).remainder_(bins).long()
        hist.index_add_(0, (offset + low).flatten(), magnitude.flatten())
    else:  # linear interpolation between the centres (k + 1/2) of neighbouring bins
        position = position.sub_(0.5)
        low = torch.floor(position)
        upper_share = position.sub_(low)
        low = low.remainder_(bins)
        high = low + 1
        high = high.masked_fill_(high == bins, 0)
        upper = magnitude * upper_share
        hist.index_add_(0, (offset + low.long()).flatten(), (magnitude - upper).flatten())
        hist.index_add_(0, (offset + high.long()).flatten(), upper.flatten())
    return hist.view(n, hc, wc, bins).div_(cell * cell)


def normalize_blocks(
    cells: torch.Tensor, *, block: int = 2, method: str = "L2-Hys"
) -> torch.Tensor:
    """Blocks of block×block cells, stepped one cell, each normalised (skimage's formulas).

    cells N×Hc×Wc×bins → N×Bh×Bw×block×block×bins. L2-Hys (Dalal–Triggs): L2-normalise, clip
    at 0.2, L2-normalise again; L2: v/√(‖v‖² + ε²); L1: v/(‖v‖₁ + ε); L1-sqrt: √(L1); ε = 1e-5.
    """
    blocks = cells.unfold(1, block, 1).unfold(2, block, 1)  # N×Bh×Bw×bins×block(row)×block(col)
    blocks = blocks.permute(0, 1, 2, 4, 5, 3)
    n, bh, bw = blocks.shape[:3]
    v = blocks.reshape(n, bh, bw, -1)
    if method in ("L1", "L1-sqrt"):
        v = v / (v.abs().sum(-1, keepdim=True) + _EPS)
        if method == "L1-sqrt":
            v = v.sqrt()
    else:
        v = v / torch.sqrt(v.square().sum(-1, keepdim=True) + _EPS**2)
        if method == "L2-Hys":
            v = v.clamp(max=0.2)
            v = v / torch.sqrt(v.square().sum(-1, keepdim=True) + _EPS**2)
    return v.view(blocks.shape)


# --------------------------------------------------------------------------------------------
# Colour histograms

_SPACES = {"hsv": ("hsv", "h"), "rgb": ("rgb", "rgb"), "grey": ("y", "y")}


class ColorHistogram(_ImageFeatures):
    """Per-image histograms of colour channels, `bins` equal bins over [0, 1] per channel.

    `space="hsv"` (default) converts RGB to HSV as `matplotlib.colors.rgb_to_hsv` does and,
    with the default `channels`, histograms the hue only (CS231n lecture 3; grey pixels have
    hue 0, red); `space="rgb"` histograms R, G and B; `space="grey"` the BT.601 luma (of RGB, or
    the one channel of greyscale images). `channels` picks letters of the space ("h", "sv",
    "rgb", ...). Bins are [k/bins, (k+1)/bins), the last one closed, as `np.histogram` with
    range (0, 1); on integer (uint8) images hue, saturation and channel values are binned with
    exact rational arithmetic. `density=True` makes each channel's histogram the fraction of
    the image's pixels in each bin (it sums to 1, as CS231n's hue histogram); False gives counts.

    Output layout: (channel in the order of `channels`, bin), F = len(channels)·bins, named
    `hist_h0`, `hist_h1`, ….
    """

    def __init__(
        self,
        bins: int = 10,
        space: str = "hsv",
        channels: str | None = None,
        density: bool = True,
        image_shape: tuple[int, int, int] | None = None,
        max_value: float | str = "auto",
        chunk_size: int | None = None,
        device: str | torch.device = "auto",
    ) -> None:
        self.bins = bins
        self.space = space
        self.channels = channels
        self.density = density
        self.image_shape = image_shape
        self.max_value = max_value
        self.chunk_size = chunk_size
        self.device = device

    def _channel_letters(self) -> str:
        return _SPACES[self.space][1] if self.channels is None else str(self.channels)

    def _check_params(self) -> None:
        self._check_common_params()
        positive_int("ColorHistogram", "bins", self.bins, error=InputError)
        if self.space not in _SPACES:
            raise InputError(
                f"ColorHistogram: space must be 'hsv', 'rgb' or 'grey', got {self.space!r}"
            )
        letters = _SPACES[self.space][0]
        ch = self.channels
        if ch is not None and (
            not isinstance(ch, str)
            or not ch
            or any(c not in letters for c in ch)
            or len(set(ch)) != len(ch)
        ):
            raise InputError(
                f"ColorHistogram: channels must be distinct letters of {letters!r} for "
                f"space={self.space!r} (or None), got {ch!r}"
            )
        if not isinstance(self.density, (bool, np.bool_)):
            raise InputError(f"ColorHistogram: density must be True or False, got {self.density!r}")

    def _check_image_shape(self, shape: tuple[int, ...]) -> None:
        if self.space == "grey":
            self._check_channels(shape, (1, 3), "space='grey'")
        else:
            self._check_channels(shape, (3,), f"space={self.space!r} (RGB)")

    def _feature_names(self, shape: tuple[int, ...]) -> list[str]:
        return [f"hist_{c}{k}" for c in self._channel_letters() for k in range(self.bins)]

    def _features(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        n = len(x)
        letters = self._channel_letters()
        if self.space == "hsv":
            fractions = _hsv_fractions(x, letters)
            if "v" in fractions:
                fractions["v"] = (fractions["v"], scale)
        elif self.space == "rgb":
            fractions = {c: (x[:, i], scale) for i, c in enumerate("rgb")}
        else:
            fractions = {"y": (x[:, 0] if x.shape[1] == 1 else rgb_to_grey(x), scale)}
        # bin of each pixel, N×channels×H×W: floor(value·bins), value = num/den (exact for uint8)
        planes = [torch.floor(num * self.bins / den) for num, den in map(fractions.get, letters)]
        index = torch.stack(planes, dim=1).clamp_(0, self.bins - 1).long()
        offsets = torch.arange(n * len(letters), device=x.device).view(n, -1, 1, 1) * self.bins
        counts = torch.bincount((index + offsets).flatten(), minlength=n * len(letters) * self.bins)
        hist = counts.view(n, -1).float()
        if self.density:
            hist /= x.shape[2] * x.shape[3]
        return hist
