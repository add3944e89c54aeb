"""Sampling text from a language model: a prompt, then one token at a time with temperature and
top-k (Karpathy's min-char-rnn and nanoGPT's `generate`, for any model of the network protocol).

    sample(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=20, seed=1)

A recurrent model reads the prompt once and then carries its state, one token per step; a
transformer (``model.context`` an int) re-reads the last ``context`` tokens at every step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from striate.checks import number, positive_int
from striate.device import resolve_device
from striate.errors import InputError
from striate.sequence.corpus import Vocabulary

OWNER = "sample"


def start_tokens(vocab: Vocabulary) -> list[str]:
    """What an empty prompt starts from: a newline for characters, "<eos>" for words (the token
    that ends a verse or sentence, so the model begins as after one; "<unk>" in a vocabulary
    without it)."""
    if vocab.level == "char":
        if "\n" not in vocab.tokens:
            raise InputError(
                f"{OWNER}: an empty prompt starts from a newline, which this model's vocabulary "
                f"lacks; give a prompt"
            )
        return ["\n"]
    return ["<eos>" if "<eos>" in vocab.tokens else str(vocab.unknown)]


def choose_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The next token of each row of `logits` (B, V): argmax when `temperature` is 0 or
    `top_k` is 1, else a draw from softmax(logits / temperature) restricted to the `top_k`
    largest logits (ties at the k-th value kept, as nanoGPT). Drawn on the CPU, so a seed gives
    the same text on every device."""
    logits = logits.detach().float().cpu()
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample(
    model: nn.Module,
    vocab: Vocabulary,
    prompt: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> str:
    """`prompt` followed by `length` sampled tokens (see `choose_next`); an empty prompt starts
    from `start_tokens` and returns the sampled text alone. Characters outside the vocabulary
    raise the Vocabulary's InputError. The model is moved to `device` and left in the mode it
    was in."""
    positive_int(OWNER, "length", length, error=InputError)
    number(OWNER, "temperature", temperature, low=0.0, error=InputError, hint="0 is greedy")
    positive_int(OWNER, "top_k", top_k, allow_none=True, error=InputError)
    if not isinstance(prompt, str):
        raise InputError(f"{OWNER}: prompt must be text, got {type(prompt).__name__}")
    ids = vocab.encode(prompt, name="prompt") if prompt else vocab.encode(start_tokens(vocab))
    if len(ids) == 0:  # e.g. a word-level prompt of spaces only
        ids = vocab.encode(start_tokens(vocab))
    dev = resolve_device(device)
    context = getattr(model, "context", None)
    generator = torch.Generator().manual_seed(int(seed))
    was_training = model.training
    model.to(dev).eval()
    try:
        tokens = ids.to(dev).reshape(1, -1)
        x = tokens if context is None else tokens[:, -context:]
        logits, state = model(x)
        new: list[int] = []
        for i in range(length):
            token = choose_next(
                logits[:, -1], temperature=temperature, top_k=top_k, generator=generator
            )
            new.append(int(token))
            if i == length - 1:
                break
            step = token.reshape(1, 1).to(dev)
            if context is None:
                logits, state = model(step, state)
            else:
                tokens = torch.cat([tokens, step], 1)[:, -context:]
                logits, _ = model(tokens)
    finally:
        model.train(was_training)
    text = vocab.decode(new)
    if not prompt:
        return text
    return prompt + ("" if vocab.level == "char" else " ") + text
