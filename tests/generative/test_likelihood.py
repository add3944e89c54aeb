"""The importance-weighted log-likelihood against models whose log p(x) is known exactly: a 1-D
linear-Gaussian VAE (its marginal is Gaussian) and a 1-latent Bernoulli VAE on 2×2 binary images
(log p(x) by quadrature over z). The bound sits below log p(x), rises with k and reaches it."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from striate.errors import InputError
from striate.generative.likelihood import importance_weighted_log_likelihood as iwll
from striate.generative.vae import VAE, gaussian_kl

W, B, S = 1.5, 0.3, 0.5  # p(z) = N(0, 1), p(x|z) = N(W z + B, S²)


def _linear_gaussian(a: float, c: float, logvar: float) -> VAE:
    """The VAE with p(x|z) = N(W z + B, S²) and q(z|x) = N(a x + c, exp(logvar))."""
    model = VAE((1, 1, 1), latent=1, hidden=(), likelihood="gaussian", std=S)
    enc, dec = model.encoder[1], model.decoder[0]
    with torch.no_grad():
        enc.weight.copy_(torch.tensor([[a], [0.0]]))
        enc.bias.copy_(torch.tensor([c, logvar]))
        dec.weight.fill_(W)
        dec.bias.fill_(B)
    return model


def _exact_log_px(x: torch.Tensor) -> torch.Tensor:
    return Normal(B, math.sqrt(W * W + S * S)).log_prob(x.flatten())


X = torch.tensor([-2.0, -0.5, 0.0, 0.7, 1.5, 3.0]).reshape(-1, 1, 1, 1)


def test_with_the_exact_posterior_every_k_and_chunk_gives_log_p_x():
    v = W * W + S * S
    model = _linear_gaussian(W / v, -W * B / v, math.log(S * S / v))
    for k, chunk in [(1, 4096), (7, 4096), (7, 3), (50, 1)]:
        got = iwll(model, X, k, chunk=chunk, generator=torch.Generator().manual_seed(k))
        torch.testing.assert_close(got, _exact_log_px(X), atol=1e-5, rtol=0)


def _replicated_bound(model, x, k, reps, seed):
    """L_k per x, averaged over `reps` independent estimates, and its standard error."""
    g = torch.Generator().manual_seed(seed)
    est = iwll(model, x.repeat(reps, 1, 1, 1), k, generator=g).reshape(reps, len(x))
    return est.mean(0), est.std(0) / reps**0.5


def test_the_bound_rises_with_k_stays_below_log_p_x_and_reaches_it():
    model = _linear_gaussian(0.2, 0.1, math.log(0.6))  # a poor posterior: a wide gap at k = 1
    exact = _exact_log_px(X)
    means = []
    for k in (1, 4, 32, 512):
        mean, se = _replicated_bound(model, X, k, reps=400, seed=k)
        assert (mean < exact + 4 * se + 1e-4).all(), (k, mean, exact)
        means.append(mean)
    gaps = [float((exact - m).mean()) for m in means]
    assert gaps[0] > 0.5, gaps
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3], gaps
    assert gaps[3] < 0.02, gaps


def test_k_1_is_the_elbo_in_expectation_and_for_the_same_draw():
    a, c, logvar = 0.2, 0.1, math.log(0.6)
    model = _linear_gaussian(a, c, logvar)
    # the ELBO in closed form: E_q log N(x; W z + B, S²) − KL(q ‖ N(0, 1))
    x = X.flatten()
    m, v = a * x + c, math.exp(logvar)
    expected_ll = -0.5 * math.log(2 * math.pi * S * S) - ((x - W * m - B) ** 2 + W * W * v) / (
        2 * S * S
    )
    elbo = expected_ll - gaussian_kl(m[:, None], torch.full((len(x), 1), logvar))
    mean, se = _replicated_bound(model, X, 1, reps=20_000, seed=0)
    assert ((mean - elbo).abs() < 5 * se).all(), (mean, elbo, se)
    # one draw: log p(x|z) + log p(z) − log q(z|x) at the z the forward pass draws
    out = model(X, generator=torch.Generator().manual_seed(5))
    q = Normal(out.mu, (0.5 * out.logvar).exp())
    by_hand = (
        out.reconstruction + Normal(0.0, 1.0).log_prob(out.z).sum(-1) - q.log_prob(out.z).sum(-1)
    )
    got = iwll(model, X, 1, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, by_hand.detach())


def test_a_bernoulli_vae_on_2x2_binary_images_against_quadrature():
    torch.manual_seed(0)
    model = VAE((1, 2, 2), latent=1, hidden=())
    with torch.no_grad():
        model.decoder[0].weight.copy_(torch.tensor([[2.0], [-1.5], [1.0], [0.5]]))
    # all 16 binary images
    bits = torch.tensor([[(i >> j) & 1 for j in range(4)] for i in range(16)], dtype=torch.float32)
    x = bits.reshape(16, 1, 2, 2)
    # log p(x) = log ∫ N(z; 0, 1) Π Bernoulli(x_j; σ(w_j z + b_j)) dz on a fine grid
    z = torch.linspace(-12, 12, 48_001, dtype=torch.float64)
    w = model.decoder[0].weight.detach().double().flatten()
    b = model.decoder[0].bias.detach().double()
    logits = z[:, None] * w + b  # grid × 4
    log_joint = Bernoulli(logits=logits[:, None, :]).log_prob(bits.double()).sum(-1)
    log_joint = log_joint + Normal(0.0, 1.0).log_prob(z)[:, None]
    exact = (torch.logsumexp(log_joint, 0) + math.log(float(z[1] - z[0]))).float()
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-4)  # a distribution over x
    m1, se1 = _replicated_bound(model, x, 1, reps=300, seed=1)
    m64, se64 = _replicated_bound(model, x, 64, reps=300, seed=2)
    m2k, _ = _replicated_bound(model, x, 2048, reps=20, seed=3)
    assert (m1 < exact + 4 * se1).all() and (m64 < exact + 4 * se64).all()
    assert float((exact - m1).mean()) > float((exact - m64).mean()) > 0
    torch.testing.assert_close(m2k, exact, atol=0.01, rtol=0)


def test_bad_k_or_images_say_what_is_wrong():
    model = VAE((1, 4, 4), latent=2, hidden=(8,))
    with pytest.raises(InputError, match="importance_weighted_log_likelihood: k must be"):
        iwll(model, torch.rand(2, 1, 4, 4), 0)
    with pytest.raises(InputError, match=r"images must be N×1×4×4.*got 2×1×5×5"):
        iwll(model, torch.rand(2, 1, 5, 5), 3)
    with pytest.raises(InputError, match="x holds no images"):
        iwll(model, torch.rand(0, 1, 4, 4), 3)


def test_progress_reports_the_images(capfd):
    model = VAE((1, 4, 4), latent=2, hidden=(8,))
    iwll(model, torch.rand(6, 1, 4, 4).round(), 3, chunk=4, progress=True)
    assert "log p(x), k=3: 6 images in" in capfd.readouterr().err
