"""AlexNet's fancy PCA against NumPy's covariance and eigendecomposition, the covariance of its
offsets against σ²·P·diag(λ²)·Pᵀ, on random and on real CIFAR-10 pixels; and ResNet's scale
augmentation against torch's interpolate followed by a crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from striate import load_dataset
from striate.data.augment import Compose, RandomHorizontalFlip, RandomScaleCrop, fit_to
from striate.data.augment_spec import parse_augment
from striate.data.color_pca import PCALighting, pixel_pca
from striate.errors import StriateError


def _images(seed=0, n=40):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 256, (n, 1, 8, 8), generator=g)
    noise = torch.randint(-30, 31, (n, 3, 8, 8), generator=g)
    return (base + noise).clamp(0, 255).to(torch.uint8)  # correlated channels


def test_pixel_pca_equals_numpy():
    images = _images()
    values, vectors = pixel_pca(images)
    pixels = images.permute(1, 0, 2, 3).reshape(3, -1).numpy() / 255.0
    ref_values, ref_vectors = np.linalg.eigh(np.cov(pixels))
    np.testing.assert_allclose(values.numpy(), ref_values[::-1], rtol=1e-10)
    for i in range(3):  # eigenvectors up to sign
        assert abs(float(vectors[:, i] @ torch.from_numpy(ref_vectors[:, 2 - i]))) == pytest.approx(
            1
        )


def test_offsets_have_the_fitted_covariance():
    t = PCALighting(std=0.1).fit(_images())
    g = torch.Generator().manual_seed(1)
    alpha = t.get_params((200_000, 3, 8, 8), g)["alpha"]
    off = t.offsets(alpha).numpy()
    P, lam = t.eigenvectors.numpy(), t.eigenvalues.numpy()
    expect = 0.01 * P @ np.diag(lam**2) @ P.T
    np.testing.assert_allclose(np.cov(off.T), expect, rtol=0.03, atol=1e-3 * np.abs(expect).max())


def test_each_image_moves_by_one_colour_offset():
    t = PCALighting(0.2).fit(_images())
    x = torch.rand(5, 3, 6, 7)
    g = torch.Generator().manual_seed(2)
    out, _ = t(x, None, g)
    delta = out - x
    alpha = t.get_params((5, 3, 6, 7), torch.Generator().manual_seed(2))["alpha"]
    expect = t.offsets(alpha).float()[:, :, None, None].expand_as(delta)
    torch.testing.assert_close(delta, expect, rtol=1e-5, atol=1e-6)


def test_on_cifar_the_first_component_is_brightness(shared_data):
    ds = load_dataset(shared_data / "cifar10" / "cifar10-jpeg.zip", "test")
    values, vectors = pixel_pca(ds.images[:2000])
    grey = torch.ones(3, dtype=torch.float64) / 3**0.5
    assert abs(float(vectors[:, 0] @ grey)) > 0.95  # R, G and B move together first
    assert values[0] > 10 * values[1]


def test_fit_to_reaches_into_compose_and_the_spec():
    spec = parse_augment("flip,pca:0.1", (3, 8, 8), 10)
    assert isinstance(spec, Compose) and spec[1].eigenvalues is None
    fit_to(spec, _images())
    assert spec[1].eigenvalues is not None
    assert fit_to(RandomHorizontalFlip(), _images()) is not None and fit_to(None, _images()) is None


def test_unfitted_or_grey_is_refused():
    with pytest.raises(StriateError, match="not fitted"):
        PCALighting()(torch.rand(2, 3, 4, 4), None, torch.Generator())
    with pytest.raises(StriateError, match="RGB"):
        PCALighting().fit(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_scale_crop_equals_resize_then_crop():
    x = torch.rand(3, 3, 20, 16)
    t = RandomScaleCrop((12, 10), scale=(16, 32))
    params = {
        "short": torch.tensor([16.0, 24.0, 32.0]),  # factors 1, 1.5, 2: whole resized sizes
        "u": torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64),
        "v": torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64),  # whole-pixel corners
    }
    out, _ = t.apply(x, None, params)
    for i, (s, u, v) in enumerate([(1.0, 0.0, 1.0), (1.5, 0.5, 0.5), (2.0, 1.0, 0.0)]):
        h, w = round(20 * s), round(16 * s)
        big = F.interpolate(x[i : i + 1], (h, w), mode="bilinear", align_corners=False)
        top, left = round(u * (h - 12)), round(v * (w - 10))
        torch.testing.assert_close(out[i : i + 1], big[..., top : top + 12, left : left + 10])


def test_scale_crop_checks_its_range():
    with pytest.raises(StriateError, match="must hold"):
        RandomScaleCrop(32, scale=(20, 40))
    with pytest.raises(StriateError, match="pair"):
        RandomScaleCrop(32, scale=40)
    out, _ = parse_augment("scale", (3, 32, 32), 10)(
        torch.rand(4, 3, 32, 32), None, torch.Generator()
    )
    assert out.shape == (4, 3, 32, 32)
