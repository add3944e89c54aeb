"""The variational autoencoder (Kingma & Welling 2014, "Auto-Encoding Variational Bayes").

    model = VAE((1, 28, 28), latent=20)                      # Bernoulli decoder (binarised MNIST)
    model = VAE((3, 32, 32), latent=64, hidden=(32, 64), kind="conv", likelihood="gaussian")
    terms = elbo(model, x)                                   # per image, in nats
    Trainer(task=VariationalAutoencoding(beta=1.0), opt="adam", lr=1e-3).fit(model, train)

The encoder q(z|x) = N(μ, diag σ²) outputs μ and log σ²; z = μ + σ·ε with ε ~ N(0, I) (the
reparameterisation, §2.4); the prior is p(z) = N(0, I). The decoder gives Bernoulli logits per
pixel, or the mean of a Gaussian per pixel (fixed σ, or a learned log σ per pixel). The ELBO
(eq. 10) is E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) with the KL in closed form (Appendix B).
The layers are those of `Autoencoder` (ReLU; the paper's MLP has one tanh hidden layer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import int_sequence, number, one_of, positive_int, positive_number
from striate.engine.task import TASKS, Batch, Step, Task, stack_stats
from striate.errors import ConfigError, InputError
from striate.generative.autoencoder import KINDS, Autoencoder

LIKELIHOODS = ("bernoulli", "gaussian")
LOG_2PI = math.log(2 * math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per sample (summed over the last dimension), in nats:
    −½ Σ (1 + log σ² − μ² − σ²) (Kingma & Welling 2014, Appendix B).

    The reference notes (004_*.txt, the VAE derivation) write the last term of log p(x) as
    D_KL(q(z|x), p(z)) — the prior — where it is D_KL(q(z|x) ‖ p_θ(z|x)), the KL to the true
    posterior: that term is intractable and ≥ 0, which is why dropping it leaves a lower bound."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = μ + σ·ε, ε ~ N(0, I): a sample of N(μ, diag σ²) differentiable in μ and log σ²."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


def gaussian_log_density(
    x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor | float
) -> torch.Tensor:
    """log N(x; mean, σ²) per element, with log σ given (a tensor or a number)."""
    log_std = torch.as_tensor(log_std, dtype=mean.dtype, device=mean.device)
    return -0.5 * (((x - mean) * torch.exp(-log_std)).pow(2) + LOG_2PI) - log_std


class VAEOutput(NamedTuple):
    """What `VAE.forward` returns for a batch: the decoder's output (logits or means) at the
    sampled z, the posterior's μ and log σ², z, and per sample log p(x|z) and the KL (nats)."""

    out: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


class ELBO(NamedTuple):
    """Per-sample terms in nats: log p(x|z) at one z ~ q, KL(q ‖ p(z)), and
    reconstruction − β·KL (the ELBO itself at β = 1)."""

    reconstruction: torch.Tensor
    kl: torch.Tensor
    elbo: torch.Tensor


class VAE(nn.Module):
    """Gaussian encoder, Bernoulli or Gaussian decoder; see the module docstring.

    `hidden`/`kind` are `Autoencoder`'s (mlp widths, or conv channels). `std` is the Gaussian
    decoder's σ: a number fixes it, None learns one log σ per pixel (initialised at σ = 1)."""

    def __init__(
        self,
        in_shape: Sequence[int] = (1, 28, 28),
        latent: int = 20,
        hidden: Sequence[int] = (400,),
        kind: str = "mlp",
        likelihood: str = "bernoulli",
        std: float | None = 1.0,
    ) -> None:
        super().__init__()
        self.in_shape = tuple(int_sequence("VAE", "in_shape", in_shape, min_len=3))
        if len(self.in_shape) != 3:
            raise ConfigError(f"VAE: in_shape must be (C, H, W), got {in_shape!r}")
        self.latent = positive_int("VAE", "latent", latent)
        self.likelihood = one_of("VAE", "likelihood", likelihood, LIKELIHOODS)
        hidden = tuple(int_sequence("VAE", "hidden", hidden, min_len=0))
        self.kind = one_of("VAE", "kind", kind, KINDS)
        # the encoder of an autoencoder with 2·latent outputs (μ, log σ²), the decoder of one
        # with `latent`: the same layers as `Autoencoder`, built by it
        self.encoder = Autoencoder(self.in_shape, 2 * self.latent, hidden, kind).encoder
        self.decoder = Autoencoder(self.in_shape, self.latent, hidden, kind).decoder
        self.std = None if std is None else positive_number("VAE", "std", std)
        if self.likelihood == "gaussian" and std is None:
            self.log_std = nn.Parameter(torch.zeros(self.in_shape))
        else:
            self.register_buffer("log_std", torch.tensor(math.log(self.std or 1.0)))

    def check_input(self, x: torch.Tensor) -> None:
        """Raise an InputError unless `x` is a batch of images of the model's shape."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            c, h, w = self.in_shape
            fix = (
                f"resize the images or build the VAE with in_shape={tuple(x.shape[1:])}"
                if x.dim() == 4
                else "pass a batch of images shaped N×C×H×W"
            )
            raise InputError(
                f"VAE: images must be N×{c}×{h}×{w} (the model's in_shape), got "
                f"{'×'.join(map(str, x.shape))}; {fix}"
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² of q(z|x), each N×latent."""
        self.check_input(x)
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's output for latents `z` (…×latent): pixel logits (Bernoulli) or means
        (Gaussian), shaped …×C×H×W; any leading dimensions are kept."""
        if z.shape[-1] != self.latent:
            raise InputError(
                f"VAE: latent codes must have {self.latent} numbers (the model's latent), "
                f"got {z.shape[-1]}; draw z with the model's latent size"
            )
        lead = z.shape[:-1]
        return self.decoder(z.reshape(-1, self.latent)).reshape(*lead, *self.in_shape)

    def log_likelihood(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image, summed over pixels (nats), from the decoder's output `out`
        (…×C×H×W, broadcast against x). Bernoulli: −BCE with logits (x in [0, 1])."""
        if self.likelihood == "bernoulli":
            logp = -F.binary_cross_entropy_with_logits(
                out, x.expand_as(out).to(out.dtype), reduction="none"
            )
        else:
            logp = gaussian_log_density(x.to(out.dtype), out, self.log_std)
        return logp.flatten(-3).sum(-1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, draw one z ~ q(z|x), decode; log p(x|z) and the KL per image."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        out = self.decode(z)
        return VAEOutput(out, mu, logvar, z, self.log_likelihood(x, out), gaussian_kl(mu, logvar))

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|z) from the decoder's output: sigmoid(logits), or the Gaussian mean."""
        return out.sigmoid() if self.likelihood == "bernoulli" else out

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` images: the mean of p(x|z) for z ~ N(0, I) (pixel probabilities, Bernoulli)."""
        n = positive_int("VAE.sample", "n", n, error=InputError)
        p = next(self.parameters())
        z = torch.randn(n, self.latent, generator=generator, device=p.device, dtype=p.dtype)
        return self.mean(self.decode(z))


def elbo(
    model: nn.Module, x: torch.Tensor, beta: float = 1.0, generator: torch.Generator | None = None
) -> ELBO:
    """The per-image ELBO terms (nats) with one z ~ q(z|x) each (Kingma & Welling 2014, eq. 10;
    β weights the KL as in Higgins et al. 2017's β-VAE)."""
    result = model(x, generator=generator)
    return ELBO(result.reconstruction, result.kl, result.reconstruction - beta * result.kl)


class VariationalAutoencoding(Task):
    """Train a `VAE` by minimising −ELBO (β·KL) per image; reports the loss, the
    reconstruction log-likelihood and the KL, each in nats per image.

    Images come from the loader in [0, 1] (no `normalize`); binarise them for a Bernoulli
    likelihood in the paper's sense."""

    name = "vae"
    running_stats = ("loss", "reconstruction", "kl", "n")
    metrics = ("loss", "reconstruction", "kl")
    monitor = "val_loss"

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = float(number("VariationalAutoencoding", "beta", beta, low=0))  # type: ignore[arg-type]

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        x = batch[0]
        terms = elbo(model, x, self.beta)
        rec, kl = terms.reconstruction.float(), terms.kl.float()
        losses = -(rec - self.beta * kl)
        loss = losses.mean()
        n = len(x)
        stats = stack_stats(loss.detach() * n, rec.detach().sum(), kl.detach().sum(), n)
        return Step(loss, stats, losses)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """The mean reconstruction: the decoder's mean at z = μ(x)."""
        mu, _ = model.encode(x)
        return model.mean(model.decode(mu)).float()


TASKS.add("vae", VariationalAutoencoding)
