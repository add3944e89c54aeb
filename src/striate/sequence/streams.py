"""Truncated backpropagation through time: a token stream cut into parallel streams and chunks.

    loader = StreamLoader(corpus.train, batch_size=32, length=64)
    for x, y, first in loader:   # x, y (32, 64) int64; y is x one token on; first: reset state

The stream is cut once into `batch_size` contiguous streams (row j of a (batch_size, n) view, as
PyTorch's word_language_model `batchify`), and batch k of an epoch is columns [k·length,
(k+1)·length) of every row: each row continues where it stopped, so a recurrent model carries
its hidden state from one batch to the next and detaches it between them (Williams & Peng 1990;
the lecture's "carry hidden states forward in time forever, but only backpropagate for some
smaller number of steps"). Training (`shuffle=True`) starts each epoch at a seeded offset in
[0, length), so the chunk boundaries move between epochs, and keeps whole chunks only; evaluation
(`shuffle=False`) starts at 0 and ends with a shorter chunk. A row's last target is the next
row's first input, so the targets of an epoch are one contiguous run of the stream: in
evaluation every token but the first and the last (n − 1) mod batch_size is scored once (each
row starts from a fresh state: batch_size 1 scores everything with the full context).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from striate.checks import boolean, integer, positive_int
from striate.data.loader import ResumableEpochs
from striate.device import resolve_device
from striate.errors import DataError, InputError

StreamBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class StreamLoader(ResumableEpochs):
    """`batch_size` parallel contiguous streams of `tokens`, yielded `length` tokens at a time as
    (x, y, first); see the module docstring. Resumable in the middle of an epoch."""

    def __init__(
        self,
        tokens: torch.Tensor,
        batch_size: int,
        length: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        owner = "StreamLoader"
        self.batch_size = positive_int(owner, "batch_size", batch_size)
        self.length = positive_int(owner, "length", length, hint="tokens per chunk")
        self.shuffle = boolean(owner, "shuffle", shuffle)
        self.seed = integer(owner, "seed", seed)
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 1 or tokens.dtype != torch.int64:
            raise InputError(
                f"{owner}: tokens must be a 1-D int64 tensor (a corpus split), got "
                f"{tokens.dtype} of shape {tuple(tokens.shape)}"
            )
        self.tokens, self.device = tokens, resolve_device(device)
        self.epoch = 0
        # targets a row can score: all tokens after the largest offset, but one (the first x)
        usable = len(tokens) - 1 - (self.length - 1 if self.shuffle else 0)
        self.row = usable // self.batch_size  # inputs per row
        if self.row < self.length:
            need = self.batch_size * self.length + 1 + (self.length - 1 if self.shuffle else 0)
            raise DataError(
                f"{owner}: {len(tokens):,} tokens are too few for {self.batch_size} streams of "
                f"chunks of {self.length} (sequence length {self.length} × batch {self.batch_size}"
                f" needs at least {need:,} tokens); use a shorter length, a smaller batch or a "
                f"longer text"
            )
        if self.shuffle:  # whole chunks only
            self.row -= self.row % self.length
        self._tokens = tokens.to(self.device)

    def __len__(self) -> int:
        return -(-self.row // self.length)

    def offset(self, epoch: int) -> int:
        """Where epoch `epoch`'s rows start in the stream (0 without shuffling)."""
        if not self.shuffle:
            return 0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return int(torch.randint(self.length, (1,), generator=g))

    def __iter__(self) -> Iterator[StreamBatch]:
        g = self._generator()
        start = self.offset(self.epoch)
        done = 0
        if self._resume is not None:
            done, rng = self._resume
            g.set_state(rng)
            self._resume = None
        self.epoch += 1
        b, n = self.batch_size, self.row
        rows = self._tokens[start : start + b * n + 1]
        x_all = rows[: b * n].view(b, n)
        # row j's targets: the next token, which for the last input is the next row's first
        y_all = rows[1 : b * n + 1].view(b, n)
        for k in range(done, len(self)):
            cut = slice(k * self.length, min((k + 1) * self.length, n))
            first = torch.tensor(k == 0)
            self._position = (k + 1, g) if k + 1 < len(self) else None
            yield x_all[:, cut], y_all[:, cut], first
        self._position = None

    def __repr__(self) -> str:
        return (
            f"StreamLoader({len(self.tokens):,} tokens, {self.batch_size} streams × "
            f"{self.row:,}, length {self.length}, {len(self)} chunks, shuffle={self.shuffle})"
        )
