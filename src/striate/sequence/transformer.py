"""A small causal transformer language model, shaped as nanoGPT's GPT (Karpathy; GPT-2, Radford et
al. 2019): token and learned position embeddings, dropout, pre-LN transformer blocks with causal
self-attention, a final LayerNorm and a vocabulary head tied to the token embedding.

The nanoGPT CPU configuration for tiny-shakespeare characters is ``TransformerLM(65, context=64,
layers=4, heads=4, embed=128, bias=False)``: 0.80M parameters without the position embeddings, as
nanoGPT reports. Initialisation as nanoGPT/GPT-2: N(0, 0.02) for linear and embedding weights, zero
biases, and N(0, 0.02/√(2·layers)) for the projections that end each residual branch (the
attention's out_proj and the MLP's linear2, nanoGPT's c_proj).
"""

from __future__ import annotations

import math
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from striate.checks import boolean, positive_int
from striate.errors import InputError
from striate.models.registry import check_dropout
from striate.sequence.attention import LearnedPositions, MultiHeadAttention, TransformerBlock

__all__ = ["TransformerLM"]


class TransformerLM(nn.Module):
    """Causal transformer over token ids: forward(x (B, T)) → (logits (B, T, V), None), T ≤ context.

    Follows the language-model protocol of `striate.sequence` (features, head, vocab_size,
    context, spec); it has no state, so `state` is ignored and None comes back. The head shares
    the token embedding's weight when `tied` (nanoGPT's weight tying; one tensor in the state
    dict, so safetensors files hold it once)."""

    def __init__(
        self,
        vocab_size: int,
        *,
        context: int = 64,
        layers: int = 4,
        heads: int = 4,
        embed: int = 128,
        dropout: float = 0.0,
        bias: bool = True,
        tied: bool = True,
    ) -> None:
        super().__init__()
        owner = "TransformerLM"
        self.vocab_size = positive_int(owner, "vocab_size", vocab_size)
        self.context = positive_int(owner, "context", context)
        self.layers = positive_int(owner, "layers", layers)
        heads = positive_int(owner, "heads", heads)
        embed = positive_int(owner, "embed", embed)
        dropout = check_dropout(dropout, owner)
        bias = boolean(owner, "bias", bias)
        self.tied = boolean(owner, "tied", tied)
        if embed % heads:
            raise InputError(
                f"{owner}: embed ({embed}) must be divisible by heads ({heads}); "
                "each head gets embed / heads dimensions"
            )
        self.spec: dict[str, Any] = {
            "name": "transformer_lm",
            "arguments": {
                "vocab_size": self.vocab_size,
                "context": self.context,
                "layers": self.layers,
                "heads": heads,
                "embed": embed,
                "dropout": dropout,
                "bias": bias,
                "tied": self.tied,
            },
        }
        self.token_embedding = nn.Embedding(self.vocab_size, embed)
        self.positions = LearnedPositions(self.context, embed)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(embed, heads, dropout=dropout, bias=bias, norm_first=True, causal=True)
            for _ in range(self.layers)
        )
        self.norm = nn.LayerNorm(embed, bias=bias)
        self.lm_head = None if self.tied else nn.Linear(embed, self.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation as nanoGPT writes it (see the module docstring)."""
        residual_std = 0.02 / math.sqrt(2 * self.layers)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, MultiHeadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                if module.in_proj_bias is not None:
                    nn.init.zeros_(module.in_proj_bias)
            elif isinstance(module, LearnedPositions):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        for block in self.blocks:
            nn.init.normal_(block.self_attn.out_proj.weight, std=residual_std)
            nn.init.normal_(block.linear2.weight, std=residual_std)

    def features(self, x: Tensor, state: Any = None) -> tuple[Tensor, None]:
        """The final LayerNorm's outputs (B, T, E) for token ids x (B, T), and None (no state)."""
        if x.dim() != 2:
            raise InputError(
                f"TransformerLM: the input must be token ids (batch, length), got shape "
                f"{tuple(x.shape)}"
            )
        if x.shape[1] > self.context:
            raise InputError(
                f"TransformerLM: the input is {x.shape[1]} tokens long, the model's context is "
                f"{self.context}; crop it to its last {self.context} tokens"
            )
        h = self.drop(self.positions(self.token_embedding(x)))
        for block in self.blocks:
            h = block(h)
        return self.norm(h), None

    def head(self, h: Tensor) -> Tensor:
        """Logits (…, V) of features (…, E)."""
        if self.lm_head is None:
            return F.linear(h, self.token_embedding.weight)
        return self.lm_head(h)

    def forward(self, x: Tensor, state: Any = None) -> tuple[Tensor, None]:
        h, _ = self.features(x)
        return self.head(h), None

    def extra_repr(self) -> str:
        a = self.spec["arguments"]
        return f"vocab_size={a['vocab_size']}, context={a['context']}, tied={a['tied']}"
