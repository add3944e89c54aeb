"""Character language models on tiny-shakespeare against nanoGPT's published CPU configuration.

    python benchmarks/char_lm.py                          # all three (~18 min on one thread)
    python benchmarks/char_lm.py --models transformer     # one of them
    python benchmarks/char_lm.py --quick                  # a smoke test; records nothing
    python benchmarks/char_lm.py --table-only             # the table from the record

nanoGPT's README ("I only have a macbook") trains `config/train_shakespeare_char.py` on the CPU
with ``--device=cpu --compile=False --eval_iters=20 --log_interval=1 --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0`` and reports "a loss of only 1.88" in "about ~3 minutes"; the rest comes from the
config file and train.py's defaults: AdamW lr 1e-3, β2 0.99, weight decay 0.1 on the matrices and
embeddings, 100 warm-up iterations, cosine decay to 1e-4 at iteration 2,000, gradient clipping at
norm 1.0, no biases (bias=False), the head tied to the token embedding.

Here `striate.sequence.run.train_language_model` trains (a) the same transformer
(`TransformerLM(65, context=64, layers=4, heads=4, embed=128, bias=False)`, 0.80M parameters
without the position table, as nanoGPT counts) with exactly those settings, and (b) a char-LSTM of
similar size and time per step (2 layers of 256, embedding 128: 0.95M parameters) with the same
schedule at twice the learning rate (2e-3 → 2e-4: char-rnn's rate), and (c) the transformer of (a)
again through the same Trainer, model, optimiser and schedule, but with each batch drawn as
nanoGPT's get_batch draws it (12 windows at random offsets) instead of the contiguous streams.
All on nanoGPT's split (the first 90% of characters train, the last 10% validate), fp32, one
torch thread, `nice -n 5`.

What differs from nanoGPT's number: its "loss 1.88" is `estimate_loss` on 20 random batches of
12 × 64 validation characters (noisy, ±0.02 or so); here the validation loss is the mean over
the whole validation split (111,540 characters) in chunks of 64 (the same context lengths 1…64
a random block gives a transformer; the LSTM carries its state between chunks). nanoGPT draws
random blocks for every batch; here the training text is cut into 12 contiguous streams whose
chunk boundaries move each epoch (2,000 steps are 1.5 epochs). Its 3 minutes were on a MacBook
(CPU unstated, PyTorch's default threads); the times here are one thread of the machine named in
the record, which other jobs were sharing.

Each model appends one JSON line to results/char_lm.jsonl as soon as it is done (with a sample)
and rewrites the ``char_lm`` table of BENCHMARKS.md; the samples at temperatures 0.5/0.8/1.0 go
to results/char_lm_<model>_samples.txt.
"""

from __future__ import annotations

import argparse
import datetime
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    print_machine,
    print_table,
    read_record,
    row,
    shared_data,
    write_table,
)
from striate._atomic import atomic_write
from striate.engine import Trainer
from striate.engine.callbacks import GradientClipping
from striate.engine.optim import make_optimizer
from striate.sequence.language_model import LanguageModel
from striate.sequence.run import TextConfig, build_model, read_corpus, stream, train_language_model
from striate.sequence.sampling import sample

RECORD = RESULTS / "char_lm.jsonl"
NANOGPT = {"val_loss": 1.88, "minutes": 3, "source": "nanoGPT README, CPU (MacBook) run"}
COMMON = dict(
    length=64, batch_size=12, steps=2000, opt="adamw", beta2=0.99, weight_decay=0.1, warmup=100,
    clip=1.0, dropout=0.0, precision="fp32", device="cpu", seed=0,
)  # fmt: skip
TRANSFORMER = dict(
    model="transformer", layers=4, heads=4, embed=128, lr=1e-3, min_lr=1e-4,
    model_options={"bias": False},
)  # fmt: skip
MODELS = {
    "transformer": TRANSFORMER,
    # the same, each batch drawn as nanoGPT's get_batch draws it (random windows)
    "transformer-blocks": TRANSFORMER,
    "lstm": dict(model="lstm", layers=2, embed=128, hidden=256, lr=2e-3, min_lr=2e-4),
}


class RandomBlocks:
    """nanoGPT's get_batch: every batch `batch_size` windows of `length` + 1 tokens at seeded
    random offsets of the training stream (no carried state: `first` is always True)."""

    def __init__(self, tokens: torch.Tensor, batch_size: int, length: int, steps: int) -> None:
        self.tokens, self.batch_size, self.length, self.steps = tokens, batch_size, length, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        g = torch.Generator().manual_seed(0)
        window = torch.arange(self.length)
        for _ in range(self.steps):
            ix = torch.randint(len(self.tokens) - self.length, (self.batch_size, 1), generator=g)
            yield self.tokens[ix + window], self.tokens[ix + window + 1], torch.tensor(True)


def train_on_blocks(settings: dict) -> SimpleNamespace:
    """The transformer of `settings` trained as train_language_model trains it (same model,
    optimiser, schedule, clipping, Trainer) but on RandomBlocks; scored on the whole validation
    split in chunks, as the others."""
    config = TextConfig(corpus="tinyshakespeare", root=str(shared_data() / "text"), **settings)
    data = read_corpus(config)
    torch.manual_seed(config.seed)
    model = build_model(config, len(data.vocab))
    optimizer = make_optimizer(
        "adamw", model, config.lr, config.weight_decay, betas=(0.9, config.beta2)
    )
    trainer = Trainer(
        steps=config.steps,
        task=LanguageModel(),
        opt=optimizer,
        lr=config.lr,
        schedule="cosine",
        schedule_options={"warmup": config.warmup / config.steps, "min_factor": 0.1},
        precision="fp32",
        device="cpu",
        seed=config.seed,
        tensorboard=False,
        callbacks=[GradientClipping(max_norm=config.clip)],
    )
    blocks = RandomBlocks(data.train, config.batch_size, config.length, config.steps)
    trainer.fit(model, blocks)
    val = trainer.evaluate(model, stream(data.val, config, "cpu"))
    samples = {
        t: sample(model, data.vocab, "", 500, temperature=t, seed=config.seed)
        for t in (0.5, 0.8, 1.0)
    }
    return SimpleNamespace(model=model, trainer=trainer, val=val, samples=samples)


def run_model(name: str, steps: int, out: Path) -> dict:
    settings = {**COMMON, **MODELS[name], "steps": steps}
    if steps < 200:
        settings["warmup"] = steps // 10
    t0 = time.perf_counter()
    if name == "transformer-blocks":
        result = train_on_blocks(settings)
    else:
        result = train_language_model(
            "tinyshakespeare", root=str(shared_data() / "text"), out=out, **settings
        )
    wall = time.perf_counter() - t0
    trainer = result.trainer
    train_s = sum(h.get("time", 0.0) for h in trainer.history)
    tokens = trainer.step * settings["batch_size"] * settings["length"]
    params = sum(p.numel() for p in result.model.parameters())
    if name.startswith("transformer"):  # nanoGPT's count leaves out the position table
        params -= result.model.positions.weight.numel()
    samples = "".join(f"--- temperature {t} ---\n{s}\n\n" for t, s in result.samples.items())
    return {
        "model": name,
        "settings": {k: v for k, v in settings.items() if k not in ("device", "precision")},
        "parameters": params,
        "steps": trainer.step,
        "tokens": tokens,
        "val_loss": result.val["loss"],
        "val_bits_per_char": result.val["bits_per_token"],
        "train_loss_last_epoch": trainer.history[-1].get("train_loss"),
        "train_s": train_s,
        "wall_s": wall,
        "tokens_per_s": tokens / train_s if train_s > 0 else math.nan,
        "sample": result.samples[0.8][:400],
        "samples": samples,
        "nanogpt_val_loss": NANOGPT["val_loss"],
        "device": cpu_name(torch.get_num_threads()),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def table(entries: list[dict]) -> str:
    """The markdown table of the record: the latest run of each model, then nanoGPT's."""
    latest = {e["model"]: e for e in entries}
    lines = [
        "| model | parameters | steps × batch × context | val loss (nats/char) | bits/char "
        "| training time | tokens/s | device | date |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    labels = {
        "transformer": "striate TransformerLM (nanoGPT CPU config)",
        "transformer-blocks": "the same, on nanoGPT's random blocks (get_batch)",
        "lstm": "striate char-LSTM (2 × 256, lr 2e-3)",
    }
    for name in MODELS:
        if name not in latest:
            continue
        e = latest[name]
        s = e["settings"]
        lines.append(
            f"| {labels[name]} | {e['parameters'] / 1e6:.2f}M | {e['steps']:,} × "
            f"{s['batch_size']} × {s['length']} | **{e['val_loss']:.3f}** | "
            f"{e['val_bits_per_char']:.3f} | {e['train_s'] / 60:.1f} min | "
            f"{e['tokens_per_s']:,.0f} | {e['device']} | {e['date']} |"
        )
    lines.append(
        f"| nanoGPT, published (README) | 0.80M | 2,000 × 12 × 64 | {NANOGPT['val_loss']} "
        f"| {NANOGPT['val_loss'] / math.log(2):.3f} | ~{NANOGPT['minutes']} min | "
        f"~{2000 * 12 * 64 / (NANOGPT['minutes'] * 60):,.0f} | a MacBook CPU | — |"
    )
    return "\n".join(lines)


def rows(entries: list[dict]) -> list[dict]:
    out = []
    for e in entries:
        section = f"tiny-shakespeare char, {e['model']}"
        out += [
            row(section, "validation loss", e["val_loss"], "loss", "nanoGPT published 1.88"),
            row(section, "training time", e["train_s"], "s", "nanoGPT ~180 s on a MacBook"),
            row(section, "training tokens/s", e["tokens_per_s"], "tokens/s"),
        ]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--steps", type=int, default=2000, help="optimiser steps (nanoGPT: 2000)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="20 steps; records nothing")
    parser.add_argument("--record", type=Path, default=RECORD, help="JSON-lines record")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table only")
    args = parser.parse_args(argv)
    if args.table_only:
        print(table(read_record(args.record)))
        write_table("char_lm", table(read_record(args.record)))
        return
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    steps = 20 if args.quick else args.steps
    torch.set_num_threads(args.threads)
    entries = []
    with tempfile.TemporaryDirectory(prefix="striate-char-lm-") as runs:
        for name in names:
            entry = run_model(name, steps, Path(runs) / name)
            entries.append(entry)
            print(f"{name}: sample at temperature 0.8:\n{entry['sample']}\n")
            if args.quick:
                continue
            with atomic_write(RESULTS / f"char_lm_{name}_samples.txt", "w") as f:
                f.write(entry.pop("samples"))
            append_record(args.record, [entry])
            if args.record == RECORD:
                write_table("char_lm", table(read_record(RECORD)))
    print_table(rows(entries))
    if not args.quick:
        print(table(read_record(args.record)))


if __name__ == "__main__":
    print_machine()
    main()
