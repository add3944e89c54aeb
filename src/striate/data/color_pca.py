"""AlexNet's "fancy PCA" colour augmentation, fitted on the training images.

Krizhevsky, Sutskever and Hinton 2012, §4.1: principal components of the set of RGB pixel values
of the training set; to each pixel of an image add ``[p₁ p₂ p₃]·[α₁λ₁ α₂λ₂ α₃λ₃]ᵀ``, where ``pᵢ``
and ``λᵢ`` are the eigenvectors and eigenvalues of the 3×3 covariance of the pixels and
``αᵢ ~ N(0, σ²)`` is drawn once per image (σ = 0.1 in the paper). The offsets' covariance is
therefore ``σ²·P·diag(λ²)·Pᵀ``. Pixels are on the 0–1 scale, as the loaders give them to every
transform; the result is not clipped (the paper adds the offset to the data as they are).
"""

from __future__ import annotations

import torch

from striate.checks import positive_number
from striate.data.augment import Transform
from striate.errors import StriateError

__all__ = ["PCALighting", "pixel_pca"]

_CHUNK = 1 << 24  # pixels per chunk of the covariance sums (float64: 400 MB at most)


def pixel_pca(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues, eigenvectors as columns), largest first, of the covariance of the RGB values
    of all pixels of `images` (N×3×H×W; uint8 on 0–255 or float on 0–1), in float64."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise StriateError(
            f"PCALighting: fit needs RGB images N×3×H×W, got shape {tuple(images.shape)}"
        )
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1)
    if pixels.shape[1] < 2:
        raise StriateError("PCALighting: fit needs at least two pixels")
    total = torch.zeros(3, dtype=torch.float64)
    outer = torch.zeros(3, 3, dtype=torch.float64)
    for s in range(0, pixels.shape[1], _CHUNK):
        p = pixels[:, s : s + _CHUNK].to(torch.float64).cpu() / scale
        total += p.sum(1)
        outer += p @ p.T
    n = pixels.shape[1]
    mean = total / n
    cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
    values, vectors = torch.linalg.eigh(cov)
    return values.flip(0).clamp(min=0), vectors.flip(1)


class PCALighting(Transform):
    """Fancy PCA: a random offset along the training set's colour principal components per
    image. `fit(train_images)` first (`striate train` fits it on the training split)."""

    _fields = ("std",)

    def __init__(self, std: float = 0.1) -> None:
        self.std = positive_number("PCALighting", "std", std)
        self.eigenvalues: torch.Tensor | None = None
        self.eigenvectors: torch.Tensor | None = None

    def fit(self, images: torch.Tensor) -> PCALighting:
        """Compute the principal components of the pixels of `images` (the training set)."""
        self.eigenvalues, self.eigenvectors = pixel_pca(images)
        return self

    def _check_input(self, x, y):
        if self.eigenvalues is None:
            raise StriateError(
                "PCALighting: not fitted; call fit(training images) first (striate train "
                "fits it on the training split)"
            )
        if x.shape[1] != 3:
            raise StriateError(f"PCALighting: needs RGB images, got {x.shape[1]} channels")

    def get_params(self, shape, g):
        return {"alpha": torch.randn(shape[0], 3, generator=g, dtype=torch.float64) * self.std}

    def offsets(self, alpha: torch.Tensor) -> torch.Tensor:
        """The RGB offset of each image (N×3) for its draws α (N×3): P·(α ⊙ λ)."""
        return (alpha * self.eigenvalues) @ self.eigenvectors.T

    def apply(self, x, y, params):
        shift = self.offsets(params["alpha"]).to(device=x.device, dtype=x.dtype)
        return x + shift[:, :, None, None], y
