"""The neural cache pointer against a brute-force loop over positions written from Grave et al.
(2017), eq. 2: p_cache(w) ∝ Σ_{i=t−n}^{t−1} 1{w = x_{i+1}} exp(θ·h_tᵀh_i)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from striate.errors import ConfigError, InputError
from striate.sequence import cache
from striate.sequence.cache import (
    cache_probabilities,
    cached_log_likelihood,
    cached_perplexity,
    collect,
    grid_search,
)


def brute_force(hidden, targets, window, theta):
    """One position at a time, in float64, exactly as the formula reads."""
    h, y = hidden.double(), targets.tolist()
    out = []
    for t in range(len(y)):
        lo = max(0, t - window)
        if lo == t:
            out.append(0.0)
            continue
        e = [math.exp(theta * float(h[t] @ h[i])) for i in range(lo, t)]
        out.append(sum(w for w, i in zip(e, range(lo, t), strict=True) if y[i] == y[t]) / sum(e))
    return torch.tensor(out, dtype=torch.float64)


def stream(n, dim, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randint(
        vocab, (n,), generator=g
    )


@pytest.mark.parametrize("window", [1, 2, 7, 39, 40, 200])
@pytest.mark.parametrize("theta", [0.0, 0.4, 1.5])
def test_equals_brute_force(window, theta):
    hidden, targets = stream(40, 5, 4)
    got = cache_probabilities(hidden, targets, window=window, theta=theta)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, brute_force(hidden, targets, window, theta), atol=1e-6, rtol=0)


def test_blocks_and_float32(monkeypatch):
    # Several blocks of the banded score matrix, the window crossing block boundaries.
    monkeypatch.setattr(cache, "_BLOCK", 64)
    hidden, targets = stream(300, 3, 6, seed=1)
    want = brute_force(hidden, targets, 90, 0.7)
    got = cache_probabilities(hidden, targets, window=90, theta=0.7)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    got32 = cache_probabilities(hidden.float(), targets, window=90, theta=0.7)
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), want, atol=1e-5, rtol=0)


def test_window_edge_cases():
    hidden, targets = stream(30, 4, 3, seed=2)
    # n = 1: the cache holds (h_{t-1}, x_t) alone, p_cache = 1{x_t = x_{t+1}}; empty at t = 0.
    one = cache_probabilities(hidden, targets, window=1, theta=3.0)
    want = torch.cat([torch.zeros(1), (targets[1:] == targets[:-1]).double()])
    torch.testing.assert_close(one, want.double())
    # n ≥ N: the unbounded cache of 001_*.md (sum from the first step).
    torch.testing.assert_close(
        cache_probabilities(hidden, targets, window=30, theta=0.5),
        cache_probabilities(hidden, targets, window=10_000, theta=0.5),
        atol=1e-12,
        rtol=0,
    )
    # Start of the stream: position t < n sees the t pairs that exist, nothing before.
    full = cache_probabilities(hidden, targets, window=8, theta=0.5)
    assert full[0] == 0
    torch.testing.assert_close(full[:8], brute_force(hidden[:8], targets[:8], 10_000, 0.5))


def test_theta_zero_is_the_window_unigram():
    hidden, targets = stream(60, 4, 5, seed=3)
    n = 12
    got = cache_probabilities(hidden, targets, window=n, theta=0.0)
    for t in (0, 1, 5, 12, 13, 59):
        seen = targets[max(0, t - n) : t]
        want = (seen == targets[t]).sum().item() / len(seen) if len(seen) else 0.0
        assert got[t].item() == pytest.approx(want, abs=1e-12)


def test_mixture_and_lambda_zero():
    g = torch.Generator().manual_seed(4)
    log_p = -torch.rand(50, generator=g, dtype=torch.float64) * 6
    pc = torch.rand(50, generator=g, dtype=torch.float64)
    pc[:5] = 0  # empty windows: the mixture falls back to (1 − λ)·p_vocab there
    assert cached_perplexity(log_p, pc, 0.0) == pytest.approx(math.exp(-log_p.mean().item()))
    lam = 0.3
    want = torch.log((1 - lam) * log_p.exp() + lam * pc).mean().item()
    assert cached_log_likelihood(log_p, pc, lam) == pytest.approx(want, rel=1e-12)
    assert cached_perplexity(log_p, pc, lam) == pytest.approx(math.exp(-want), rel=1e-12)
    # Far below float64's smallest normal, p_vocab still counts through the logaddexp.
    tiny = torch.full((3,), -800.0, dtype=torch.float64)
    assert cached_log_likelihood(tiny, torch.zeros(3, dtype=torch.float64), 0.5) == pytest.approx(
        -800 + math.log(0.5)
    )


class TinyLM(nn.Module):
    """The language-model protocol (features / head, carrying the state) around torch's LSTM."""

    context = None

    def __init__(self, vocab: int, dim: int, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.vocab_size = vocab
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, batch_first=True)
        self.proj = nn.Linear(dim, vocab)

    def features(self, x, state=None):
        return self.rnn(self.embed(x), state)

    def head(self, h):
        return self.proj(h)

    def forward(self, x, state=None):
        h, state = self.features(x, state)
        return self.head(h), state


def test_collect_carries_the_state_in_order():
    model = TinyLM(11, 8).double()
    tokens = torch.randint(11, (103,), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        h_all, _ = model.features(tokens[None, :-1])
        lp_all = torch.log_softmax(model.head(h_all), -1)[0].gather(-1, tokens[1:, None])[:, 0]
    hidden, log_p, targets = collect(model, tokens, length=10)
    assert torch.equal(targets, tokens[1:])
    torch.testing.assert_close(hidden.double(), h_all[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(log_p.double(), lp_all, atol=1e-6, rtol=0)
    # Parts side by side: 102 targets in 4 parts of 25, each fresh, then the remainder of 2.
    hidden4, log_p4, _ = collect(model, tokens, batch=4, length=7)
    with torch.no_grad():
        parts = [tokens[a : a + 26] for a in (0, 25, 50, 75)] + [tokens[100:]]
        want = torch.cat([model.features(p[None, :-1])[0][0] for p in parts])
    torch.testing.assert_close(hidden4.double(), want, atol=1e-6, rtol=0)
    assert log_p4.shape == (102,)
    assert model.training  # the mode is given back


def test_collect_checks():
    model = TinyLM(5, 4)
    with pytest.raises(InputError, match="2 or more"):
        collect(model, torch.tensor([1]))
    model.context = 8
    with pytest.raises(InputError, match="context 8"):
        collect(model, torch.arange(5), length=9)


def test_repeated_text_makes_the_cache_help():
    # An untrained model knows nothing; on a passage that repeats, the states it met before recur
    # and the cache points at the words that followed them (‖h‖ ≈ 0.6 here: θ must be large).
    model = TinyLM(50, 16, seed=6)
    passage = torch.randint(50, (40,), generator=torch.Generator().manual_seed(7))
    hidden, log_p, targets = collect(model, passage.repeat(4), length=32)
    found = grid_search(
        hidden, targets, log_p, thetas=[0.0, 1.0, 100.0], lams=[0.0, 0.3, 0.8], windows=[20, 100]
    )
    assert found["perplexity"] < 0.2 * found["plain_perplexity"]
    assert (found["window"], found["theta"], found["lam"]) == (100, 100.0, 0.8)
    # The grid: every combination, λ = 0 rows equal to the plain perplexity, the best its minimum.
    assert len(found["grid"]) == 18
    for r in found["grid"]:
        if r["lam"] == 0:
            assert r["perplexity"] == pytest.approx(found["plain_perplexity"])
    assert found["perplexity"] == min(r["perplexity"] for r in found["grid"])
    pc = cache_probabilities(hidden, targets, window=found["window"], theta=found["theta"])
    assert cached_perplexity(log_p, pc, found["lam"]) == pytest.approx(found["perplexity"])


def test_bad_input():
    hidden, targets = stream(10, 3, 4)
    with pytest.raises(ConfigError, match="window"):
        cache_probabilities(hidden, targets, window=0, theta=1.0)
    with pytest.raises(InputError, match="targets"):
        cache_probabilities(hidden, targets[:-1], window=3, theta=1.0)
    with pytest.raises(ConfigError, match="lam"):
        cached_perplexity(torch.zeros(3), torch.zeros(3), 1.5)
    with pytest.raises(InputError, match="one length"):
        cached_perplexity(torch.zeros(3), torch.zeros(4), 0.1)
    with pytest.raises(InputError, match="one length"):
        grid_search(hidden, targets, torch.zeros(9), thetas=[1.0], lams=[0.1], windows=[3])
    with pytest.raises(InputError, match="thetas"):
        grid_search(hidden, targets, torch.zeros(10), thetas=[], lams=[0.1], windows=[3])
