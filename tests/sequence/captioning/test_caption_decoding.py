"""Greedy decoding and beam search: beam 1 is greedy; beam search finds the caption greedy misses
on a hand-built decoder, and the exact best caption (brute force over all captions) with a wide
enough beam; decoding stops at <end>."""

import itertools

import pytest
import torch

from striate.errors import ConfigError
from striate.sequence.captioning.decoding import beam_search, decode, greedy_decode
from striate.sequence.captioning.model import ShowAttendTell

PAD, START, END = 0, 1, 2


class TableDecoder:
    """p(next | previous token) from a table; the state is a dummy per-image tensor that must
    follow its beam (it counts the steps)."""

    def __init__(self, table: dict[int, list[float]], v: int) -> None:
        self.logp = torch.full((v, v), -30.0)
        for prev, probs in table.items():
            self.logp[prev] = torch.tensor(probs).log()

    def begin(self, x):
        return (torch.zeros(len(x), 1),)

    def step(self, y, state):
        return self.logp[y], (state[0] + 1,), torch.full((len(y), 4), 0.25)


def _trap() -> TableDecoder:
    # tokens: 0 pad, 1 start, 2 end, 3 A, 4 B
    table = {
        START: [0, 0, 0, 0.6, 0.4],  # greedy takes A …
        3: [0, 0, 0.35, 0.33, 0.32],  # … after which nothing is likely: A <end> has p 0.21
        4: [0, 0, 0.9, 0.05, 0.05],  # B <end> has p 0.36
    }
    return TableDecoder(table, 5)


def test_beam_search_finds_the_caption_greedy_misses():
    x = torch.zeros(2, 3, 8, 8)
    options = dict(start=START, end=END, pad=PAD, max_length=5)
    greedy = greedy_decode(_trap(), x, **options)
    beam = beam_search(_trap(), x, beam=2, **options)
    assert greedy.tokens[0, :2].tolist() == [3, 2] and greedy.lengths.tolist() == [2, 2]
    assert beam.tokens[0, :2].tolist() == [4, 2]
    assert beam.scores[0].exp().item() == pytest.approx(0.36, rel=1e-5)
    assert greedy.scores[0].exp().item() == pytest.approx(0.21, rel=1e-5)
    # after <end>: padding and no attention
    assert set(beam.tokens[:, 2:].flatten().tolist()) <= {PAD}
    assert beam.alphas[:, 2:].abs().sum() == 0 and beam.alphas[:, :2].sum(2).allclose(
        torch.ones(2, 2)
    )


class TinyRNN:
    """A random recurrent decoder whose next token depends on the whole history."""

    def __init__(self, v: int = 5, h: int = 6, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(h, h, generator=g)
        self.e = torch.randn(v, h, generator=g) * 2
        self.u = torch.randn(h, v, generator=g) * 2

    def begin(self, x):
        return (x.flatten(1)[:, :6].clone(),)

    def step(self, y, state):
        h = torch.tanh(state[0] @ self.w + self.e[y])
        logits = h @ self.u
        logits[:, [PAD, START]] = -1e4  # never proposed
        return logits, (h,), h.softmax(1)


def _brute_force(model: TinyRNN, x: torch.Tensor, max_length: int) -> float:
    """The best summed log probability of a finished caption (…, <end>) of one image."""
    best = float("-inf")
    for n in range(1, max_length + 1):
        for words in itertools.product([3, 4], repeat=n - 1):
            seq = [*words, END]
            state, y, total = model.begin(x), torch.tensor([START]), 0.0
            for t in seq:
                logits, state, _ = model.step(y, state)
                total += logits.log_softmax(1)[0, t].item()
                y = torch.tensor([t])
            best = max(best, total)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_a_wide_beam_finds_the_best_caption(seed):
    model = TinyRNN(seed=seed)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(seed + 10))
    out = beam_search(model, x, start=START, end=END, pad=PAD, beam=32, max_length=4)
    for i in range(3):
        best = _brute_force(model, x[i : i + 1], 4)
        assert out.scores[i].item() == pytest.approx(best, abs=1e-4)
        n = int(out.lengths[i])
        assert out.tokens[i, n - 1] == END


def test_beam_one_is_greedy_on_the_captioner():
    torch.manual_seed(0)
    net = ShowAttendTell(12, features=16, width=8, embed=8, hidden=16, attention=8).eval()
    x = torch.rand(5, 3, 64, 64)
    options = dict(start=START, end=END, pad=PAD, max_length=7)
    greedy = greedy_decode(net, x, **options)
    beam = beam_search(net, x, beam=1, **options)
    assert torch.equal(greedy.tokens, beam.tokens) and torch.equal(greedy.lengths, beam.lengths)
    assert torch.allclose(greedy.scores, beam.scores) and torch.allclose(greedy.alphas, beam.alphas)
    assert torch.equal(decode(net, x, beam=1, **options).tokens, greedy.tokens)
    # the scores are the summed log probabilities of the tokens, by teacher forcing
    tokens = torch.cat([torch.full((5, 1), START), greedy.tokens], 1)
    logits, _ = net(x, tokens[:, :-1])
    logp = logits.log_softmax(-1).gather(2, tokens[:, 1:, None]).squeeze(2)
    mask = torch.arange(7)[None] < greedy.lengths[:, None]
    assert torch.allclose((logp * mask).sum(1), greedy.scores, atol=1e-5)


def test_length_normalisation_prefers_the_longer_caption():
    """<end> at once has p 0.3 (log −1.20), A <end> 0.7·0.4 = 0.28 (log −1.27, −0.64 per token):
    unnormalised the short caption wins, by mean log probability (α = 1) the longer one."""
    table = {START: [0, 0, 0.3, 0.7, 0], 3: [0, 0, 0.4, 0.6, 0]}
    x = torch.zeros(1, 3, 8, 8)
    options = dict(start=START, end=END, pad=PAD, max_length=2, beam=3)
    plain = beam_search(TableDecoder(table, 5), x, **options)
    assert plain.tokens[0].tolist() == [END, PAD] and plain.lengths.item() == 1
    longer = beam_search(TableDecoder(table, 5), x, length_norm=1.0, **options)
    assert longer.tokens[0].tolist() == [3, END] and longer.lengths.item() == 2
    assert longer.scores.exp().item() == pytest.approx(0.28, rel=1e-5)


def test_bad_options_are_one_line():
    for bad in (dict(beam=0), dict(max_length=0), dict(length_norm=-1.0)):
        with pytest.raises(ConfigError) as e:
            beam_search(_trap(), torch.zeros(1, 3, 8, 8), start=1, end=2, pad=0, **bad)
        assert "\n" not in str(e.value)
