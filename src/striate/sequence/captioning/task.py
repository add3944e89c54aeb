"""Image captioning as a Task: teacher-forced cross-entropy over caption tokens with the doubly
stochastic attention regulariser; evaluation by corpus BLEU of decoded captions.

    Trainer(epochs=10, task=Captioning(), opt="adam", lr=2e-3).fit(ShowAttendTell(20), train, val)

A batch is `(images, captions, lengths)` as `CaptionLoader` yields: images (B, 3, H, W), the
references (B, R, T) `<start> … <end> <pad>…` and their lengths (B, R), 0 for a missing one.
Every reference of an image is a training caption (the image is encoded once). The model is
given tokens 0…T−2 and scored on tokens 1…T−1; `<pad>` targets count nowhere (Xu et al. 2015,
eq. 14, per caption):

    loss = (Σ_captions [ −Σ_t log p(y_t) + λ Σ_i (1 − Σ_t α_ti)² ]) / (tokens scored)

where t runs over the scored steps of the caption and i over the L locations. λ (`regularizer`)
is 0 by default: the paper's λ = 1 spread the attention over the background on the scenes,
whose ~10 words cannot cover 64 locations (`striate.sequence.captioning.run` has the numbers).
Training reports the running cross-entropy per token ("loss", in nats, without the regulariser)
and the token accuracy; evaluation adds BLEU-1…4 of greedy (or `beam` search) captions against
all references (`striate.sequence.captioning.bleu`). `val_bleu4` is the metric
whose best weights the Checkpoint callback keeps.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.checks import integer, number, positive_int
from striate.engine import distributed
from striate.engine.task import TASKS, Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError
from striate.sequence.captioning.bleu import BleuCounts
from striate.sequence.captioning.decoding import Decoded, decode


class Captioning(Task):
    """Teacher forcing with the attention regulariser; BLEU of decoded captions; see the
    module docstring."""

    name = "captioning"
    running_stats = ("loss", "acc", "tokens")
    metrics = ("loss", "acc", "bleu1", "bleu2", "bleu3", "bleu4")
    monitor = "val_bleu4"

    def __init__(
        self,
        *,
        pad: int = 0,
        start: int = 1,
        end: int = 2,
        regularizer: float = 0.0,
        beam: int = 1,
        max_length: int = 12,
        length_norm: float = 0.0,
    ) -> None:
        owner = "Captioning"
        self.pad = integer(owner, "pad", pad, low=0)
        self.start = integer(owner, "start", start, low=0)
        self.end = integer(owner, "end", end, low=0)
        self.regularizer = number(owner, "regularizer", regularizer, low=0)
        self.beam = positive_int(owner, "beam", beam)
        self.max_length = positive_int(owner, "max_length", max_length)
        self.length_norm = number(owner, "length_norm", length_norm, low=0)

    def _check(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(batch) < 3:
            raise ConfigError(
                "Captioning: a batch is (images, captions, lengths) as CaptionLoader yields, "
                f"got {len(batch)} tensors"
            )
        x, captions, lengths = batch[:3]
        if captions.dim() == 2:
            captions, lengths = captions[:, None], lengths.reshape(-1, 1)
        if captions.dim() != 3 or captions.shape[:2] != lengths.shape or len(x) != len(captions):
            raise ConfigError(
                f"Captioning: captions must be B×R×T with lengths B×R for {len(x)} images, got "
                f"{tuple(captions.shape)} and {tuple(lengths.shape)}"
            )
        return x, captions, lengths

    def losses(
        self, model: nn.Module, batch: Batch
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The summed cross-entropy, the summed regulariser, correct tokens and scored tokens of
        a batch (teacher forcing)."""
        x, captions, _ = self._check(batch)
        logits, alphas = model(x, captions[..., :-1])
        targets = captions[..., 1:]
        scored = targets != self.pad  # (B, R, T−1)
        ce = F.cross_entropy(
            logits.flatten(0, -2).float(), targets.flatten(), ignore_index=self.pad, reduction="sum"
        )
        attention = (alphas.float() * scored[..., None]).sum(2)  # Σ_t α_ti over scored steps
        present = scored.any(2)  # (B, R): the references that exist
        reg = (((1 - attention) ** 2).sum(2) * present).sum()
        correct = ((logits.detach().argmax(-1) == targets) & scored).sum()
        return ce, reg, correct, scored.sum()

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        ce, reg, correct, tokens = self.losses(model, batch)
        n = tokens.clamp(min=1)
        loss = (ce + self.regularizer * reg) / n
        return Step(loss, stack_stats(ce.detach(), correct, tokens))

    def evaluation(self, **options: Any) -> Evaluation:
        return CaptioningEvaluation(self, **options)

    def evaluation_label(self, **options: Any) -> str:
        beam = options.get("beam", self.beam)
        return "captioning (greedy)" if beam == 1 else f"captioning (beam {beam})"

    def decode(self, model: nn.Module, x: torch.Tensor, **options: Any) -> Decoded:
        """Captions of images `x` by greedy decoding or beam search (options: beam,
        max_length, length_norm; the task's by default)."""
        settings = {
            "beam": self.beam,
            "max_length": self.max_length,
            "length_norm": self.length_norm,
            **options,
        }
        return decode(model, x, start=self.start, end=self.end, pad=self.pad, **settings)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """Decoded token ids (B, T) after `<start>`, `<end>` included where reached."""
        return self.decode(model, x, **options).tokens

    def words(self, tokens: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Decoded captions as lists of token ids without `<end>` and padding."""
        out = []
        for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True):
            row = row[:n]
            out.append(row[:-1] if row and row[-1] == self.end else row)
        return out

    def references(self, captions: torch.Tensor, lengths: torch.Tensor) -> list[list[list[int]]]:
        """Each image's references as lists of token ids without `<start>`, `<end>`, padding."""
        return [
            [c[1 : n - 1] for c, n in zip(caps, ns, strict=True) if n > 0]
            for caps, ns in zip(captions.tolist(), lengths.tolist(), strict=True)
        ]


class CaptioningEvaluation(Evaluation):
    """Teacher-forced cross-entropy and token accuracy, and BLEU counts of the decoded captions
    (`options`: beam, max_length, length_norm)."""

    def __init__(self, task: Captioning, **options: Any) -> None:
        super().__init__(task, **options)
        self.bleu = BleuCounts(4)
        self.hypotheses: list[list[int]] = []

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        task: Captioning = self.task  # type: ignore[assignment]
        x, captions, lengths = task._check(batch)
        ce, _, correct, tokens = task.losses(model, batch)
        stats = stack_stats(ce, correct, tokens).double()
        self.sums = stats if self.sums is None else self.sums + stats
        out = task.decode(model, x, **self.options)
        hyps = task.words(out.tokens, out.lengths)
        for hyp, refs in zip(hyps, task.references(captions, lengths), strict=True):
            self.bleu.add(hyp, refs)
        self.hypotheses.extend(hyps)

    def reduce(self) -> None:
        super().reduce()
        if distributed.is_distributed():
            counts = torch.tensor(self.bleu.as_list(), dtype=torch.float64)
            device = self.sums.device if self.sums is not None else counts.device
            counts = counts.to(device)
            distributed.all_reduce_sum(counts)
            self.bleu = BleuCounts.from_list(counts.tolist())

    def compute(self) -> dict[str, float]:
        if self.sums is None:
            return {}
        ce, correct, tokens = self.sums.tolist()
        n = max(tokens, 1)
        return {"loss": ce / n, "acc": correct / n, **self.bleu.scores()}


TASKS.add("captioning", Captioning)
