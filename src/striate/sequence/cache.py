"""The neural cache pointer (Grave, Joulin & Usunier 2017, "Improving Neural Language Models with a
Continuous Cache"): a trained language model's next-word distribution mixed with a distribution that
points back at the words which followed similar hidden states, with no retraining:

    p(w) = (1−λ)·p_vocab(w) + λ·p_cache(w),
    p_cache(w) ∝ Σ_{i=t−n}^{t−1} 1{w = x_{i+1}} exp(θ·h_tᵀh_i)      (Grave et al., eq. 2–3)

h_t is the last layer's output at step t (the input to the vocabulary projection), x_{t+1} the word
it predicts; the cache holds the last n pairs (h_i, x_{i+1}). 001_*.md ("Pointer cache for Language
Model") writes the sum from i = 1 (the unbounded cache); the window of n is the paper's and the
post's own code. Only the probability of the true next word enters perplexity, so it is computed
for all positions at once in blocks of a banded score matrix, never as a V-wide distribution.

At the start of a stream the window holds the i ≥ 0 that exist (fewer than n); at t = 0 it is
empty, p_cache = 0 and the mixture is (1−λ)·p_vocab there. The post's notebook does the same;
Merity et al.'s awd-lstm-lm pointer uses the plain p_vocab until a whole window exists (the two
differ on the first n positions only).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from striate.checks import number, positive_int, probability
from striate.errors import InputError
from striate.progress import progress_bar

# Rows of the banded score matrix per block: the block's scores are block × (block + window)
# floats (a 512 × 2,512 block for n = 2,000 is 5 MB), whatever the stream's length.
_BLOCK = 512


def cache_probabilities(hidden: Tensor, targets: Tensor, *, window: int, theta: float) -> Tensor:
    """p_cache(x_{t+1}) for every t (N,): Σ_i softmax_i(θ·h_t·h_i)·1{x_{i+1} = x_{t+1}} over the
    last `window` steps i ∈ [t−window, t−1] that exist (0 where none does, at t = 0).

    hidden (N, H): h_t along one stream in order; targets (N,): x_{t+1}, the word h_t predicts.
    Computed in the dtype of `hidden` (half types in float32), in blocks whose memory does not
    grow with N.
    """
    hidden, targets = _check_stream("cache_probabilities", hidden, targets)
    window = positive_int("cache_probabilities", "window", window)
    theta = number("cache_probabilities", "theta", theta, low=0.0)
    n, dim = hidden.shape
    # Pad the front with `window` rows that never match and are masked out of the softmax, so that
    # the window of position t is rows [t, t + window) of the padded stream for every t.
    keys = torch.cat([hidden.new_zeros(window, dim), hidden])
    words = torch.cat([targets.new_full((window,), -1), targets])
    out = torch.empty(n, dtype=hidden.dtype, device=hidden.device)
    offsets = torch.arange(window, device=hidden.device)
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        rows = stop - start
        # scores[r, c] = θ h_{start+r}·k_{start+c}; the window of row r is columns [r, r + window):
        # a band read through a strided view (row stride + 1), no copy.
        scores = (theta * hidden[start:stop]) @ keys[start : stop + window - 1].T
        band = scores.as_strided((rows, window), (scores.stride(0) + 1, scores.stride(1)))
        padded = (start + torch.arange(rows, device=hidden.device))[:, None] + offsets < window
        band = band.masked_fill(padded, -math.inf)
        seen = words[start : stop + window - 1].unfold(0, window, 1)  # (rows, window), a view
        match = seen == targets[start:stop, None]
        top = band.amax(dim=1, keepdim=True)
        weights = torch.exp(band - top.nan_to_num(neginf=0.0))  # exp(-inf) = 0 for padding
        total = weights.sum(dim=1)
        hits = (weights * match).sum(dim=1)
        out[start:stop] = torch.where(total > 0, hits / total.clamp_min(1e-300), 0.0)
    return out


def cached_log_likelihood(log_p_vocab: Tensor, cache_probs: Tensor, lam: float) -> float:
    """Mean log-probability (nats per token) of the targets under (1−λ)·p_vocab + λ·p_cache,
    computed as a logaddexp so tiny probabilities do not underflow; λ = 0 gives the model's own."""
    log_p_vocab, cache_probs = _check_pair(log_p_vocab, cache_probs)
    lam = probability("cached_log_likelihood", "lam", lam)
    return float(_mixture_log_probs(log_p_vocab.double(), cache_probs.double(), lam).mean())


def cached_perplexity(log_p_vocab: Tensor, cache_probs: Tensor, lam: float) -> float:
    """exp(−mean log p) of the targets under the cache mixture (Grave et al. 2017, eq. 4)."""
    return math.exp(-cached_log_likelihood(log_p_vocab, cache_probs, lam))


def _mixture_log_probs(log_p_vocab: Tensor, cache_probs: Tensor, lam: float) -> Tensor:
    with torch.no_grad():
        a = log_p_vocab + (math.log1p(-lam) if lam < 1 else -math.inf)
        b = torch.log(cache_probs) + (math.log(lam) if lam > 0 else -math.inf)
        return torch.logaddexp(a, b)


# The grid searched by default (Grave et al. tune θ, λ and the window n on validation). θ multiplies
# h_t·h_i, whose size depends on the model: a grid whose best θ is at its edge should be widened.
GRID: dict[str, tuple] = {
    "thetas": (0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    "lams": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4),
    "windows": (100, 500, 1000, 2000),
}


def grid_search(
    val_hidden: Tensor,
    val_targets: Tensor,
    val_log_p: Tensor,
    *,
    thetas: Iterable[float] = GRID["thetas"],
    lams: Iterable[float] = GRID["lams"],
    windows: Iterable[int] = GRID["windows"],
    progress: bool = False,
) -> dict[str, Any]:
    """The θ, λ, n with the lowest validation perplexity (Grave et al. choose them on validation).

    Returns {"theta", "lam", "window", "perplexity" (the best), "plain_perplexity" (no cache),
    "grid": [{"theta", "lam", "window", "perplexity"}, …]}. p_cache is computed once per (n, θ)
    and reused for every λ (it does not depend on λ).
    """
    val_hidden, val_targets = _check_stream("grid_search", val_hidden, val_targets)
    val_log_p, _ = _check_pair(val_log_p, torch.zeros(val_targets.shape))
    thetas = _values("thetas", thetas, lambda v: number("grid_search", "thetas", v, low=0.0))
    lams = _values("lams", lams, lambda v: probability("grid_search", "lams", v))
    windows = _values("windows", windows, lambda v: positive_int("grid_search", "windows", v))
    lp = val_log_p.double()
    grid = []
    with progress_bar(
        "cache grid search", len(windows) * len(thetas), "(n, θ)", enabled=progress
    ) as advance:
        for window in windows:
            for theta in thetas:
                pc = cache_probabilities(val_hidden, val_targets, window=window, theta=theta)
                pc = pc.double()
                for lam in lams:
                    mean = float(_mixture_log_probs(lp, pc, lam).mean())
                    row = {"theta": theta, "lam": lam, "window": window}
                    grid.append({**row, "perplexity": math.exp(-mean)})
                advance(1)
    best = min(grid, key=lambda r: r["perplexity"])
    return {**best, "plain_perplexity": math.exp(-float(lp.mean())), "grid": grid}


def collect(
    model: nn.Module,
    tokens: Tensor,
    *,
    batch: int = 1,
    length: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run a language model along a token stream in order: (hidden (N, H), log p_vocab of the
    targets (N,), targets (N,)) on the CPU, N = len(tokens) − 1, every target covered.

    The model follows the language-model protocol (`features(x, state)`, `head(h)`). The stream is
    cut into `batch` contiguous parts of equal length run side by side, each in chunks of `length`
    with the state carried from chunk to chunk (fresh at each part's start); the remainder (fewer
    than `batch` tokens) runs last as a part of its own. A model with a bounded `context` (a
    transformer) sees each chunk alone, so `length` must not exceed its context.
    """
    batch = positive_int("collect", "batch", batch)
    length = positive_int("collect", "length", length)
    if not isinstance(tokens, Tensor) or tokens.dim() != 1 or tokens.dtype != torch.int64:
        raise InputError("collect: tokens must be a 1-D int64 tensor (a token stream)")
    if tokens.numel() < 2:
        raise InputError(f"collect: the stream has {tokens.numel()} token(s); 2 or more needed")
    context = getattr(model, "context", None)
    if context is not None and length > context:
        raise InputError(
            f"collect: length {length} exceeds the model's context {context}; "
            f"pass length <= {context}"
        )
    n = tokens.numel() - 1
    batch = min(batch, n)
    size = n // batch
    x_all, y_all = tokens[:-1], tokens[1:]
    parts = [(x_all[: batch * size].view(batch, size), y_all[: batch * size].view(batch, size))]
    if n > batch * size:
        parts.append((x_all[batch * size :][None], y_all[batch * size :][None]))
    was_training = model.training
    model.eval()
    hidden, logp = [], []
    try:
        with (
            torch.inference_mode(),
            progress_bar("cache: running the model", n, "tokens", enabled=progress) as advance,
        ):
            for x, y in parts:
                hs, lps, state = [], [], None
                for t in range(0, x.shape[1], length):
                    h, state = model.features(x[:, t : t + length].to(device), state)
                    if context is not None:
                        state = None
                    lp = torch.log_softmax(model.head(h).float(), dim=-1)
                    lps.append(lp.gather(-1, y[:, t : t + length].to(device)[..., None])[..., 0])
                    hs.append(h.float())
                    advance(h.shape[0] * h.shape[1])
                hidden.append(torch.cat(hs, dim=1).flatten(0, 1).cpu())
                logp.append(torch.cat(lps, dim=1).flatten().cpu())
    finally:
        model.train(was_training)
    return torch.cat(hidden), torch.cat(logp), y_all.clone()


def _check_stream(owner: str, hidden: Any, targets: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(hidden, Tensor) or hidden.dim() != 2 or not hidden.is_floating_point():
        raise InputError(f"{owner}: hidden must be a float tensor (N, H) of hidden states")
    if not isinstance(targets, Tensor) or targets.shape != hidden.shape[:1]:
        raise InputError(
            f"{owner}: targets must be a tensor (N,) of next-word ids matching hidden "
            f"{tuple(hidden.shape)}, got {getattr(targets, 'shape', type(targets).__name__)}"
        )
    if hidden.dtype in (torch.float16, torch.bfloat16):
        hidden = hidden.float()
    if not torch.isfinite(hidden).all():
        raise InputError(f"{owner}: hidden has NaN or infinite values")
    return hidden, targets.to(device=hidden.device, dtype=torch.int64)


def _check_pair(log_p: Any, cache_probs: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(log_p, Tensor) or not isinstance(cache_probs, Tensor):
        raise InputError("cache: log p_vocab and the cache probabilities must be tensors")
    if log_p.dim() != 1 or log_p.shape != cache_probs.shape:
        raise InputError(
            f"cache: log p_vocab {tuple(log_p.shape)} and the cache probabilities "
            f"{tuple(cache_probs.shape)} must be 1-D and of one length (one per target)"
        )
    return log_p, cache_probs.to(log_p.device)


def _values(name: str, values: Iterable[Any], check) -> list:
    out = [check(v) for v in values]
    if not out:
        raise InputError(f"grid_search: {name} must hold at least one value")
    return out
