"""Sample quality without Inception weights: measured in the feature space of a classifier that
striate trained on the same dataset, and named for it (never "FID" or "IS").

    real_f = classifier_features(clf, real)                    # penultimate features, N×D
    classifier_frechet_distance(clf, real, fake)                # Fréchet distance of the features
    classifier_score(clf, fake).score                           # exp E KL(p(y|x) ‖ p(y)), ≤ classes
    precision_recall(real_f, classifier_features(clf, fake))    # Kynkäänniemi et al. 2019, k = 3

Images are given as the classifier takes them (float N×C×H×W; 0–1 for a striate `ImageClassifier`,
so a Tanh generator's samples are mapped with (x + 1) / 2 first). The numbers are comparable only
between runs that use the same classifier, layer and sample counts.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from striate.checks import positive_int
from striate.errors import InputError
from striate.interpret.layers import check_inputs, evaluating, features_at, placement

__all__ = [
    "ClassifierScore",
    "PrecisionRecall",
    "classifier_features",
    "classifier_frechet_distance",
    "classifier_score",
    "feature_statistics",
    "frechet_distance",
    "precision_recall",
]


def _features(
    owner: str, name: str, features: Any, *, min_rows: int = 2, why: str = "for a covariance"
) -> torch.Tensor:
    """`features` as a finite float tensor N×D with N ≥ `min_rows`, or one InputError line."""
    f = torch.as_tensor(features) if not isinstance(features, torch.Tensor) else features
    if f.dim() != 2 or not f.is_floating_point() or len(f) < min_rows:
        raise InputError(
            f"{owner}: {name} must be a float tensor N×D of feature vectors with N ≥ {min_rows} "
            f"({why}), "
            f"got a {f.dtype} tensor of shape {tuple(f.shape)}; give one row per sample "
            f"(classifier_features makes them)"
        )
    if not torch.isfinite(f).all():
        raise InputError(f"{owner}: {name} has NaN or infinite values")
    return f.detach()


def _same_dims(owner: str, a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    if a.shape[1:] != b.shape[1:]:
        raise InputError(
            f"{owner}: the real and generated {what} differ in shape ({tuple(a.shape[1:])} vs "
            f"{tuple(b.shape[1:])}); compute both with the same classifier and layer"
        )


def feature_statistics(features: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean (D) and covariance (D×D, divided by N − 1 as numpy.cov) of N×D features, in
    float64: the Gaussian the Fréchet distance compares. Trust it only with N well above D."""
    f = _features("feature_statistics", "features", features).double()
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def _sqrt_psd(sigma: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (eigenvalues
    below zero by rounding are taken as zero)."""
    w, v = torch.linalg.eigh(sigma)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def _stats(owner: str, mu: Any, sigma: Any, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    mu, sigma = torch.as_tensor(mu).double(), torch.as_tensor(sigma).double()
    d = mu.shape[0] if mu.dim() == 1 else -1
    if mu.dim() != 1 or sigma.shape != (d, d):
        raise InputError(
            f"{owner}: mu{which} must be a vector D and sigma{which} a matrix D×D, got shapes "
            f"{tuple(mu.shape)} and {tuple(sigma.shape)}; feature_statistics makes them"
        )
    if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise InputError(f"{owner}: mu{which} or sigma{which} has NaN or infinite values")
    return mu, (sigma + sigma.T) / 2


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """The Fréchet (2-Wasserstein²) distance of N(μ1, Σ1) and N(μ2, Σ2) (Heusel et al. 2017):
    ‖μ1 − μ2‖² + Tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}), in float64.

    Tr (Σ1 Σ2)^{1/2} is the sum of the square roots of the eigenvalues of the symmetric PSD
    matrix Σ1^{1/2} Σ2 Σ1^{1/2} (same spectrum as Σ1 Σ2), so no complex parts arise as they do
    with scipy.linalg.sqrtm of the non-symmetric product."""
    mu1, sigma1 = _stats("frechet_distance", mu1, sigma1, "1")
    mu2, sigma2 = _stats("frechet_distance", mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise InputError(
            f"frechet_distance: the two Gaussians differ in dimension ({mu1.shape[0]} vs "
            f"{mu2.shape[0]}); compute both with the same classifier and layer"
        )
    mu2, sigma2 = mu2.to(mu1.device), sigma2.to(mu1.device)
    root1 = _sqrt_psd(sigma1)
    product = root1 @ sigma2 @ root1
    cross = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * cross
    return max(float(distance), 0.0)


def classifier_features(
    classifier: nn.Module, images: Any, *, layer: str | nn.Module | None = None,
    batch_size: int = 256,
) -> torch.Tensor:  # fmt: skip
    """One feature vector per image (N×D, float32 on the CPU): by default what the classifier's
    last nn.Linear reads (its penultimate features), else `layer`'s output flattened; batched,
    in eval mode, on the classifier's device."""
    owner = "classifier_features"
    x = check_inputs(owner, images, "images")
    positive_int(owner, "batch_size", batch_size)
    device, dtype = placement(classifier)
    return features_at(classifier, x.to(device, dtype), layer, batch_size)


def classifier_frechet_distance(
    classifier: nn.Module, real: Any, fake: Any, *, layer: str | nn.Module | None = None,
    batch_size: int = 256,
) -> float:  # fmt: skip
    """The Fréchet distance between real and generated images in a striate classifier's feature
    space (`classifier_features`): FID's formula with the dataset's own classifier in place of
    Inception, so it is not FID and its values are not comparable with published FIDs."""
    owner = "classifier_frechet_distance"
    real = check_inputs(owner, real, "real")
    fake = check_inputs(owner, fake, "fake")
    _same_dims(owner, real, fake, "images")
    for name, x in (("real", real), ("fake", fake)):
        if len(x) < 2:
            raise InputError(f"{owner}: {name} needs at least 2 images for a covariance, got 1")
    real_f = classifier_features(classifier, real, layer=layer, batch_size=batch_size)
    fake_f = classifier_features(classifier, fake, layer=layer, batch_size=batch_size)
    return frechet_distance(*feature_statistics(real_f), *feature_statistics(fake_f))


class ClassifierScore(NamedTuple):
    """What a striate classifier makes of generated images.

    score: exp E_x KL(p(y|x) ‖ p(y)) — Inception score's formula (Salimans et al. 2016) with
      the dataset's own classifier, between 1 and the number of classes (confident and varied);
    confidence: the mean max-probability E_x max_y p(y|x);
    class_entropy: the entropy (nats) of the histogram of predicted classes, log K when balanced;
    class_counts: the number of images predicted as each class."""

    score: float
    confidence: float
    class_entropy: float
    class_counts: torch.Tensor


@torch.no_grad()
def classifier_score(
    classifier: nn.Module, images: Any, *, batch_size: int = 256
) -> ClassifierScore:
    """The classifier-based score of generated images (see `ClassifierScore`); the classifier
    returns logits. Not the Inception score: another network, other values."""
    owner = "classifier_score"
    x = check_inputs(owner, images, "images")
    positive_int(owner, "batch_size", batch_size)
    device, dtype = placement(classifier)
    logits = []
    with evaluating(classifier):
        for start in range(0, len(x), batch_size):
            logits.append(classifier(x[start : start + batch_size].to(device, dtype)).cpu())
    log_p = torch.cat(logits).double().log_softmax(1)
    if log_p.dim() != 2:
        raise InputError(
            f"{owner}: the classifier must return logits N×K, got shape {tuple(log_p.shape)}"
        )
    p = log_p.exp()
    marginal = p.mean(0)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)
    counts = torch.bincount(p.argmax(1), minlength=p.shape[1])
    freq = counts.double() / len(p)
    return ClassifierScore(
        score=float(kl.mean().exp()),
        confidence=float(p.max(1).values.mean()),
        class_entropy=float(-torch.xlogy(freq, freq).sum()),
        class_counts=counts,
    )


class PrecisionRecall(NamedTuple):
    """Precision (fraction of samples on the real manifold) and recall (fraction of real
    images on the samples' manifold), both in [0, 1]."""

    precision: float
    recall: float


def _radii(points: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """The distance from each point to its k-th nearest neighbour among the others."""
    # the point itself is at distance 0, the smallest, so the (k+1)-th smallest is the k-th other
    rows = (torch.cdist(points[s : s + chunk], points) for s in range(0, len(points), chunk))
    return torch.cat([d.topk(k + 1, dim=1, largest=False).values[:, -1] for d in rows])


def _covered(
    queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Whether each query lies within some point's ball (distance ≤ that point's radius)."""
    return torch.cat(
        [
            (torch.cdist(queries[s : s + chunk], points) <= radii).any(1)
            for s in range(0, len(queries), chunk)
        ]
    )


@torch.no_grad()
def precision_recall(
    real_features: Any, fake_features: Any, k: int = 3, chunk: int = 1024
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019, §2): each set's manifold is the
    union of balls around its points reaching their k-th nearest neighbour in the same set;
    precision is the fraction of fakes inside the real manifold, recall the fraction of reals
    inside the fake one (the paper uses k = 3). Distances by torch.cdist, `chunk` rows at a time
    (memory chunk × N), in float32 after centring on the real mean (less rounding)."""
    owner = "precision_recall"
    k = positive_int(owner, "k", k)
    chunk = positive_int(owner, "chunk", chunk)
    why = f"k = {k} neighbours besides each point"
    real = _features(owner, "real_features", real_features, min_rows=k + 1, why=why)
    fake = _features(owner, "fake_features", fake_features, min_rows=k + 1, why=why)
    _same_dims(owner, real, fake, "features")
    fake = fake.to(real.device)
    centre = real.double().mean(0)
    real, fake = (real.double() - centre).float(), (fake.double() - centre).float()
    real_radii, fake_radii = _radii(real, k, chunk), _radii(fake, k, chunk)
    precision = _covered(fake, real, real_radii, chunk).double().mean()
    recall = _covered(real, fake, fake_radii, chunk).double().mean()
    return PrecisionRecall(float(precision), float(recall))
