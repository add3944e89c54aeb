"""Language modelling as a Task: predict every next token of a `StreamLoader`'s chunks.

    Trainer(task=LanguageModel(), precision="fp32", opt="adam", lr=2e-3, epochs=1).fit(
        RecurrentLM(65), StreamLoader(corpus.train, 32, 64), StreamLoader(corpus.val, 32, 64,
        shuffle=False))

A batch is `(x, y, first)` and the model returns `(logits, state)` (the language-model network
protocol of `striate.sequence`). The loss is the mean cross-entropy in nats per target token. A
recurrent model's state is carried from one chunk to the next and detached between them
(truncated BPTT), and reset to None on the first chunk of an epoch; the transformer's state is
None throughout. Evaluation carries a state of its own the same way, so validation never touches
the training state, which the task's `state_dict` keeps for an exact resume.

Metrics: loss (nats per token), perplexity = exp(loss), bits_per_token = loss / ln 2 (bits per
character for a character model).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from striate.engine.task import TASKS, Batch, Evaluation, Step, Task, stack_stats
from striate.errors import ConfigError

State = Any  # None, a tensor, or a tuple of tensors (an LSTM's (h, c))


def detach_state(state: State, device: torch.device | None = None) -> State:
    """`state` cut from the graph of the chunk that made it (and moved to `device`)."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        state = state.detach()
        return state if device is None else state.to(device)
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s, device) for s in state)
    raise ConfigError(
        f"LanguageModel: a model's state must be None, a tensor or a tuple of tensors, got "
        f"{type(state).__name__}"
    )


def token_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token, in fp32) of logits (B, T, V) against targets (B, T)."""
    if logits.dim() != 3 or logits.shape[:2] != y.shape:
        raise ConfigError(
            f"LanguageModel: the model must return logits (B, T, V) for inputs {tuple(y.shape)}, "
            f"got {tuple(logits.shape)}"
        )
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


class LanguageModel(Task):
    """Next-token prediction with the state carried across chunks; see the module docstring."""

    name = "language_model"
    running_stats = ("loss_sum", "tokens")
    metrics = ("loss", "perplexity", "bits_per_token")
    monitor = "val_loss"

    def __init__(self) -> None:
        self.state: State = None

    def setup(self, model: nn.Module, trainer: Any) -> None:
        """A fresh state; a ConfigError when the loader's chunks are longer than the model's
        context (a transformer reads at most `context` tokens)."""
        self.state = None
        context = getattr(model, "context", None)
        length = getattr(trainer.train_loader, "length", None)
        if context is not None and length is not None and length > context:
            raise ConfigError(
                f"LanguageModel: the loader's chunks are {length} tokens long, the model reads at "
                f"most {context} (its context); use a sequence length <= {context}"
            )

    def size(self, batch: Batch) -> int:
        return batch[1].numel()

    def step(self, model: nn.Module, batch: Batch, state: State) -> tuple[torch.Tensor, State]:
        """The mean loss of a chunk from `state` (None on an epoch's first chunk) and the
        detached state after it."""
        x, y, first = batch
        if bool(first):
            state = None
        logits, state = model(x, detach_state(state, x.device))
        return token_loss(logits, y), detach_state(state)

    def training_step(self, model: nn.Module, batch: Batch) -> Step:
        loss, self.state = self.step(model, batch, self.state)
        n = batch[1].numel()
        return Step(loss, stack_stats(loss.detach() * n, n))

    def summarize(self, sums: torch.Tensor) -> dict[str, float]:
        loss_sum, n = sums.tolist()
        loss = loss_sum / max(n, 1)
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 700.0)),
            "bits_per_token": loss / math.log(2),
        }

    def evaluation(self, **options: Any) -> Evaluation:
        return LanguageModelEvaluation(self)

    def predict(self, model: nn.Module, x: torch.Tensor, **options: Any) -> torch.Tensor:
        """Next-token probabilities (B, T, V) of a batch of token sequences, from a fresh state."""
        logits, _ = model(x)
        return logits.float().softmax(-1)

    def state_dict(self) -> dict[str, Any]:
        return {"state": detach_state(self.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state.get("state")


class LanguageModelEvaluation(Evaluation):
    """Summed loss and token count over a stream, carrying its own model state from chunk to
    chunk (reset on each epoch's first chunk)."""

    def __init__(self, task: LanguageModel) -> None:
        super().__init__(task)
        self.state: State = None

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Batch) -> None:
        loss, self.state = self.task.step(model, batch, self.state)
        n = batch[1].numel()
        stats = stack_stats(loss * n, n).double()
        self.sums = stats if self.sums is None else self.sums + stats


TASKS.add("language_model", LanguageModel)
