"""Show, Attend and Tell (Xu et al. 2015, soft attention): a CNN encoder gives L annotation
vectors a_i (one per location of its last feature map, D numbers each); an LSTM decoder, started
from the mean annotation, attends to them at every word.

    net = ShowAttendTell(vocab_size=20)
    logits, alphas = net(images, tokens)   # teacher forcing: (B, T, V), (B, T, L)
    state = net.begin(images); logits, state, alpha = net.step(y_prev, state)   # decoding

The equations (section 3.1.2 and 4.2 of the paper), h the LSTM's hidden state:
    h_0, c_0 = tanh(f_init,h(ā)), tanh(f_init,c(ā)),  ā = (1/L) Σ_i a_i
    e_ti = w · tanh(W_a a_i + W_h h_{t−1} + b)         α_t = softmax_i(e_ti)
    ẑ_t = β_t Σ_i α_ti a_i,  β_t = σ(f_β(h_{t−1}))    (the gating scalar)
    h_t, c_t = LSTM([E y_{t−1}, ẑ_t], (h_{t−1}, c_{t−1}))
    p(y_t) ∝ exp(L_o(E y_{t−1} + L_h h_t + L_z ẑ_t))   (the deep output layer)
The lecture's slides (lecture 10) simplify this: there the attention over locations is a second
output of the RNN next to the word scores (h_t → a_t, d_t; z = Σ p_i v_i), without the gating
scalar, the deep output or the doubly stochastic regulariser (`Captioning` adds it to the loss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from striate.checks import integer, positive_int, probability

State = tuple[torch.Tensor, ...]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SceneEncoder(nn.Module):
    """A small CNN: a 64×64 image → an 8×8×D feature map, read as L = 64 annotation vectors
    (B, L, D). Inputs are floats in [0, 1] (centred here, so a run folder needs no normaliser)."""

    def __init__(self, features: int = 128, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv(3, width, 2),  # 32×32
            _conv(width, 2 * width),
            nn.MaxPool2d(2),  # 16×16
            _conv(2 * width, 2 * width),
            nn.MaxPool2d(2),  # 8×8
            _conv(2 * width, features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body((x - 0.5) / 0.25)
        return f.flatten(2).transpose(1, 2)  # (B, L, D), locations in raster order


class ShowAttendTell(nn.Module):
    """The encoder and the attention LSTM decoder; see the module docstring. `grid` is the
    side of the encoder's feature map (L = grid²) for a `image_size` input."""

    def __init__(
        self,
        vocab_size: int,
        *,
        image_size: int = 64,
        features: int = 128,
        width: int = 32,
        embed: int = 64,
        hidden: int = 256,
        attention: int = 128,
        dropout: float = 0.0,
        gate: bool = True,
    ) -> None:
        super().__init__()
        owner = "ShowAttendTell"
        positive_int(owner, "vocab_size", vocab_size)
        integer(owner, "image_size", image_size, low=8)
        for name, v in (("features", features), ("width", width), ("embed", embed)):
            positive_int(owner, name, v)
        positive_int(owner, "hidden", hidden)
        positive_int(owner, "attention", attention)
        probability(owner, "dropout", dropout, high_open=True)
        self.vocab_size, self.image_size, self.gate = vocab_size, image_size, bool(gate)
        self.spec: dict[str, Any] = {
            "name": "show_attend_tell",
            "arguments": {
                "vocab_size": vocab_size,
                "image_size": image_size,
                "features": features,
                "width": width,
                "embed": embed,
                "hidden": hidden,
                "attention": attention,
                "dropout": dropout,
                "gate": bool(gate),
            },
        }
        self.grid = image_size // 8
        self.encoder = SceneEncoder(features, width)
        self.init_h = nn.Linear(features, hidden)
        self.init_c = nn.Linear(features, hidden)
        self.att_a = nn.Linear(features, attention, bias=False)  # W_a
        self.att_h = nn.Linear(hidden, attention)  # W_h (and b)
        self.att_w = nn.Linear(attention, 1, bias=False)  # w
        self.f_beta = nn.Linear(hidden, 1)
        self.embedding = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTMCell(embed + features, hidden)
        self.out_h = nn.Linear(hidden, embed)  # L_h
        self.out_z = nn.Linear(features, embed, bias=False)  # L_z
        self.out = nn.Linear(embed, vocab_size)  # L_o
        self.drop = nn.Dropout(dropout)

    # ------------------------------------------------------------------ pieces

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Annotation vectors (B, L, D) of images (B, 3, H, W) in [0, 1]."""
        return self.encoder(x)

    def begin(self, x: torch.Tensor | None = None, *, a: torch.Tensor | None = None) -> State:
        """The decoder's state before the first word: (h, c, a, W_a a), from images `x` or
        their annotations `a`. Every tensor is batch-first, so beams reorder it by index."""
        a = self.encode(x) if a is None else a
        mean = a.mean(1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        return h, c, a, self.att_a(a)

    def attend(self, h: torch.Tensor, a: torch.Tensor, a_proj: torch.Tensor):
        """α (B, L) over the locations and the context ẑ (B, D) for the previous state `h`."""
        e = self.att_w(torch.tanh(a_proj + self.att_h(h)[:, None])).squeeze(2)
        alpha = e.softmax(1)
        z = torch.bmm(alpha[:, None], a).squeeze(1)
        if self.gate:
            z = torch.sigmoid(self.f_beta(h)) * z
        return alpha, z

    def step(self, y_prev: torch.Tensor, state: State) -> tuple[torch.Tensor, State, torch.Tensor]:
        """One word: the logits (B, V) of y_t given y_{t−1} (B,), the new state, and α_t (B, L)."""
        h, c, a, a_proj = state
        alpha, z = self.attend(h, a, a_proj)
        emb = self.embedding(y_prev)
        h, c = self.lstm(torch.cat([emb, z], 1), (h, c))
        logits = self.out(self.drop(emb + self.out_h(self.drop(h)) + self.out_z(z)))
        return logits, (h, c, a, a_proj), alpha

    # ------------------------------------------------------------------ teacher forcing

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: the logits of each next token and the attention of each step.

        `tokens` (B, T) or (B, R, T), R captions of each image (the image is encoded once):
        returns logits (…, T, V) and α (…, T, L) where token t is the input y_{t−1} of step t."""
        many = tokens.dim() == 3
        a = self.encode(x)
        if many:
            a = a.repeat_interleave(tokens.shape[1], 0)
            tokens = tokens.flatten(0, 1)
        state = self.begin(a=a)
        logits, alphas = [], []
        for t in range(tokens.shape[1]):  # a loop over time steps: inherent to the decoder
            out, state, alpha = self.step(tokens[:, t], state)
            logits.append(out)
            alphas.append(alpha)
        logits_t, alphas_t = torch.stack(logits, 1), torch.stack(alphas, 1)
        if many:
            b = x.shape[0]
            return logits_t.unflatten(0, (b, -1)), alphas_t.unflatten(0, (b, -1))
        return logits_t, alphas_t


def build_captioner(spec: dict[str, Any]) -> ShowAttendTell:
    """The network a model.json's "architecture" describes."""
    if spec.get("name") != "show_attend_tell":
        raise ValueError(f"architecture {spec.get('name')!r}, expected 'show_attend_tell'")
    return ShowAttendTell(**spec["arguments"])
