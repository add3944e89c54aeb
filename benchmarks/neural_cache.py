"""The neural cache pointer on a word-level LSTM of the King James Bible: test perplexity without
and with the cache, θ, λ and the window n chosen on validation.

    python benchmarks/neural_cache.py                 # train (4–6 min, one thread), search, test
    python benchmarks/neural_cache.py --quick         # a smoke test; records nothing
    python benchmarks/neural_cache.py --table-only    # the table from the record

Grave, Joulin & Usunier 2017 ("Improving Neural Language Models with a Continuous Cache"): the
cache p(w) = (1−λ)·p_vocab(w) + λ·p_cache(w), p_cache(w) ∝ Σ_{i=t−n}^{t−1} 1{w = x_{i+1}}
exp(θ·h_tᵀh_i), added to a trained model without retraining. 001_*.md ("Pointer cache for
Language Model") reports "from a perplexity of 74.06 to 54.43" without saying on what; its notebook
(github.com/sgugger/Deep-Learning, "Cache pointer.ipynb") shows those are WikiText-2 *validation*
perplexities (test: 70.21 → 52.10) of a fastai AWD-LSTM (3 layers, 1,150 hidden, 400 embedding,
33,279 words), with Merity et al.'s θ = 0.662, λ = 0.1279, n = 3,785 taken as they are (not
searched). Here: the KJV split by chapter (`striate.sequence.corpus`: c % 20 == 18 validation,
19 test), 10,000 words + <unk> + <eos> after each verse; a one-layer LSTM (embedding 200, hidden
200; untied: the engine's checkpoint cannot save tied weights yet) trained through
`striate.sequence.run.train_language_model` for 600 steps, 4–6 minutes on one thread (AdamW 3e-3,
cosine to 1e-4, BPTT 35, batch 32, 0.8 epoch, no dropout: an underfitted model, far from a
converged AWD-LSTM). Hidden states and log p_vocab are collected along the validation and test
streams in order (`cache.collect`, one stream, state carried); the grid θ × λ × n is searched
on validation and the best applied to test. θ multiplies h_tᵀh_i, whose size depends on the
model: the grid is θ ∈ {0.1, 0.2, 0.3, 0.5, 0.7, 1.0} × --theta-scale, and the record keeps the
mean ‖h‖² of the validation states (≈ 53 for this model, whose best θ, 0.3, lies inside the grid;
the same LSTM with tied weights had ‖h‖² ≈ 3.4 and wanted θ beyond 1).

Each run appends one JSON line to results/neural_cache.jsonl and rewrites the ``neural_cache``
table of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

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
from striate.sequence import cache
from striate.sequence.corpus import load_corpus
from striate.sequence.run import load_language_model, train_language_model

RECORD = RESULTS / "neural_cache.jsonl"
# 001_*.md's notebook: an AWD-LSTM on WikiText-2, perplexity without → with the cache
POST = {
    "val": (74.06, 54.43),
    "test": (70.21, 52.10),
    "theta": 0.662,
    "lam": 0.1279,
    "window": 3785,
}
MODEL = {
    "model": "lstm",
    "embed": 200,
    "hidden": 200,
    "layers": 1,
    "dropout": 0.0,
    "model_options": {},
    "length": 35,
    "batch_size": 32,
    "lr": 3e-3,
    "warmup": 50,
    "min_lr": 1e-4,
    "eval_batches": 50,
    "precision": "fp32",
    "device": "cpu",
    "seed": 0,
}
THETAS, LAMS, WINDOWS = cache.GRID["thetas"], cache.GRID["lams"], cache.GRID["windows"]


def trained_model(args) -> tuple[object, dict, dict]:
    """(model, settings, eval.json) of the run in --run, trained there first unless it holds one."""
    settings = {**MODEL, "steps": args.steps}
    if args.quick:
        settings.update(steps=20, warmup=5)
    run = Path(args.run)
    if not (run / "model" / "model.json").is_file():
        root = str(shared_data() / "text")
        train_language_model(
            "kjv", level="word", root=root, out=run, overwrite=True, progress=True, **settings
        )
    lm = load_language_model(run)
    done = json.loads((run / "eval.json").read_text())
    used = {k: getattr(lm.config, k) for k in settings}
    return lm.model, used, done


def run(args) -> dict:
    model, settings, done = trained_model(args)
    corpus = load_corpus("kjv", "word", shared_data() / "text")
    val, test = corpus.val, corpus.test
    if args.quick:
        val, test = val[:3000], test[:3000]
    t0 = time.perf_counter()
    val_h, val_lp, val_y = cache.collect(model, val, length=128, progress=True)
    test_h, test_lp, test_y = cache.collect(model, test, length=128, progress=True)
    collect_s = time.perf_counter() - t0
    norm2 = float((val_h.double() ** 2).sum(1).mean())
    thetas = tuple(t * args.theta_scale for t in THETAS)
    t0 = time.perf_counter()
    best = cache.grid_search(
        val_h, val_y, val_lp, thetas=thetas, lams=LAMS, windows=WINDOWS, progress=True
    )
    search_s = time.perf_counter() - t0
    p_cache = cache.cache_probabilities(test_h, test_y, window=best["window"], theta=best["theta"])
    per_window = {
        str(n): min(r["perplexity"] for r in best["grid"] if r["window"] == n) for n in WINDOWS
    }
    return {
        "corpus": "kjv",
        "split_rule": corpus.split_rule,
        "vocabulary": len(corpus.vocab),
        "train_tokens": len(corpus.train),
        "val_tokens": len(val_y),
        "test_tokens": len(test_y),
        "settings": settings,
        "train_s": done["training_seconds"],
        "collect_s": collect_s,
        "search_s": search_s,
        "trainer_val_perplexity": done["val"]["perplexity"],
        "trainer_test_perplexity": done["test"]["perplexity"],
        "mean_h_norm2": norm2,
        "theta_scale": args.theta_scale,
        "theta": best["theta"],
        "lam": best["lam"],
        "window": best["window"],
        "val_plain": best["plain_perplexity"],
        "val_cache": best["perplexity"],
        "val_best_per_window": per_window,
        "test_plain": cache.cached_perplexity(test_lp, p_cache, 0.0),
        "test_cache": cache.cached_perplexity(test_lp, p_cache, best["lam"]),
        "grid": best["grid"],
        "post": POST,
        "device": cpu_name(torch.get_num_threads()),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }


def table(entries: list[dict]) -> str:
    """The markdown table of the record's latest run, the post's numbers beside it."""
    if not entries:
        return ""
    e = entries[-1]
    s, p = e["settings"], e["post"]
    tied = s["model_options"].get("tie_weights", False)
    epochs = s["steps"] * s["batch_size"] * s["length"] / e["train_tokens"]
    model = (
        f"LSTM {s['layers']}×{s['hidden']}{', tied' if tied else ''}, {s['steps']:,} steps "
        f"({epochs:.1f} epoch, {e['train_s'] / 60:.1f} min, {e['device']})"
    )
    windows = ", ".join(f"n={n}: {p:.2f}" for n, p in e["val_best_per_window"].items())
    return "\n".join(
        [
            "| model and data | θ | λ | n | val perplexity (plain → cache) "
            "| test perplexity (plain → cache) | date |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            f"| {model}; KJV words ({e['vocabulary']:,} tokens in the vocabulary, "
            f"{e['test_tokens']:,} test tokens) | {e['theta']:g} | {e['lam']:g} | {e['window']} "
            f"| {e['val_plain']:.2f} → {e['val_cache']:.2f} "
            f"| {e['test_plain']:.2f} → **{e['test_cache']:.2f}** | {e['date']} |",
            f"| 001_*.md's notebook: AWD-LSTM 3×1150, WikiText-2 (33,279 words) "
            f"| {p['theta']} | {p['lam']} | {p['window']:,} | {p['val'][0]:.2f} → "
            f"{p['val'][1]:.2f} | {p['test'][0]:.2f} → {p['test'][1]:.2f} | 2018 |",
            "",
            f"Best validation perplexity per window: {windows}; mean ‖h‖² of the validation "
            f"states {e['mean_h_norm2']:.1f} (θ grid {', '.join(f'{t:g}' for t in THETAS)} × "
            f"{e['theta_scale']:g}).",
        ]
    )


def rows(e: dict) -> list[dict]:
    section = f"KJV words, θ={e['theta']:g} λ={e['lam']:g} n={e['window']}"
    return [
        row(section, "test perplexity, plain", e["test_plain"], "ppl", "post 70.21 (WikiText-2)"),
        row(section, "test perplexity, cache", e["test_cache"], "ppl", "post 52.10"),
        row(section, "val perplexity, plain", e["val_plain"], "ppl", "post 74.06"),
        row(section, "val perplexity, cache", e["val_cache"], "ppl", "post 54.43"),
        row(section, "training", e["train_s"], "s"),
        row(section, "collect + grid search", e["collect_s"] + e["search_s"], "s"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600, help="training steps")
    parser.add_argument("--theta-scale", type=float, default=1.0, help="θ grid multiplier")
    parser.add_argument(
        "--run", default=None, help="run folder: trained there unless it holds a model (reused)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--record", type=Path, default=RECORD, help="JSON-lines record")
    parser.add_argument("--table-only", action="store_true", help="rewrite the table only")
    args = parser.parse_args(argv)
    if args.table_only:
        write_table("neural_cache", table(read_record(args.record)))
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="striate-cache-") as scratch:
        args.run = args.run or scratch  # no --run: the model is trained in a temporary folder
        entry = run(args)
    if not args.quick:
        append_record(args.record, [entry])
        if args.record == RECORD:
            write_table("neural_cache", table(read_record(RECORD)))
    print_table(rows(entry))
    print(table([entry]))


if __name__ == "__main__":
    print_machine()
    main()
