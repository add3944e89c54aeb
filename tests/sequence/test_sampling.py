"""sample(): greedy decoding against an argmax loop that re-reads the whole text at every step
(so carrying the RNN state and the transformer's window are checked), top-k 1 = greedy, the first
draw's distribution against softmax(logits / T) by a chi-square bound, seeds, and bad prompts."""

import math

import pytest
import torch
from torch import nn

from striate.errors import InputError
from striate.sequence.corpus import Vocabulary
from striate.sequence.sampling import choose_next, sample

TEXT = "first citizen:\nbefore we proceed any further, hear me speak.\n"
VOCAB = Vocabulary.build(TEXT, "char")


class TinyRNN(nn.Module):
    """The network protocol around torch's own LSTM (context None: carries its state)."""

    context = None

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, 8)
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.out = nn.Linear(16, vocab_size)

    def forward(self, x, state=None):
        h, state = self.rnn(self.embed(x), state)
        return self.out(h) * 3, state  # sharper logits: greedy differs from a uniform guess


class TinyWindow(nn.Module):
    """A causal model that sees the last `context` tokens only (the mean of their embeddings,
    weighted by position in the window), like a transformer of context `context`."""

    def __init__(self, vocab_size: int, context: int) -> None:
        super().__init__()
        self.vocab_size, self.context = vocab_size, context
        self.embed = nn.Embedding(vocab_size, 8)
        self.out = nn.Linear(8, vocab_size)

    def forward(self, x, state=None):
        assert x.shape[1] <= self.context, "fed more than the context"
        e = self.embed(x) * torch.arange(1, x.shape[1] + 1).reshape(1, -1, 1)
        mean = e.cumsum(1) / torch.arange(1, x.shape[1] + 1).reshape(1, -1, 1)
        return self.out(torch.tanh(mean)) * 3, None


def greedy_by_hand(model, prompt: str, n: int, window: int | None) -> str:
    ids = VOCAB.encode(prompt).tolist()
    with torch.no_grad():
        for _ in range(n):
            x = torch.tensor([ids if window is None else ids[-window:]])
            logits, _ = model(x)  # from scratch each time: no carried state
            ids.append(int(logits[0, -1].argmax()))
    return VOCAB.decode(ids)


@pytest.fixture(params=["rnn", "window"])
def model(request):
    torch.manual_seed(0)
    return TinyRNN(len(VOCAB)) if request.param == "rnn" else TinyWindow(len(VOCAB), 5)


def test_greedy_is_argmax_decoding_and_top_k_1_is_greedy(model):
    window = getattr(model, "context", None)
    expected = greedy_by_hand(model, "hear ", 30, window)
    assert sample(model, VOCAB, "hear ", 30, temperature=0) == expected
    assert sample(model, VOCAB, "hear ", 30, temperature=1.0, top_k=1, seed=5) == expected
    assert sample(model, VOCAB, "hear ", 30, temperature=1e-6, seed=7) == expected


def test_a_prompt_longer_than_the_context_is_cut_to_it():
    torch.manual_seed(0)
    model = TinyWindow(len(VOCAB), 4)
    prompt = "before we proceed"
    assert sample(model, VOCAB, prompt, 10, temperature=0) == greedy_by_hand(model, prompt, 10, 4)


def test_the_first_draw_follows_softmax_over_temperature():
    """20,000 draws from one row of logits: each token's count against softmax(logits / T), a
    chi-square statistic under its 0.999 quantile (df = V - 1); with top-k, nothing outside the
    k largest and the k renormalised."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, generator=g) * 2
    n = 20_000
    for temperature, top_k in ((1.0, None), (0.5, None), (2.0, None), (1.0, 4)):
        draws = choose_next(
            logits.expand(n, -1),
            temperature=temperature,
            top_k=top_k,
            generator=torch.Generator().manual_seed(1),
        )
        counts = torch.bincount(draws, minlength=12).double()
        scaled = logits.double() / temperature
        if top_k is not None:
            keep = scaled.topk(top_k).indices
            assert counts.sum() == counts[keep].sum()
            masked = torch.full_like(scaled, -math.inf)
            masked[keep] = scaled[keep]
            scaled = masked
        p = torch.softmax(scaled, 0)
        seen = p > 0
        expected = n * p[seen]
        chi2 = float(((counts[seen] - expected) ** 2 / expected).sum())
        df = int(seen.sum()) - 1
        # the 0.999 quantile of chi-square(df) by Wilson–Hilferty
        z = 3.09
        bound = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
        assert chi2 < bound, (temperature, top_k, chi2, bound)
        # and not a constant: the probable tokens were all drawn
        assert (counts[p > 0.01] > 0).all()


def test_sample_draws_its_tokens_with_a_seeded_generator(model):
    """The first sampled token is choose_next on the prompt's last logits with a generator
    seeded by `seed`."""
    with torch.no_grad():
        logits, _ = model(VOCAB.encode("speak").reshape(1, -1))
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        first = int(choose_next(logits[:, -1], temperature=0.9, top_k=6, generator=g))
        text = sample(model, VOCAB, "speak", 1, temperature=0.9, top_k=6, seed=seed)
        assert text == "speak" + VOCAB.tokens[first]


def test_same_seed_same_text_and_the_mode_is_kept(model):
    model.train()
    a = sample(model, VOCAB, "hear", 40, seed=3)
    assert a == sample(model, VOCAB, "hear", 40, seed=3)
    assert a != sample(model, VOCAB, "hear", 40, seed=4)
    assert a.startswith("hear") and len(a) == 44 and model.training


def test_an_empty_prompt_starts_from_a_newline(model):
    text = sample(model, VOCAB, "", 12, temperature=0)
    assert len(text) == 12 and text == greedy_by_hand(model, "\n", 12, model.context)[1:]


def test_word_level_prompts_and_unknown_words():
    vocab = Vocabulary.build(["<eos>", "the", "lord", "said", "the"], "word", specials=["<eos>"])
    torch.manual_seed(0)
    model = TinyRNN(len(vocab))
    text = sample(model, vocab, "The LORD", 3, seed=0)
    assert text.startswith("The LORD ") and len(text.split()) == 5
    assert all(w in vocab.tokens for w in text.split()[2:])
    assert len(sample(model, vocab, "", 4).split()) == 4  # from "<eos>"
    # an unseen word is "<unk>", not an error
    assert sample(model, vocab, "moses", 2).startswith("moses ")


def test_bad_inputs_are_one_line(model):
    with pytest.raises(InputError, match="prompt has characters outside the vocabulary: 'Z'") as e:
        sample(model, VOCAB, "Zounds", 5)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="length"):
        sample(model, VOCAB, "hear", 0)
    with pytest.raises(InputError, match="temperature"):
        sample(model, VOCAB, "hear", 5, temperature=-1)
    with pytest.raises(InputError, match="top_k"):
        sample(model, VOCAB, "hear", 5, top_k=0)
    no_newline = Vocabulary.build("abc", "char")
    with pytest.raises(InputError, match="empty prompt starts from a newline"):
        sample(TinyRNN(3), no_newline, "", 5)
