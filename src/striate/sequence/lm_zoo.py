"""The language models by name, and their rebuilding from a saved `spec`.

build_language_model("lstm", 65, hidden=256, layers=2)     # RecurrentLM(kind="lstm")
build_language_model("transformer", 65, context=64)         # TransformerLM
language_model_from_spec(model.spec)                        # the same architecture again
"""

from __future__ import annotations

from typing import Any

from torch import nn

from striate.checks import positive_int
from striate.errors import ConfigError
from striate.registry import Registry
from striate.sequence.rnn_lm import RecurrentLM
from striate.sequence.transformer import TransformerLM

LANGUAGE_MODELS: Registry[Any] = Registry("language model")


def _recurrent(kind: str):
    def build(vocab_size: int, **arguments: Any) -> nn.Module:
        return RecurrentLM(vocab_size, kind=kind, **arguments)

    return build


LANGUAGE_MODELS.add("rnn", _recurrent("rnn"), "vanilla (tanh) RNN language model")
LANGUAGE_MODELS.add("lstm", _recurrent("lstm"), "LSTM language model")
LANGUAGE_MODELS.add("gru", _recurrent("gru"), "GRU language model")
LANGUAGE_MODELS.add("transformer", TransformerLM, "causal transformer language model")


def build_language_model(name: str, vocab_size: int, **arguments: Any) -> nn.Module:
    """A language model by name ("rnn" | "lstm" | "gru" → RecurrentLM, "transformer" →
    TransformerLM) over `vocab_size` tokens; `arguments` go to its constructor."""
    builder = LANGUAGE_MODELS.get(name)
    positive_int("build_language_model", "vocab_size", vocab_size)
    try:
        return builder(vocab_size, **arguments)
    except TypeError as e:  # an argument the architecture does not take
        raise ConfigError(f"build_language_model: {name}: {e}; see its constructor") from e


def language_model_from_spec(spec: dict[str, Any]) -> nn.Module:
    """The model a `spec` ({"name": "recurrent_lm" | "transformer_lm", "arguments": {…}})
    describes, freshly initialised (load its weights next)."""
    try:
        name, arguments = spec["name"], dict(spec["arguments"])
    except (KeyError, TypeError) as e:
        raise ConfigError(f"not a language-model spec (missing {e}): {spec!r}") from e
    if name == "recurrent_lm":
        return RecurrentLM(**arguments)
    if name == "transformer_lm":
        return TransformerLM(**arguments)
    raise ConfigError(
        f"unknown language-model spec {name!r}; the specs are recurrent_lm, transformer_lm"
    )
