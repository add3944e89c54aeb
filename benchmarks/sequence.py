"""Sequence models: training the char transformer with striate's Trainer against a hand-written
nanoGPT loop, and striate's LSTM against torch.nn.LSTM (tokens per second, one run).

    python benchmarks/sequence.py                # the full run, one thread (about 4 minutes)
    python benchmarks/sequence.py --quick        # a smoke test; records nothing
    python benchmarks/sequence.py --table-only   # rewrite BENCHMARKS.md's table from the record

Transformer: nanoGPT's CPU configuration for tiny-shakespeare characters (4 layers, 4 heads,
embedding 128, block 64, batch 12, no bias, dropout 0; `TransformerLM(65, bias=False)`), fp32,
AdamW (lr 1e-3, betas 0.9/0.999, weight decay 0.1 on the matrices only, no clipping, constant
lr), the same initial weights and STEPS optimiser steps for both programs:

- hand-written loop (nanoGPT's train.py without its extras): random windows of the training split
  (``get_batch``), ``logits, _ = model(x)``, cross entropy, ``zero_grad``, ``backward``, ``step``,
  ``loss.item()`` each step;
- striate: ``Trainer(steps=STEPS, task=LanguageModel(), opt="adamw", progress=True, out=tmpdir)``
  on ``StreamLoader(corpus.train, 12, 64)`` (progress bar, steps.csv/metrics.csv and the final
  checkpoint included).

LSTM: 2 layers, input 64, hidden 128, batch 16 × 64 steps, forward and backward of a fixed linear
function of the outputs: ``torch.nn.LSTM(batch_first=True)`` against striate's
``Recurrent("lstm", …)`` with ``implementation="auto"`` (torch's fused kernel) and
``"equations"`` (the cell's equations, step by step), loaded with the same weights; the median
time of ITERS iterations after one untimed (a median: short timings on a shared machine).

Each measurement runs in a fresh process; ROUNDS of each program (LSTM_ROUNDS for the LSTM), in
rotating order; medians of wall time (CPU time of the process in the note and the record). The
ratio is striate's time over the peer's: the goal is at most 1.05 for the Trainer and for the
fused LSTM path. The notes give the loss at the start and the mean of the last ten steps (the two
transformer programs train the same model on different windows of the same text), and the largest
difference of the LSTM's loss from torch's.

Every run (not --quick) is appended to benchmarks/results/sequence.jsonl, and BENCHMARKS.md's
table between the `sequence` markers is rewritten from it (the latest run per device).
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    in_fresh_process,
    print_machine,
    print_table,
    read_record,
    row,
    shared_data,
    write_table,
)
from striate.engine import Trainer
from striate.sequence.corpus import load_corpus
from striate.sequence.language_model import LanguageModel
from striate.sequence.recurrent import Recurrent
from striate.sequence.streams import StreamLoader
from striate.sequence.transformer import TransformerLM

RECORD = RESULTS / "sequence.jsonl"
STEPS, ITERS, ROUNDS = 100, 30, 3
LSTM_ROUNDS = 5  # short runs: fresh processes of one program differ by ±15% on a shared machine
QUICK_STEPS, QUICK_ITERS, QUICK_ROUNDS = 8, 2, 1
BATCH, BLOCK, LR, WEIGHT_DECAY, SEED = 12, 64, 1e-3, 0.1, 0
LSTM_SHAPE = {"batch": 16, "length": 64, "input": 64, "hidden": 128, "layers": 2}
LM_PROGRAMS = ("loop", "striate")
LSTM_PROGRAMS = ("torch", "auto", "equations")


# --------------------------------------------------------------------------- the programs


def hand_loop(model, train: torch.Tensor, steps: int) -> list[float]:
    """nanoGPT's training loop, reduced to what the Trainer run also does."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0}],
        lr=LR,
        betas=(0.9, 0.999),
    )
    g = torch.Generator().manual_seed(SEED)
    model.train()
    losses = []
    for _ in range(steps):
        ix = torch.randint(len(train) - BLOCK, (BATCH,), generator=g)
        x = torch.stack([train[i : i + BLOCK] for i in ix])
        y = torch.stack([train[i + 1 : i + 1 + BLOCK] for i in ix])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def striate_fit(model, train: torch.Tensor, steps: int) -> list[float]:
    """striate's Trainer with the LanguageModel task on a StreamLoader, logging on."""
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(
            steps=steps,
            task=LanguageModel(),
            opt="adamw",
            lr=LR,
            weight_decay=WEIGHT_DECAY,
            precision="fp32",
            device="cpu",
            seed=SEED,
            out=out,
            progress=True,
            tensorboard=False,
        )
        trainer.fit(model, StreamLoader(train, BATCH, BLOCK, seed=SEED))
        return list(trainer.steps_log["loss"])


def _lm_job(job: dict) -> dict:
    corpus = load_corpus("tinyshakespeare", root=shared_data())
    torch.manual_seed(SEED)
    model = TransformerLM(
        len(corpus.vocab), context=BLOCK, layers=4, heads=4, embed=128, bias=False
    )
    program = hand_loop if job["program"] == "loop" else striate_fit
    start, cpu = time.perf_counter(), time.process_time()
    losses = program(model, corpus.train, job["steps"])
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu": cpu,
        "steps": len(losses),
        "first_loss": losses[0],
        "last_loss": statistics.fmean(losses[-10:]),
    }


def _lstm_job(job: dict) -> dict:
    s = LSTM_SHAPE
    torch.manual_seed(SEED)
    layer = nn.LSTM(s["input"], s["hidden"], s["layers"], batch_first=True)
    if job["program"] != "torch":
        layer = Recurrent.from_torch(layer, implementation=job["program"])
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(s["batch"], s["length"], s["input"], generator=g)
    w = torch.randn(s["batch"], s["length"], s["hidden"], generator=g)
    losses, times = [], []
    for i in range(job["iters"] + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        layer.zero_grad(set_to_none=True)
        out, _ = layer(x)
        loss = (out * w).sum()
        loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    return {"seconds": statistics.median(times), "loss": losses[0]}


def worker(job: dict) -> dict:
    """One measurement in this (fresh) process."""
    torch.set_num_threads(job["threads"])
    return _lm_job(job) if job["kind"] == "lm" else _lstm_job(job)


# --------------------------------------------------------------------------- the comparison


def _rounds(kind: str, programs: tuple[str, ...], rounds: int, **job) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {p: [] for p in programs}
    for r in range(rounds):
        k = r % len(programs)
        for program in programs[k:] + programs[:k]:  # rotating order
            runs[program].append(
                in_fresh_process(__file__, {"kind": kind, "program": program, **job})
            )
            print(f"  {kind} {program}: {runs[program][-1]}", file=sys.stderr)
    return runs


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def measure(steps: int, iters: int, rounds: int, threads: int) -> dict:
    lm = _rounds("lm", LM_PROGRAMS, rounds, steps=steps, threads=threads)
    lstm_rounds = LSTM_ROUNDS if rounds == ROUNDS else rounds
    lstm = _rounds("lstm", LSTM_PROGRAMS, lstm_rounds, iters=iters, threads=threads)
    tokens = steps * BATCH * BLOCK
    s = LSTM_SHAPE
    lstm_tokens = s["batch"] * s["length"]
    entry = {"steps": steps, "rounds": rounds, "lm_tokens": tokens, "lstm_iters": iters}
    entry["lstm_rounds"] = lstm_rounds
    entry["lstm_shape"] = dict(s)
    for p in LM_PROGRAMS:
        entry[f"lm_{p}_s"] = _median(lm[p], "seconds")
        entry[f"lm_{p}_cpu"] = _median(lm[p], "cpu")
        entry[f"lm_{p}_tokens_per_s"] = tokens / entry[f"lm_{p}_s"]
        entry[f"lm_{p}_first_loss"] = lm[p][0]["first_loss"]
        entry[f"lm_{p}_last_loss"] = _median(lm[p], "last_loss")
    for p in LSTM_PROGRAMS:
        entry[f"lstm_{p}_s"] = _median(lstm[p], "seconds")
        entry[f"lstm_{p}_tokens_per_s"] = lstm_tokens / entry[f"lstm_{p}_s"]
        entry[f"lstm_{p}_loss_diff"] = abs(lstm[p][0]["loss"] - lstm["torch"][0]["loss"])
    return entry


def rows(e: dict) -> list[dict]:
    lm = f"{e['steps']} steps × {BATCH}×{BLOCK} tokens"
    s = e["lstm_shape"]
    shape = f"{s['layers']}×{s['hidden']}, batch {s['batch']}×{s['length']}"
    out = []
    for p, name in (("loop", "hand-written loop"), ("striate", "striate Trainer")):
        note = f"{lm}; loss {e[f'lm_{p}_first_loss']:.2f} → {e[f'lm_{p}_last_loss']:.2f}"
        out.append(row("transformer", name, e[f"lm_{p}_tokens_per_s"], "tokens/s", note))
    cpu = e["lm_striate_cpu"] / e["lm_loop_cpu"]
    out.append(
        row(
            "transformer",
            "striate / loop time",
            e["lm_striate_s"] / e["lm_loop_s"],
            "×",
            f"CPU time {cpu:.3f}×",
        )  # fmt: skip
    )
    for p in LSTM_PROGRAMS:
        name = "torch.nn.LSTM" if p == "torch" else f"Recurrent ({p})"
        note = shape if p == "torch" else f"|Δ loss| {e[f'lstm_{p}_loss_diff']:.1e}"
        out.append(row("lstm fwd+bwd", name, e[f"lstm_{p}_tokens_per_s"], "tokens/s", note))
    for p in LSTM_PROGRAMS[1:]:
        ratio = e[f"lstm_{p}_s"] / e["lstm_torch_s"]
        out.append(row("lstm fwd+bwd", f"{p} / torch time", ratio, "×"))
    return out


def table(entries: list[dict]) -> str:
    latest = {e["device"]: e for e in entries}
    lines = [
        "| device | comparison | peer | peer tokens/s | striate | striate tokens/s "
        "| striate time / peer time | versions | date |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in latest.values():
        s = e["lstm_shape"]
        common = f"torch {e['torch']} | {e['date']} |"
        lines.append(
            f"| {e['device']} | char transformer training, nanoGPT CPU config ({e['steps']} "
            f"steps, batch {BATCH}×{BLOCK}, AdamW, fp32; loss {e['lm_loop_first_loss']:.2f} → "
            f"{e['lm_loop_last_loss']:.2f} / {e['lm_striate_last_loss']:.2f}) "
            f"| hand-written nanoGPT loop | {e['lm_loop_tokens_per_s']:,.0f} "
            f"| Trainer + LanguageModel + StreamLoader | {e['lm_striate_tokens_per_s']:,.0f} "
            f"| **{e['lm_striate_s'] / e['lm_loop_s']:.3f}×** | {common}"
        )
        for p in LSTM_PROGRAMS[1:]:
            lines.append(
                f"| {e['device']} | LSTM forward + backward ({s['layers']} layers, "
                f"{s['input']}→{s['hidden']}, batch {s['batch']}×{s['length']}) "
                f"| torch.nn.LSTM | {e['lstm_torch_tokens_per_s']:,.0f} "
                f"| Recurrent ({p}) | {e[f'lstm_{p}_tokens_per_s']:,.0f} "
                f"| **{e[f'lstm_{p}_s'] / e['lstm_torch_s']:.3f}×** | {common}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=STEPS, help="transformer optimiser steps")
    parser.add_argument("--iters", type=int, default=ITERS, help="timed LSTM iterations")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measurements per program")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--table-only", action="store_true", help="rewrite BENCHMARKS.md's table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.table_only:
        write_table("sequence", table(read_record(RECORD)))
        return
    if args.quick:
        args.steps, args.iters, args.rounds = QUICK_STEPS, QUICK_ITERS, QUICK_ROUNDS
    entry = {
        "device": cpu_name(args.threads),
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        **measure(args.steps, args.iters, args.rounds, args.threads),
    }
    torch.set_num_threads(args.threads)
    print_table(rows(entry))
    if not args.quick:
        append_record(RECORD, [entry])
        write_table("sequence", table(read_record(RECORD)))
        print(table(read_record(RECORD)))


if __name__ == "__main__":
    print_machine()
    main()
