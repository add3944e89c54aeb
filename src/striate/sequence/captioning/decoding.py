"""Greedy and beam-search decoding of a captioner, batched (beam search is vectorised over the
images and the beams: one decoder step per word for all of them).

    out = greedy_decode(net, images, start=1, end=2, pad=0, max_length=12)
    out = beam_search(net, images, start=1, end=2, pad=0, beam=3, length_norm=0.7)
    out.tokens (B, T)   out.alphas (B, T, L)   out.lengths (B,)   out.scores (B,)

A decoder is any object with `begin(images) -> state` (a tuple of batch-first tensors) and
`step(y_prev, state) -> (logits (N, V), state, alpha (N, L))`, as `ShowAttendTell` has. Decoding
starts from `start` and stops at `end` (kept in `tokens`, counted in `lengths`) or after
`max_length` tokens; what follows is `pad` (and zero attention). `scores` are the summed log
probabilities of the tokens.

Beam search keeps the `beam` best partial captions of each image by summed log probability; a
finished one stays in the beam with its score, extended by nothing. The best finished caption is
chosen by score / length^`length_norm` (Wu et al. 2016 use ((5 + |Y|)/6)^α; plain |Y|^α here,
α = 0: no normalisation, which favours short captions; α = 1: the mean log probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

from striate.checks import integer, number, positive_int


class Decoder(Protocol):
    def begin(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]: ...

    def step(
        self, y_prev: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]: ...


@dataclass
class Decoded:
    """Decoded captions: tokens (B, T) int64 after `start` (ending with `end` where reached,
    then pad), their lengths (B,), summed log probabilities (B,) and attention maps (B, T, L)."""

    tokens: torch.Tensor
    lengths: torch.Tensor
    scores: torch.Tensor
    alphas: torch.Tensor


def _check(owner: str, max_length: int, start: int, end: int, pad: int) -> None:
    positive_int(owner, "max_length", max_length)
    for name, v in (("start", start), ("end", end), ("pad", pad)):
        integer(owner, name, v, low=0)


@torch.no_grad()
def greedy_decode(
    model: Decoder,
    images: torch.Tensor,
    *,
    start: int,
    end: int,
    pad: int,
    max_length: int = 20,
) -> Decoded:
    """The most probable next token at every step, for a batch of images."""
    _check("greedy_decode", max_length, start, end, pad)
    state = model.begin(images)
    n = images.shape[0]
    y = torch.full((n,), start, dtype=torch.long, device=images.device)
    done = torch.zeros(n, dtype=torch.bool, device=images.device)
    tokens, alphas, scores = [], [], torch.zeros(n, device=images.device)
    lengths = torch.zeros(n, dtype=torch.long, device=images.device)
    for _ in range(max_length):
        logits, state, alpha = model.step(y, state)
        logp = logits.float().log_softmax(1)
        y = logp.argmax(1)
        scores += torch.where(done, 0.0, logp.gather(1, y[:, None]).squeeze(1))
        lengths += (~done).long()
        tokens.append(torch.where(done, pad, y))
        alphas.append(torch.where(done[:, None], 0.0, alpha.float()))
        done = done | (y == end)
        if bool(done.all()):
            break
    return Decoded(torch.stack(tokens, 1), lengths, scores, torch.stack(alphas, 1))


def _reorder(state: tuple[torch.Tensor, ...], index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return tuple(s.index_select(0, index) for s in state)


@torch.no_grad()
def beam_search(
    model: Decoder,
    images: torch.Tensor,
    *,
    start: int,
    end: int,
    pad: int,
    beam: int = 3,
    max_length: int = 20,
    length_norm: float = 0.0,
) -> Decoded:
    """The `beam` best partial captions of every image, expanded one token at a time; the best
    finished one (by score / length^`length_norm`) is returned."""
    _check("beam_search", max_length, start, end, pad)
    k = positive_int("beam_search", "beam", beam)
    alpha_norm = number("beam_search", "length_norm", length_norm, low=0)
    n, dev = images.shape[0], images.device
    state = model.begin(images)
    flat = torch.arange(n, device=dev).repeat_interleave(k)
    state = _reorder(state, flat)  # (n·k, …): beam j of image b at row b·k + j
    y = torch.full((n * k,), start, dtype=torch.long, device=dev)
    scores = torch.full((n, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # at first the beams are one and the same: expand one
    done = torch.zeros(n, k, dtype=torch.bool, device=dev)
    lengths = torch.zeros(n, k, dtype=torch.long, device=dev)
    tokens = torch.zeros(n, k, 0, dtype=torch.long, device=dev)
    alphas: torch.Tensor | None = None
    rows = torch.arange(n, device=dev)[:, None]
    for _ in range(max_length):
        logits, state, alpha = model.step(y, state)
        logp = logits.float().log_softmax(1).view(n, k, -1)
        v = logp.shape[2]
        # a finished beam continues with `pad` at no cost, and with nothing else
        stay = torch.full_like(logp, float("-inf"))
        stay[..., pad] = 0.0
        logp = torch.where(done[..., None], stay, logp)
        top, index = (scores[..., None] + logp).view(n, k * v).topk(k, dim=1)
        parent, word = index // v, index % v
        scores = top
        was_done = done.gather(1, parent)
        tokens = torch.cat([tokens[rows, parent], word[..., None]], 2)
        att = alpha.float().view(n, k, -1)[rows, parent]
        att = torch.where(was_done[..., None], 0.0, att)
        alphas = (
            att[:, :, None]
            if alphas is None
            else torch.cat([alphas[rows, parent], att[:, :, None]], 2)
        )
        lengths = lengths.gather(1, parent) + (~was_done).long()
        done = was_done | (word == end)
        state = _reorder(state, (parent + torch.arange(n, device=dev)[:, None] * k).flatten())
        y = word.flatten()
        if bool(done.all()):
            break
    ranking = scores / lengths.clamp(min=1).float() ** alpha_norm if alpha_norm else scores
    ranking = torch.where(done, ranking, ranking - 1e9) if bool(done.any()) else ranking
    best = ranking.argmax(1)
    pick = torch.arange(n, device=dev)
    assert alphas is not None
    return Decoded(tokens[pick, best], lengths[pick, best], scores[pick, best], alphas[pick, best])


def decode(model: Any, images: torch.Tensor, *, beam: int = 1, **options: Any) -> Decoded:
    """Greedy decoding for `beam` 1, beam search otherwise."""
    if beam == 1:
        options.pop("length_norm", None)
        return greedy_decode(model, images, **options)
    return beam_search(model, images, beam=beam, **options)
