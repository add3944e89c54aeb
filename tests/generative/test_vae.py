"""The VAE against independent references: the closed-form KL against Monte Carlo and
torch.distributions, the reparameterised sample's moments, the decoders' log-likelihoods against
torch's BCE and Normal, the task's loss and statistics, training on real MNIST, bad input."""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from striate.data import BatchLoader, load_dataset
from striate.engine import Trainer
from striate.engine.task import TASKS
from striate.errors import ConfigError, InputError
from striate.generative.vae import (
    VAE,
    VariationalAutoencoding,
    elbo,
    gaussian_kl,
    reparameterize,
)

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


def _posterior(seed=0, n=4, latent=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, latent, generator=g), torch.randn(n, latent, generator=g)


def test_the_closed_form_kl_matches_monte_carlo_within_its_standard_error():
    mu, logvar = _posterior()
    std = (0.5 * logvar).exp()
    q, p = Normal(mu, std), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.manual_seed(0)
    z = q.sample((200_000,)).double()
    log_ratio = (q.log_prob(z.float()) - p.log_prob(z.float())).sum(-1).double()  # N×n
    mc, se = log_ratio.mean(0), log_ratio.std(0) / len(z) ** 0.5
    kl = gaussian_kl(mu, logvar)
    assert kl.shape == (4,)
    assert ((kl.double() - mc).abs() < 5 * se).all(), (kl, mc, se)
    # and the exact KL of torch.distributions
    torch.testing.assert_close(kl, kl_divergence(q, p).sum(-1))
    assert gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)).tolist() == [0.0, 0.0]


def test_the_reparameterised_sample_has_the_posterior_s_mean_and_std_and_gradients():
    mu, logvar = _posterior(1, n=2)
    n = 100_000
    g = torch.Generator().manual_seed(0)
    z = reparameterize(mu.expand(n, -1, -1), logvar.expand(n, -1, -1), g)
    std = (0.5 * logvar).exp()
    assert ((z.mean(0) - mu).abs() < 5 * std / n**0.5).all()
    torch.testing.assert_close(z.std(0), std, rtol=0.02, atol=0)
    # the same generator seed gives the same draw; gradients flow to μ and log σ²
    mu1, lv1 = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    a = reparameterize(mu1, lv1, torch.Generator().manual_seed(3))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(3))
    assert torch.equal(a.detach(), b)
    a.sum().backward()
    assert torch.equal(mu1.grad, torch.ones_like(mu))
    eps = (b - mu) / std
    torch.testing.assert_close(lv1.grad, 0.5 * std * eps)


def test_the_bernoulli_log_likelihood_is_minus_the_summed_bce_with_logits():
    model = VAE((1, 4, 5), latent=2, hidden=(8,))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 5, generator=g)
    logits = 3 * torch.randn(3, 1, 4, 5, generator=g)
    expected = -F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 1
    got = model.log_likelihood(x, logits)
    assert got.shape == (3,)
    torch.testing.assert_close(got.sum(), expected)
    binary = x.round()
    bern = Bernoulli(logits=logits).log_prob(binary).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(binary, logits), bern)


@pytest.mark.parametrize("std", [0.3, None])
def test_the_gaussian_log_likelihood_is_torch_s_normal(std):
    model = VAE((2, 3, 3), latent=2, hidden=(8,), likelihood="gaussian", std=std)
    if std is None:
        assert model.log_std.requires_grad and model.log_std.shape == (2, 3, 3)
        with torch.no_grad():
            model.log_std.copy_(torch.linspace(-1, 1, 18).reshape(2, 3, 3))
    sigma = model.log_std.detach().exp()
    g = torch.Generator().manual_seed(0)
    x, mean = torch.rand(4, 2, 3, 3, generator=g), torch.rand(4, 2, 3, 3, generator=g)
    expected = Normal(mean, sigma.expand_as(mean)).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood(x, mean), expected)


def test_elbo_is_the_reconstruction_of_one_draw_minus_beta_kl():
    torch.manual_seed(0)
    model = VAE((1, 6, 6), latent=3, hidden=(16,))
    x = torch.rand(5, 1, 6, 6).round()
    terms = elbo(model, x, beta=0.5, generator=torch.Generator().manual_seed(7))
    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(7))
    by_hand = (
        -F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="none").flatten(1).sum(1)
    )
    torch.testing.assert_close(terms.reconstruction, by_hand)
    torch.testing.assert_close(terms.kl, gaussian_kl(mu, logvar))
    torch.testing.assert_close(terms.elbo, by_hand - 0.5 * terms.kl)


def test_the_task_s_loss_and_statistics():
    assert TASKS.get("vae") is VariationalAutoencoding
    torch.manual_seed(0)
    model = VAE((1, 6, 6), latent=3, hidden=(16,))
    x = torch.rand(5, 1, 6, 6).round()
    torch.manual_seed(1)
    step = VariationalAutoencoding(beta=2.0).training_step(model, (x, torch.zeros(5)))
    torch.manual_seed(1)
    terms = elbo(model, x)
    torch.testing.assert_close(step.loss, -(terms.reconstruction - 2.0 * terms.kl).mean())
    loss_sum, rec_sum, kl_sum, n = step.stats.tolist()
    assert n == 5 and loss_sum == pytest.approx(5 * float(step.loss.detach()), rel=1e-5)
    assert rec_sum == pytest.approx(float(terms.reconstruction.detach().sum()), rel=1e-5)
    assert kl_sum == pytest.approx(float(terms.kl.detach().sum()), rel=1e-5)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_shapes_sample_and_decode(kind):
    hidden = (8, 16) if kind == "conv" else (32,)
    model = VAE((3, 16, 16), latent=5, hidden=hidden, kind=kind, likelihood="gaussian")
    mu, logvar = model.encode(torch.rand(2, 3, 16, 16))
    assert mu.shape == logvar.shape == (2, 5)
    assert model.decode(torch.zeros(7, 2, 5)).shape == (7, 2, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    a, b = model.sample(4, g), model.sample(4, torch.Generator().manual_seed(0))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    probs = VAE((1, 8, 8), latent=2, hidden=(8,)).sample(3)
    assert float(probs.min()) >= 0 and float(probs.max()) <= 1


def test_bad_input_says_what_is_wrong_in_one_line():
    model = VAE((1, 28, 28), latent=4, hidden=(8,))
    with pytest.raises(InputError, match=r"images must be N×1×28×28.*got 2×3×32×32") as info:
        elbo(model, torch.rand(2, 3, 32, 32))
    assert "\n" not in str(info.value) and "in_shape=(3, 32, 32)" in str(info.value)
    with pytest.raises(InputError, match="got 2×784; pass a batch of images shaped N×C×H×W"):
        model.encode(torch.rand(2, 784))
    with pytest.raises(InputError, match="latent codes must have 4 numbers.*got 3"):
        model.decode(torch.zeros(2, 3))
    with pytest.raises(InputError, match="VAE.sample: n must be"):
        model.sample(0)
    with pytest.raises(ConfigError, match="did you mean 'gaussian'"):
        VAE(likelihood="gausian")
    with pytest.raises(ConfigError, match="VAE: kind must be one of"):
        VAE(kind="dense")
    with pytest.raises(ConfigError, match="beta"):
        VariationalAutoencoding(beta=-1)


def test_the_task_lowers_the_negative_elbo_on_mnist_with_the_trainer(shared_data):
    images = load_dataset("mnist", "train", root=shared_data)[:384]
    torch.manual_seed(0)
    model = VAE(latent=8, hidden=(128,))
    trainer = Trainer(epochs=3, task=VariationalAutoencoding(), opt="adam", lr=3e-3, **QUIET)
    val = BatchLoader(images, 384, shuffle=False, device="cpu")
    torch.manual_seed(0)
    before = trainer.evaluate(model, val)
    history = trainer.fit(model, BatchLoader(images, 64, device="cpu", seed=0), val)
    assert set(history[0]) >= {"train_loss", "train_reconstruction", "train_kl", "val_kl"}
    assert not any("acc" in k for row in history for k in row)
    for row in history:  # loss = −(reconstruction − KL), all per image
        assert row["val_loss"] == pytest.approx(row["val_kl"] - row["val_reconstruction"], rel=1e-4)
    # 784 pixels: the untrained model is near 543 nats (784·log 2); 18 steps must cut 150 of it
    assert before["loss"] > 500
    assert history[-1]["val_loss"] < before["loss"] - 150, (before, history[-1])
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    rebuilt = trainer.predict(model, images.images[:4].float() / 255)
    assert rebuilt.shape == (4, 1, 28, 28) and 0 <= float(rebuilt.min()) <= 1
