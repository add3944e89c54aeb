"""Exploding and vanishing gradients in a vanilla RNN: the norm of ∂L/∂h_t for every step back
from the end, against the largest singular value σ_max of W_hh (lecture 10 of 002_*.txt; Bengio
et al. 1994; Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
networks").

Backpropagating from h_T to h_t multiplies by J_s = diag(φ'(a_s)) W_hh once per step s, so
‖∂L/∂h_t‖ ≤ (γ σ_max)^{T−t} ‖∂L/∂h_T‖ with γ = max|φ'| (1 for tanh and for the linear RNN).
σ_max < 1 is sufficient for vanishing; σ_max > 1 is necessary for exploding. With W_hh = σ·Q
(Q orthogonal) every singular value is σ and the linear RNN gives exactly σ^{T−t}; tanh's
derivative < 1 can only shrink it further.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib.figure import Figure
from torch import Tensor

from striate.checks import number, one_of, positive_int
from striate.errors import ConfigError

MATRICES = ("orthogonal", "gaussian")
FLOW_NONLINEARITIES = ("linear", "tanh")


def recurrent_matrices(
    sigmas: Sequence[float], hidden: int, *, matrix: str = "orthogonal", seed: int = 0
) -> Tensor:
    """(S, H, H) float64 matrices W_hh, the s-th scaled to largest singular value sigmas[s]. One
    random draw scaled to each σ, so the lines differ only by σ. "orthogonal": σ·Q, all singular
    values equal; "gaussian": a N(0, 1) matrix divided by its σ_max, times σ."""
    matrix = one_of("gradient_flow", "matrix", matrix, MATRICES)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(hidden, hidden, generator=g, dtype=torch.float64)
    if matrix == "orthogonal":
        q, r = torch.linalg.qr(a)
        base = q * torch.sign(torch.diagonal(r))  # Haar-distributed (Mezzadri 2007)
    else:
        base = a / torch.linalg.matrix_norm(a, ord=2)
    s = torch.as_tensor(list(sigmas), dtype=torch.float64)
    return s[:, None, None] * base


def gradient_norms(
    sigmas: Sequence[float] = (0.5, 0.9, 1.0, 1.1, 1.5),
    *,
    nonlinearity: str = "tanh",
    steps: int = 50,
    hidden: int = 64,
    inputs: int = 16,
    batch: int = 32,
    input_scale: float = 1.0,
    matrix: str = "orthogonal",
    seed: int = 0,
) -> dict[str, Tensor]:
    """Run h_t = φ(W_ih x_t + W_hh h_{t−1}) for `steps` steps from h_0 = 0 on random inputs, one
    W_hh per σ in `sigmas`, take L = Σ_batch v·h_T (v a random unit vector per sequence) and
    return the mean over the batch of ‖∂L/∂h_{T−k}‖ for k = 0 … steps−1 (k = 0 gives ‖v‖ = 1).

    Measured by autograd, all σ and sequences at once (float64). Returns {"sigma": (S,),
    "steps_back": (steps,), "norm": (S, steps)}, plus "bound" (S, steps) = σ^k, the exact value
    for the linear RNN on an orthogonal W_hh and an upper bound otherwise.
    """
    owner = "gradient_flow"
    nonlinearity = one_of(owner, "nonlinearity", nonlinearity, FLOW_NONLINEARITIES)
    steps = positive_int(owner, "steps", steps)
    hidden = positive_int(owner, "hidden", hidden)
    inputs = positive_int(owner, "inputs", inputs)
    batch = positive_int(owner, "batch", batch)
    input_scale = number(owner, "input_scale", input_scale, low=0)
    if len(sigmas) == 0:
        raise ConfigError("gradient_flow: sigmas must name at least one largest singular value")
    for s in sigmas:
        number(owner, "each sigma", s, low=0, low_open=True)
    w_hh = recurrent_matrices(sigmas, hidden, matrix=matrix, seed=seed)  # (S, H, H)
    S = w_hh.shape[0]
    g = torch.Generator().manual_seed(seed + 1)
    f64 = torch.float64
    w_ih = torch.randn(hidden, inputs, generator=g, dtype=f64) / inputs**0.5
    x = input_scale * torch.randn(steps, batch, inputs, generator=g, dtype=f64)
    v = torch.randn(batch, hidden, generator=g, dtype=f64)
    v = v / v.norm(dim=-1, keepdim=True)
    drive = x @ w_ih.T  # (T, B, H), the same inputs for every σ
    act = torch.tanh if nonlinearity == "tanh" else (lambda a: a)
    h = torch.zeros(S, batch, hidden, dtype=f64, requires_grad=True)  # a leaf: h_t need grads
    kept = []
    for t in range(steps):
        h = act(drive[t] + h @ w_hh.transpose(1, 2))  # (S, B, H): h W^T, every σ at once
        h.retain_grad()
        kept.append(h)
    (h * v).sum().backward()
    grads = torch.stack([k.grad for k in reversed(kept)], dim=1)  # (S, steps, B, H), k steps back
    norm = grads.norm(dim=-1).mean(dim=-1)
    sig = torch.as_tensor(list(sigmas), dtype=f64)
    back = torch.arange(steps)
    return {
        "sigma": sig,
        "steps_back": back,
        "norm": norm.detach(),
        "bound": sig[:, None] ** back[None, :].to(f64),
    }


def gradient_flow_figure(
    sigmas: Sequence[float] = (0.5, 0.9, 1.0, 1.1, 1.5),
    *,
    nonlinearities: Sequence[str] = FLOW_NONLINEARITIES,
    **options,
) -> Figure:
    """‖∂L/∂h_{T−k}‖ against the steps back k, log scale, one line per σ_max and one panel per
    nonlinearity (`options` go to `gradient_norms`). The linear panel draws σ^k dotted beside it."""
    fig = Figure(figsize=(4.2 * len(nonlinearities), 3.4), layout="constrained")
    axes = fig.subplots(1, len(nonlinearities), squeeze=False)[0]
    for ax, name in zip(axes, nonlinearities, strict=True):
        r = gradient_norms(sigmas, nonlinearity=name, **options)
        for s in range(len(r["sigma"])):
            line = ax.semilogy(r["steps_back"], r["norm"][s], label=f"σ_max = {r['sigma'][s]:g}")
            if name == "linear":
                ax.semilogy(r["steps_back"], r["bound"][s], ":", color=line[0].get_color())
        ax.set(xlabel="steps back from the end, T − t", title=f"{name} RNN")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖")
    axes[-1].legend(fontsize="small")
    return fig


__all__ = ["gradient_flow_figure", "gradient_norms", "recurrent_matrices"]
