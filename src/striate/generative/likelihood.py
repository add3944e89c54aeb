"""The importance-weighted estimate of log p(x) for a VAE (Burda, Grosse & Salakhutdinov 2015,
"Importance Weighted Autoencoders", eq. 8):

    log p(x) ≥ L_k = E[log (1/k) Σᵢ p(x, zᵢ) / q(zᵢ|x)],  zᵢ ~ q(z|x)

L_1 is the ELBO, L_k ≤ L_{k+1} and L_k → log p(x) as k → ∞ (their Theorem 1). The model needs
`encode(x) -> (μ, log σ²)`, `decode(z)` and `log_likelihood(x, out)`, as `VAE` has.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from striate.checks import positive_int
from striate.errors import InputError
from striate.generative.vae import LOG_2PI


@torch.no_grad()
def importance_weighted_log_likelihood(
    model: nn.Module,
    x: torch.Tensor,
    k: int,
    *,
    chunk: int = 4096,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_k per image of `x`, in nats: logsumexp over k draws of log p(x|z) + log p(z) − log q(z|x),
    minus log k. `chunk` caps the latents decoded at once (k × images), for memory."""
    k = positive_int("importance_weighted_log_likelihood", "k", k, error=InputError)
    chunk = positive_int("importance_weighted_log_likelihood", "chunk", chunk, error=InputError)
    mu, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    batch = min(len(x), chunk)
    per_draw = max(1, chunk // batch)
    results = []
    for start in range(0, len(x), batch):
        sl = slice(start, start + batch)
        m, s, lv, xs = mu[sl], std[sl], logvar[sl], x[sl]
        log_w = []
        for first in range(0, k, per_draw):
            n = min(per_draw, k - first)
            eps = torch.randn((n, *m.shape), generator=generator, device=m.device, dtype=m.dtype)
            z = m + s * eps
            log_q = -0.5 * (eps.pow(2) + lv + LOG_2PI).sum(-1)
            log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            log_px = model.log_likelihood(xs, model.decode(z))
            log_w.append(log_px + log_prior - log_q)
        results.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))
    return torch.cat(results)
