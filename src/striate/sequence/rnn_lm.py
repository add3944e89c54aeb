"""The recurrent language model (char-RNN, Karpathy 2015; the word-level LSTM of Zaremba et al.
2014): token embedding → multi-layer RNN/LSTM/GRU → dropout → linear head over the vocabulary.

    model = RecurrentLM(65, kind="lstm", embed=128, hidden=256, layers=2, dropout=0.2)
    logits, state = model(x)          # x (B, T) int64 → (B, T, 65), state for the next chunk

Dropout as Zaremba et al. place it: on the embeddings, between layers (inside `Recurrent`) and on
the last layer's outputs, never on the recurrent connections. `tie_weights` shares the embedding
matrix with the head (Press & Wolf 2017; Inan et al. 2017), which needs embed == hidden.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from striate.checks import boolean, positive_int, probability
from striate.errors import ConfigError
from striate.sequence.recurrent import Recurrent


class RecurrentLM(nn.Module):
    """Embedding → `Recurrent` → dropout → Linear; the language-model network protocol of
    `striate.sequence` (vocab_size, context=None, spec, forward, features, head)."""

    context: int | None = None  # a recurrent model reads any length

    def __init__(
        self,
        vocab_size: int,
        *,
        kind: str = "lstm",
        embed: int = 128,
        hidden: int = 256,
        layers: int = 2,
        dropout: float = 0.0,
        tie_weights: bool = False,
        gru_form: str = "torch",
        implementation: str = "auto",
        init: str = "torch",
    ) -> None:
        super().__init__()
        owner = "RecurrentLM"
        self.vocab_size = positive_int(owner, "vocab_size", vocab_size)
        positive_int(owner, "embed", embed)
        positive_int(owner, "hidden", hidden)
        probability(owner, "dropout", dropout, high_open=True)
        if boolean(owner, "tie_weights", tie_weights) and embed != hidden:
            raise ConfigError(
                f"RecurrentLM: tie_weights shares the embedding with the head, so embed must "
                f"equal hidden, got embed={embed}, hidden={hidden}"
            )
        self.spec = {
            "name": "recurrent_lm",
            "arguments": {
                "vocab_size": vocab_size,
                "kind": kind,
                "embed": embed,
                "hidden": hidden,
                "layers": layers,
                "dropout": dropout,
                "tie_weights": tie_weights,
                "gru_form": gru_form,
                "implementation": implementation,
                "init": init,
            },
        }
        self.embedding = nn.Embedding(vocab_size, embed)
        self.rnn = Recurrent(
            kind,
            embed,
            hidden,
            layers,
            dropout=dropout,
            gru_form=gru_form,
            implementation=implementation,
            init=init,
        )
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocab_size)
        if tie_weights:
            self.decoder.weight = self.embedding.weight

    @property
    def kind(self) -> str:
        return self.rnn.kind

    def features(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """The last layer's outputs h_t (B, T, hidden), before the head's dropout, and the state
        after the last step."""
        return self.rnn(self.drop(self.embedding(x)), state)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over the vocabulary of outputs (…, hidden)."""
        return self.decoder(self.drop(h))

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        h, state = self.features(x, state)
        return self.head(h), state

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}, tie_weights={self.spec['arguments']['tie_weights']}"
