"""Attention from its formulas (Vaswani et al. 2017, "Attention is all you need"): scaled
dot-product attention, the causal mask, multi-head attention, positional encodings (sinusoidal and
learned) and the transformer block.

The course notes (../shared/reference/004_*.txt, "Attention Layer") are right that
e = q·x/√D_Q, but two places are wrong: with several queries they give Q the shape N_Q × D_X
and X the shape N_X × D_Q (swapped; E = QXᵀ needs both rows of one width, Q is N_Q × D_Q and X
is N_X × D_Q, so D_X = D_Q there), and their "transformer block" has no contents. The block is
taken from the paper (§3.1: a residual around multi-head self-attention and around a two-layer
position-wise MLP, each with layer normalisation) in the pre-LN form of GPT-2/nanoGPT
(x + Attn(LN(x)), x + MLP(LN(x))) by default, or the paper's post-LN (LN(x + Attn(x))).

Parameter names are torch's (`nn.MultiheadAttention`: in_proj_weight, in_proj_bias, out_proj;
`nn.TransformerEncoderLayer`: self_attn, linear1, linear2, norm1, norm2), so state dicts load
either way (`to_torch` / `from_torch`).

Masks follow `torch.nn.functional.scaled_dot_product_attention`: a bool mask is True where a query
may attend to a key; a float mask is added to the scores (−inf blocks). `nn.MultiheadAttention`
uses the opposite bool convention (True = blocked): invert a bool mask before handing it over.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from striate.checks import boolean, positive_int
from striate.errors import InputError
from striate.models.registry import check_dropout

__all__ = [
    "LearnedPositions",
    "MultiHeadAttention",
    "SinusoidalPositions",
    "TransformerBlock",
    "causal_mask",
    "scaled_dot_product_attention",
]


def causal_mask(
    n: int, m: int | None = None, *, device: str | torch.device | None = None
) -> Tensor:
    """Bool (n, m) mask, True where query i may attend to key j (j ≤ i): no look-ahead.

    With m ≠ n the triangle starts at the top-left corner, as torch's ``is_causal=True`` does."""
    m = n if m is None else m
    return torch.ones(n, m, dtype=torch.bool, device=device).tril()


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2] or q.dim() < 2:
        raise InputError(
            "scaled_dot_product_attention: q (…, N_q, d_k), k (…, N_k, d_k) and v (…, N_k, d_v) "
            f"must agree in d_k and N_k, got q {tuple(q.shape)}, k {tuple(k.shape)}, "
            f"v {tuple(v.shape)}; check which tensor is which"
        )


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    causal: bool = False,
    dropout: float = 0.0,
    training: bool = False,
    need_weights: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """softmax(QKᵀ/√d_k + mask)·V (Vaswani et al. 2017, eq. 1): (output (…, N_q, d_v), weights).

    The weights (…, N_q, N_k) are those applied to V (after dropout when training, as torch's
    `nn.MultiheadAttention` returns them). ``need_weights=False`` takes torch's fused kernel
    (`F.scaled_dot_product_attention`) and returns (output, None). A query whose keys are all
    masked gets NaN, as in torch."""
    _check_qkv(q, k, v)
    p = check_dropout(dropout, "scaled_dot_product_attention") if training else 0.0
    nq, nk = q.shape[-2], k.shape[-2]
    if causal and mask is not None:  # torch's kernel takes one or the other: fold them together
        mask = _as_additive(mask, q.dtype) + _as_additive(
            causal_mask(nq, nk, device=q.device), q.dtype
        )
        causal = False
    elif mask is not None and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)
    if not need_weights:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        return out, None
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        scores = scores.masked_fill(~causal_mask(nq, nk, device=q.device), float("-inf"))
    if mask is not None:
        scores = scores + _as_additive(mask, scores.dtype)
    weights = scores.softmax(dim=-1)
    if p > 0:
        weights = F.dropout(weights, p)
    return weights @ v, weights


def _as_additive(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """A bool mask (True = attend) as 0 / −inf; a float mask as it is."""
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            ~mask, float("-inf")
        )
    return mask.to(dtype)


class MultiHeadAttention(nn.Module):
    """H heads of scaled dot-product attention on learned projections, concatenated and projected
    (Vaswani et al. 2017, §3.2.2), batch-first: query (B, N_q, E), key/value (B, N_k, E).

    Parameters as `nn.MultiheadAttention(embed, heads, bias=bias, batch_first=True)`: the stacked
    Q, K, V projection ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E), and ``out_proj``."""

    def __init__(
        self,
        embed: int,
        heads: int,
        *,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        embed = positive_int("MultiHeadAttention", "embed", embed)
        heads = positive_int("MultiHeadAttention", "heads", heads)
        if embed % heads:
            raise InputError(
                f"MultiHeadAttention: embed ({embed}) must be divisible by heads ({heads}); "
                "each head gets embed / heads dimensions"
            )
        self.embed, self.heads = embed, heads
        self.dropout = check_dropout(dropout, "MultiHeadAttention")
        self.causal = boolean("MultiHeadAttention", "causal", causal)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed, embed))
        if boolean("MultiHeadAttention", "bias", bias):
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed, embed, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: Xavier-uniform in_proj_weight, zero biases."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor | None = None,
        value: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        need_weights: bool = False,
        average_weights: bool = True,
    ) -> tuple[Tensor, Tensor | None]:
        """(output (B, N_q, E), weights): (B, N_q, N_k) averaged over heads, or (B, H, N_q, N_k)
        with ``average_weights=False``; None unless ``need_weights`` (then the fused kernel runs).
        key defaults to query (self-attention), value to key."""
        key = query if key is None else key
        value = key if value is None else value
        if query.dim() != 3 or query.shape[-1] != self.embed:
            raise InputError(
                f"MultiHeadAttention: query must be (batch, length, {self.embed}), got "
                f"{tuple(query.shape)}"
            )
        b, nq, e = query.shape
        h, d = self.heads, e // self.heads
        if key is query and value is query:  # one matmul for the three projections
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        else:
            w = self.in_proj_weight.chunk(3)
            bs = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
            q, k, v = (
                F.linear(t, wi, bi) for t, wi, bi in zip((query, key, value), w, bs, strict=True)
            )
        q, k, v = (t.unflatten(-1, (h, d)).transpose(1, 2) for t in (q, k, v))  # (B, H, N, d)
        if mask is not None and mask.dim() == 3:  # (B, N_q, N_k): the same for every head
            mask = mask.unsqueeze(1)
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            mask=mask,
            causal=self.causal,
            dropout=self.dropout,
            training=self.training,
            need_weights=need_weights,
        )
        out = self.out_proj(out.transpose(1, 2).reshape(b, nq, e))
        if weights is not None and average_weights:
            weights = weights.mean(dim=1)
        return out, weights

    def to_torch(self) -> nn.MultiheadAttention:
        """The equal `nn.MultiheadAttention` (batch_first=True), weights copied."""
        layer = nn.MultiheadAttention(
            self.embed,
            self.heads,
            dropout=self.dropout,
            bias=self.in_proj_bias is not None,
            batch_first=True,
        )
        layer.load_state_dict(self.state_dict())
        return layer.to(self.in_proj_weight)

    @classmethod
    def from_torch(
        cls, layer: nn.MultiheadAttention, *, causal: bool = False
    ) -> MultiHeadAttention:
        """The equal MultiHeadAttention (batch-first whatever ``layer.batch_first`` says)."""
        if not layer._qkv_same_embed_dim or layer.bias_k is not None or layer.add_zero_attn:
            raise InputError(
                "MultiHeadAttention.from_torch: only layers with kdim = vdim = embed_dim, no "
                "add_bias_kv and no add_zero_attn can be converted"
            )
        mha = cls(
            layer.embed_dim,
            layer.num_heads,
            dropout=layer.dropout,
            bias=layer.in_proj_bias is not None,
            causal=causal,
        )
        mha.load_state_dict(layer.state_dict())
        return mha.to(layer.in_proj_weight)


class SinusoidalPositions(nn.Module):
    """Adds PE(pos, 2i) = sin(pos / base^(2i/E)), PE(pos, 2i+1) = cos(pos / base^(2i/E)) to
    (B, T, E) inputs (Vaswani et al. 2017, §3.5; base 10000). No parameters, any length."""

    def __init__(self, embed: int, *, base: float = 10000.0) -> None:
        super().__init__()
        self.embed = positive_int("SinusoidalPositions", "embed", embed)
        self.base = float(base)

    def encoding(self, positions: Tensor) -> Tensor:
        """The encodings (…, E) of integer positions (…), in float32."""
        i = torch.arange(self.embed, device=positions.device)
        # the pair of dimensions (2i, 2i+1) shares one rate
        inv = self.base ** (-(2 * (i // 2)).float() / self.embed)
        angle = positions.float().unsqueeze(-1) * inv
        return torch.where(i % 2 == 0, angle.sin(), angle.cos())

    def forward(self, x: Tensor) -> Tensor:
        positions = torch.arange(x.shape[-2], device=x.device)
        return x + self.encoding(positions).to(x.dtype)


class LearnedPositions(nn.Module):
    """Adds a learned vector per position (GPT-2's wpe): ``weight`` (context, E); inputs up to
    `context` long."""

    def __init__(self, context: int, embed: int) -> None:
        super().__init__()
        self.context = positive_int("LearnedPositions", "context", context)
        embed = positive_int("LearnedPositions", "embed", embed)
        self.weight = nn.Parameter(torch.empty(self.context, embed))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        t = x.shape[-2]
        if t > self.context:
            raise InputError(
                f"LearnedPositions: the input is {t} positions long, the model knows "
                f"{self.context}; crop the input to its last {self.context} tokens"
            )
        return x + self.weight[:t]


class TransformerBlock(nn.Module):
    """Self-attention and a position-wise MLP (E → 4E → E, GELU), each inside a residual with
    LayerNorm: pre-LN ``x + Attn(LN(x)); x + MLP(LN(x))`` (GPT-2, nanoGPT) by default, or the
    paper's post-LN ``LN(x + Attn(x)); LN(x + MLP(x))`` with ``norm_first=False``.

    Equal to ``nn.TransformerEncoderLayer(embed, heads, mlp_ratio·embed, dropout, "gelu",
    batch_first=True, norm_first=…)`` with the same state dict (dropout in the same places: on the
    attention weights, after each sublayer, and on the MLP's hidden layer)."""

    def __init__(
        self,
        embed: int,
        heads: int,
        *,
        mlp_ratio: int = 4,
        dropout: float = 0.0,
        bias: bool = True,
        norm_first: bool = True,
        causal: bool = False,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        dropout = check_dropout(dropout, "TransformerBlock")
        hidden = positive_int("TransformerBlock", "mlp_ratio", mlp_ratio) * embed
        self.norm_first = boolean("TransformerBlock", "norm_first", norm_first)
        self.self_attn = MultiHeadAttention(embed, heads, dropout=dropout, bias=bias, causal=causal)
        self.linear1 = nn.Linear(embed, hidden, bias=bias)
        self.linear2 = nn.Linear(hidden, embed, bias=bias)
        self.norm1 = nn.LayerNorm(embed, eps=eps, bias=bias)
        self.norm2 = nn.LayerNorm(embed, eps=eps, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        return self.dropout1(self.self_attn(x, mask=mask)[0])

    def _mlp(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(x)))))

    def forward(self, x: Tensor, *, mask: Tensor | None = None) -> Tensor:
        """(B, T, E) → (B, T, E); `mask` as in `scaled_dot_product_attention` (with `causal`)."""
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask)
            return x + self._mlp(self.norm2(x))
        x = self.norm1(x + self._attend(x, mask))
        return self.norm2(x + self._mlp(x))

    def to_torch(self) -> nn.TransformerEncoderLayer:
        """The equal `nn.TransformerEncoderLayer` (batch_first=True); pass it the causal mask
        yourself (torch's layer has no causal setting of its own)."""
        attn = self.self_attn
        layer = nn.TransformerEncoderLayer(
            attn.embed,
            attn.heads,
            dim_feedforward=self.linear1.out_features,
            dropout=self.dropout.p,
            activation="gelu",
            layer_norm_eps=self.norm1.eps,
            batch_first=True,
            norm_first=self.norm_first,
            bias=attn.in_proj_bias is not None,
        )
        layer.load_state_dict(self.state_dict())
        return layer.to(attn.in_proj_weight)

    @classmethod
    def from_torch(
        cls, layer: nn.TransformerEncoderLayer, *, causal: bool = False
    ) -> TransformerBlock:
        """The equal block of a GELU `nn.TransformerEncoderLayer` (batch-first whatever its
        ``batch_first`` says)."""
        if layer.activation_relu_or_gelu != 2:
            raise InputError(
                "TransformerBlock.from_torch: only layers with activation='gelu' can be converted"
            )
        embed, hidden = layer.linear1.in_features, layer.linear1.out_features
        if hidden % embed:
            raise InputError(
                f"TransformerBlock.from_torch: dim_feedforward ({hidden}) must be a multiple of "
                f"d_model ({embed})"
            )
        block = cls(
            embed,
            layer.self_attn.num_heads,
            mlp_ratio=hidden // embed,
            dropout=layer.dropout.p,
            bias=layer.linear1.bias is not None,
            norm_first=layer.norm_first,
            causal=causal,
            eps=layer.norm1.eps,
        )
        block.load_state_dict(layer.state_dict())
        return block.to(layer.linear1.weight)
