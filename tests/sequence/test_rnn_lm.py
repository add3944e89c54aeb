"""RecurrentLM against the same network assembled from torch's own layers, weight tying, and
the zoo's names and specs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from striate.errors import ConfigError
from striate.sequence.lm_zoo import LANGUAGE_MODELS, build_language_model, language_model_from_spec
from striate.sequence.rnn_lm import RecurrentLM


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_equals_torch_embedding_rnn_linear(kind):
    torch.manual_seed(0)
    model = RecurrentLM(11, kind=kind, embed=6, hidden=8, layers=2).eval()
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[kind](6, 8, 2, batch_first=True)
    layer.load_state_dict(model.rnn.state_dict())
    x = torch.randint(0, 11, (3, 5))
    reference_h, reference_state = layer(model.embedding.weight[x])
    reference = reference_h @ model.decoder.weight.T + model.decoder.bias
    logits, state = model(x)
    assert logits.shape == (3, 5, 11)
    torch.testing.assert_close(logits, reference, atol=1e-6, rtol=1e-5)
    states = state if kind == "lstm" else (state,)
    refs = reference_state if kind == "lstm" else (reference_state,)
    for s, r in zip(states, refs, strict=True):
        torch.testing.assert_close(s, r, atol=1e-6, rtol=1e-5)
    h, _ = model.features(x)
    torch.testing.assert_close(model.head(h), logits)
    assert model.context is None and model.vocab_size == 11 and model.kind == kind


def test_weight_tying_shares_one_matrix():
    model = RecurrentLM(20, embed=16, hidden=16, layers=1, tie_weights=True)
    assert model.decoder.weight is model.embedding.weight
    n_tied = sum(p.numel() for p in model.parameters())
    n_free = sum(p.numel() for p in RecurrentLM(20, embed=16, hidden=16, layers=1).parameters())
    assert n_free - n_tied == 20 * 16
    with pytest.raises(ConfigError, match="embed must equal hidden"):
        RecurrentLM(20, embed=8, hidden=16, tie_weights=True)


def test_the_zoo_builds_by_name_and_rebuilds_from_the_spec():
    torch.manual_seed(0)
    model = build_language_model("gru", 13, embed=4, hidden=5, layers=1, dropout=0.1)
    assert isinstance(model, RecurrentLM) and model.kind == "gru"
    assert model.spec["name"] == "recurrent_lm"
    again = language_model_from_spec(model.spec)
    again.load_state_dict(model.state_dict())
    x = torch.randint(0, 13, (2, 7))
    torch.testing.assert_close(again.eval()(x)[0], model.eval()(x)[0])
    assert set(LANGUAGE_MODELS.names()) == {"rnn", "lstm", "gru", "transformer"}
    with pytest.raises(ConfigError, match="did you mean 'lstm'"):
        build_language_model("lstn", 13)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        build_language_model("lstm", 13, heads=4)


def test_the_zoo_builds_the_transformer():
    model = build_language_model("transformer", 13, context=16, layers=1, heads=2, embed=16)
    assert model.context == 16 and model.spec["name"] == "transformer_lm"
    logits, state = model(torch.randint(0, 13, (2, 16)))
    assert logits.shape == (2, 16, 13) and state is None
    assert type(language_model_from_spec(model.spec)) is type(model)
