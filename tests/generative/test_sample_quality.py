"""Sample-quality metrics against independent references: scipy's sqrtm, numpy's cov, the
diagonal closed form, a brute-force k-NN loop, scipy's KL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch
from torch import nn

from striate.errors import InputError
from striate.generative.sample_quality import (
    classifier_features,
    classifier_frechet_distance,
    classifier_score,
    feature_statistics,
    frechet_distance,
    precision_recall,
)


def _spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _scipy_frechet(mu1, s1, mu2, s2) -> float:
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


@pytest.mark.parametrize("d", [1, 5, 16])
def test_frechet_distance_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = _spd(rng, d), _spd(rng, d)
    ours = frechet_distance(torch.tensor(mu1), torch.tensor(s1), mu2, s2)  # numpy works too
    assert ours == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_frechet_distance_zero_for_identical_and_symmetric():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = _spd(rng, 8), _spd(rng, 8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
        frechet_distance(mu2, s2, mu1, s1), rel=1e-10
    )
    assert frechet_distance(mu1, s1, mu2, s2) > 1


def test_frechet_distance_diagonal_closed_form():
    # for diagonal covariances: ‖μ1 − μ2‖² + Σ (σ1 − σ2)² with σ the standard deviations
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(6), rng.standard_normal(6)
    sd1, sd2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((sd1 - sd2) ** 2).sum()
    got = frechet_distance(mu1, np.diag(sd1**2), mu2, np.diag(sd2**2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_rank_deficient_statistics():
    # fewer samples than dimensions: singular covariances stay real and non-negative; scaling
    # the same points by 2 doubles every standard deviation along the shared directions
    f = torch.randn(5, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mu, sigma = feature_statistics(f)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-8)
    mu2, sigma2 = feature_statistics(2 * f)
    # Σ2 = 4 Σ: Tr(Σ + 4Σ − 2·2Σ) = Tr Σ, plus ‖μ‖²
    expected = float(mu.pow(2).sum() + sigma.trace())
    # (rel 1e-6: the square roots of the ~1e-15 eigenvalues that are 0 in exact arithmetic)
    assert frechet_distance(mu, sigma, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_feature_statistics_matches_numpy():
    f = np.random.default_rng(2).standard_normal((40, 7)).astype(np.float32)
    mu, sigma = feature_statistics(torch.from_numpy(f))
    assert mu.dtype == torch.float64
    np.testing.assert_allclose(mu.numpy(), f.astype(np.float64).mean(0), rtol=1e-12)
    expected = np.cov(f.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(sigma.numpy(), expected, rtol=1e-10)


def _brute_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    def dist(a, b):
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))

    def radii(points):
        out = []
        for i, p in enumerate(points):
            others = sorted(dist(p, q) for j, q in enumerate(points) if j != i)
            out.append(others[k - 1])
        return out

    def fraction_covered(queries, points, r):
        inside = [any(dist(q, p) <= r[j] for j, p in enumerate(points)) for q in queries]
        return sum(inside) / len(inside)

    real_l, fake_l = real.tolist(), fake.tolist()
    return (
        fraction_covered(fake_l, real_l, radii(real_l)),
        fraction_covered(real_l, fake_l, radii(fake_l)),
    )


@pytest.mark.parametrize("k", [1, 3])
def test_precision_recall_matches_brute_force(k):
    rng = np.random.default_rng(k)
    real = rng.standard_normal((23, 3))
    fake = 1.5 * rng.standard_normal((17, 3)) + np.array([2.0, 0.0, 0.0])
    expected = _brute_precision_recall(real, fake, k)
    got = precision_recall(torch.tensor(real), torch.tensor(fake), k=k, chunk=4)
    assert (got.precision, got.recall) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # the case is not trivial


def test_precision_recall_identical_sets_and_far_fakes():
    real = torch.randn(200, 16, generator=torch.Generator().manual_seed(3))
    assert tuple(precision_recall(real, real.clone(), chunk=64)) == (1.0, 1.0)
    far = precision_recall(real, real[:50] + 1000.0)
    assert far.precision == 0.0 and far.recall == 0.0


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 9), nn.Tanh(), nn.Linear(9, 4))


def test_classifier_features_are_the_penultimate_activations():
    net = _mlp()
    x = torch.rand(10, 3, 2, 2)
    expected = torch.tanh(x.flatten(1) @ net[1].weight.T + net[1].bias)
    got = classifier_features(net, x, batch_size=3)
    torch.testing.assert_close(got, expected)
    with torch.no_grad():
        linear = net[1](x.flatten(1))
    torch.testing.assert_close(classifier_features(net, x, layer="1"), linear)


def test_classifier_frechet_distance_matches_scipy_on_features():
    net = _mlp()
    g = torch.Generator().manual_seed(4)
    real, fake = torch.rand(60, 3, 2, 2, generator=g), 0.5 * torch.rand(50, 3, 2, 2, generator=g)
    with torch.no_grad():
        fr, ff = net[:3](real).double().numpy(), net[:3](fake).double().numpy()
    sr, sf = np.cov(fr, rowvar=False), np.cov(ff, rowvar=False)
    expected = _scipy_frechet(fr.mean(0), sr, ff.mean(0), sf)
    assert classifier_frechet_distance(net, real, fake, batch_size=16) == pytest.approx(
        expected, rel=1e-4
    )
    assert classifier_frechet_distance(net, real, real) == pytest.approx(0, abs=1e-6)


class _Confident(nn.Module):
    """Logits 50 × the one-hot class written in the image: perfectly confident."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 50.0 * x.flatten(1)


def test_classifier_score_of_a_confident_classifier_on_balanced_classes():
    k = 5
    images = torch.eye(k).repeat(4, 1).reshape(4 * k, 1, 1, k)
    s = classifier_score(_Confident(), images, batch_size=7)
    assert s.score == pytest.approx(k, rel=1e-6)
    assert s.confidence == pytest.approx(1.0)
    assert s.class_entropy == pytest.approx(math.log(k))
    assert s.class_counts.tolist() == [4] * k
    # one class only: confident but no variety, the score is 1
    assert classifier_score(_Confident(), images[:1].repeat(6, 1, 1, 1)).score == pytest.approx(1.0)


def test_classifier_score_matches_scipy_kl():
    net = _mlp()
    x = torch.rand(30, 3, 2, 2, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        p = net(x).double().softmax(1).numpy()
    marginal = p.mean(0)
    expected = math.exp(np.mean([scipy.stats.entropy(row, marginal) for row in p]))
    s = classifier_score(net, x)
    assert s.score == pytest.approx(expected, rel=1e-9)
    assert s.confidence == pytest.approx(p.max(1).mean(), rel=1e-9)


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_bad_input_is_one_clear_line():
    a, b = torch.randn(10, 4), torch.randn(10, 5)
    with pytest.raises(InputError, match="differ in shape") as e:
        precision_recall(a, b)
    _one_line(e)
    with pytest.raises(InputError, match="differ in dimension") as e:
        frechet_distance(*feature_statistics(a), *feature_statistics(b))
    _one_line(e)
    with pytest.raises(InputError, match="N ≥ 2") as e:
        feature_statistics(torch.randn(1, 4))
    _one_line(e)
    with pytest.raises(InputError, match="N ≥ 4"):
        precision_recall(torch.randn(3, 4), torch.randn(10, 4), k=3)
    with pytest.raises(InputError, match="NaN"):
        feature_statistics(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    net = _mlp()
    with pytest.raises(InputError, match="at least 2 images"):
        classifier_frechet_distance(net, torch.rand(5, 3, 2, 2), torch.rand(1, 3, 2, 2))
    with pytest.raises(InputError, match="differ in shape"):
        classifier_frechet_distance(net, torch.rand(5, 3, 2, 2), torch.rand(5, 3, 4, 1))
    with pytest.raises(InputError, match="x.float"):
        classifier_score(net, torch.zeros(5, 3, 2, 2, dtype=torch.uint8))


@pytest.fixture(scope="module")
def mnist_classifier(shared_data):
    """A small MLP trained for a few hundred steps on 4096 MNIST images, and 1000 test images."""
    from striate.data import load_dataset

    train = load_dataset("mnist", "train", root=shared_data).sample(4096, seed=0)
    test = load_dataset("mnist", "test", root=shared_data).sample(1000, seed=0)
    x, y = train.images.float() / 255, train.labels
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net, test.images.float() / 255


def test_on_mnist_real_halves_are_close_and_noise_is_far(mnist_classifier):
    net, real = mnist_classifier
    a, b = real[:500], real[500:]
    noise = torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    # pixels shuffled within each image: same histogram, no digit
    perm = torch.randperm(784, generator=torch.Generator().manual_seed(2))
    shuffled = b.flatten(1)[:, perm].reshape(b.shape)
    close = classifier_frechet_distance(net, a, b)
    assert close < classifier_frechet_distance(net, a, shuffled) / 5
    assert close < classifier_frechet_distance(net, a, noise) / 5
    real_score, shuffled_score = classifier_score(net, b), classifier_score(net, shuffled)
    assert real_score.score > 6 and real_score.confidence > 0.85
    assert real_score.class_entropy > 0.9 * math.log(10)  # the test digits are balanced
    assert shuffled_score.score < real_score.score / 2
    fa, fb = classifier_features(net, a), classifier_features(net, b)
    same = precision_recall(fa, fb)
    assert same.precision > 0.7 and same.recall > 0.7
    assert precision_recall(fa, classifier_features(net, noise)).precision < 0.05
