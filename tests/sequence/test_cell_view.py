"""The interpretable-cell view: text features against a loop over characters, a hand-built LSTM
whose cell tracks quote parity found by find_cells, activations against the model's own forward,
HTML escaping and the figure's layout."""

from __future__ import annotations

import html
import re

import pytest
import torch

from striate.errors import InputError
from striate.sequence.cell_view import (
    FEATURES,
    _layout,
    cell_activations,
    cell_figure,
    cell_html,
    correlations,
    find_cells,
    text_features,
)
from striate.sequence.corpus import Vocabulary
from striate.sequence.rnn_lm import RecurrentLM

TEXT = (
    'He said "go (now) and [then]" twice.\n'
    'She: "no"; he: (a {b} c).\n'
    "\n"
    'x "y\n'
    'z" end (open\n'
    "“curly (quote)” done)"
)


def loop_features(text):
    """The features one character at a time, from their definitions."""
    out = {k: [] for k in FEATURES}
    straight = curly = depth = 0
    line = 0
    last_newline = -1
    for k, ch in enumerate(text):
        straight ^= ch == '"'
        curly += (ch == "“") - (ch == "”")
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "\n":
            last_newline = k
        rest = text[k:]
        out["inside_quotes"].append(float(straight == 1 or curly > 0))
        out["line_position"].append(float(k - last_newline))
        out["bracket_depth"].append(float(depth))
        out["to_line_end"].append(float(rest.index("\n") if "\n" in rest else len(rest)))
        line += ch == "\n"
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


@pytest.mark.parametrize("text", [TEXT, "a", "\n", '""\n\n(', "no newline at all"])
def test_text_features_equal_a_loop(text):
    got, want = text_features(text), loop_features(text)
    assert set(got) == set(FEATURES)
    for k in FEATURES:
        assert torch.equal(got[k], want[k]), k


def test_layout_equals_a_loop():
    for text, columns in [(TEXT, 80), (TEXT, 7), ("\n\nabc\n", 2), ("abcdefg", 3)]:
        rows, cols = _layout(text, columns)
        r = c = 0
        want = []
        for ch in text:
            if c == columns:
                r, c = r + 1, 0
            want.append((r, c))
            c += 1
            if ch == "\n":
                r, c = r + 1, 0
        assert list(zip(rows.tolist(), cols.tolist(), strict=True)) == want


def quote_lm(vocab: Vocabulary, k: float = 12.0) -> RecurrentLM:
    """One-hot embedding, LSTM cell 0 flips between c = +1 (inside) and −1 (outside) on each '"';
    cells 1, 2 are random distractors. Gates i,f,g,o of cell 0:
    i = σ(k(2q−1)), f = σ(k(1−2q)), g = tanh(k(1 − 2.6 h0)), o = σ(k), q = 1{x = '"'}."""
    v, hidden = len(vocab), 3
    torch.manual_seed(0)
    model = RecurrentLM(v, kind="lstm", embed=v, hidden=hidden, layers=1)
    q = vocab.index['"']
    rnn = model.rnn
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(v))
        w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
        b = rnn.bias_ih_l0
        rnn.bias_hh_l0.zero_()
        w_ih.mul_(0.5)
        for gate in range(4):  # cell 0's rows: nothing from other inputs or cells
            w_ih[gate * hidden].zero_()
            w_hh[gate * hidden].zero_()
        i, f, g, o = (gate * hidden for gate in range(4))
        w_ih[i, q], b[i] = 2 * k, -k
        w_ih[f, q], b[f] = -2 * k, k
        w_hh[g, 0], b[g] = -2.6 * k, k
        b[o] = k
    return model


def test_find_cells_finds_the_quote_cell():
    text = TEXT.replace("“", '"').replace("”", '"') * 3  # the cell knows straight quotes
    vocab = Vocabulary.build(text, "char")
    model = quote_lm(vocab)
    acts = cell_activations(model, vocab, text, chunk=17)
    inside = text_features(text)["inside_quotes"] > 0
    # the hand-built cell: tanh(1) inside every quotation, tanh(−1) outside once a quote was seen
    first = text.index('"')
    cell, inside = acts[first:, 0].double(), inside[first:]
    want = torch.where(inside, 1.0, -1.0).double().tanh()
    torch.testing.assert_close(cell, want, atol=1e-3, rtol=0)
    rows = find_cells(model, vocab, text, top=3)
    quote_rows = [r for r in rows if r.feature == "inside_quotes"]
    assert quote_rows[0].cell == 0 and quote_rows[0].correlation > 0.95
    assert all(abs(r.correlation) < 0.9 for r in quote_rows[1:])
    assert {r.feature for r in rows} == set(FEATURES)
    # the correlations are Pearson's r, as numpy's corrcoef computes it
    feats = text_features(text)
    r = correlations(acts, torch.stack([feats[name] for name in FEATURES], 1))
    for k, name in enumerate(FEATURES):
        for cell in range(3):
            want = torch.corrcoef(torch.stack([feats[name], acts[:, cell].double()]))[0, 1]
            assert r[k, cell].item() == pytest.approx(want.item(), abs=1e-9)


def test_activations_match_the_model_forward():
    text = TEXT
    vocab = Vocabulary.build(text, "char")
    torch.manual_seed(1)
    model = RecurrentLM(len(vocab), kind="lstm", embed=6, hidden=5, layers=2).double()
    with torch.no_grad():
        h, _ = model.features(vocab.encode(text)[None])
    hidden = cell_activations(model, vocab, text, value="hidden", chunk=10)
    torch.testing.assert_close(hidden.double(), h[0].float().double(), atol=1e-6, rtol=0)
    # the first layer's cells differ from the last's, and tanh(c) lies in (−1, 1)
    first = cell_activations(model, vocab, text, layer=0)
    assert first.shape == (len(text), 5) and first.abs().max() < 1
    assert not torch.allclose(first, cell_activations(model, vocab, text))
    gru = RecurrentLM(len(vocab), kind="gru", embed=4, hidden=3, layers=1)
    with pytest.raises(InputError, match="value='hidden'"):
        cell_activations(gru, vocab, text)
    assert cell_activations(gru, vocab, text, value="hidden").shape == (len(text), 3)
    with pytest.raises(InputError, match="outside the vocabulary"):
        cell_activations(model, vocab, "text with ~ unknown")


def test_html_escapes_and_colours():
    text = '<b>&"x"</b>\n'
    values = torch.linspace(-1, 1, len(text))
    page = cell_html(text, values, title="<cell 3>")
    assert "<b>" not in page and "</b>" not in page and "&lt;cell 3&gt;" in page
    body = re.search(r"<div[^>]*>(.*)</div>", page, re.S).group(1)
    spans = re.findall(
        r'<span style="background:rgba\(([\d,]+),([\d.]+)\)"[^>]*>(.*?)</span>', body, re.S
    )
    assert [s[2] for s in spans][:5] == ["&lt;", "b", "&gt;", "&amp;", "&quot;"]
    assert "".join(html.unescape(s[2]) for s in spans) == text
    assert spans[0][0] == "31,119,180" and float(spans[0][1]) == 1.0  # −1: full blue
    assert spans[-1][0] == "214,39,40" and float(spans[-1][1]) == 1.0  # +1: full red
    with pytest.raises(InputError, match="one activation per character"):
        cell_html(text, values[:-1])


def test_figure_lays_out_the_text():
    text = "ab\ncdefgh"
    fig = cell_figure(text, torch.arange(len(text), dtype=torch.float32) / 10, columns=4)
    ax = fig.axes[0]
    drawn = [(t.get_text(), t.get_position()) for t in ax.texts]
    assert [d[0] for d in drawn] == list("abcdefgh")
    assert drawn[-1][1] == (1, 2)  # 'h' wraps to the third row, second column
    image = ax.images[0].get_array()
    assert image.shape == (3, 4) and image[2, 1] == pytest.approx(0.8)
