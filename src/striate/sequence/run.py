"""Training a language model end to end: corpus → StreamLoader → a recurrent or transformer
language model → Trainer(task=LanguageModel) → a run folder with the model, samples and a report.

    result = train_language_model("tinyshakespeare", model="lstm", out="runs/text/lstm")
    train_language_model(out="runs/text/lstm", resume=True)        # after Ctrl-C
    lm = load_language_model("runs/text/lstm")                      # .model, .vocab, .config
    lm.sample("ROMEO:", 200, temperature=0.8)
    evaluate_language_model("runs/text/kjv-lstm", cache=True)       # with the neural cache

The defaults are nanoGPT's published CPU configuration for tiny-shakespeare (README: block 64,
batch 12, 4 layers, 4 heads, 128 embedding, 2,000 iterations, dropout 0; config/
train_shakespeare_char.py and train.py: AdamW lr 1e-3, β2 0.99, weight decay 0.1, 100 warmup
steps, cosine decay to 1e-4, gradient clipping at norm 1.0). `length` is both the truncated-BPTT
length of a recurrent model and the transformer's context.

The run folder gets config.json, metrics.csv, steps.csv, checkpoints/ (last and best),
model/ (weights.safetensors + model.json: "striate-model/1", task "language_model", the
architecture's spec, the vocabulary, the corpus and its split rule), samples.txt (temperatures
0.5, 0.8 and 1.0), eval.json (validation and test loss, perplexity, bits per token) and
report.html.
"""

from __future__ import annotations

import html
import itertools
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from striate import __version__
from striate._atomic import atomic_write, write_json
from striate.checks import non_negative_int, number, one_of, positive_int, probability
from striate.device import resolve_device
from striate.engine.callbacks import Callback, GradientClipping
from striate.engine.optim import make_optimizer
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, DataError, InputError, StriateError
from striate.models.io import FORMAT, read_model_info
from striate.outputs import check_folder, clear_folder
from striate.progress import phase
from striate.sequence import cache as neural_cache
from striate.sequence import cell_view
from striate.sequence.corpus import LEVELS, Corpus, Vocabulary, load_corpus
from striate.sequence.language_model import LanguageModel
from striate.sequence.lm_zoo import (
    LANGUAGE_MODELS,
    build_language_model,
    language_model_from_spec,
)
from striate.sequence.sampling import sample
from striate.sequence.streams import StreamLoader
from striate.state_file import save_weights

TASK = "language_model"
MADE_BY = "striate text train"
SAMPLE_TEMPERATURES = (0.5, 0.8, 1.0)


@dataclass
class TextConfig:
    """The settings of `train_language_model` (saved in config.json; a resumed run reads them).
    Defaults: nanoGPT's CPU configuration (see the module docstring)."""

    corpus: str = "tinyshakespeare"
    root: str | None = None  # the folder holding the named corpora [default: shared data/text]
    level: str = "char"
    model: str = "lstm"  # rnn, lstm, gru or transformer
    embed: int = 128
    hidden: int = 256  # recurrent models: the state's size
    layers: int | None = None  # None: 4 for the transformer (nanoGPT), 2 for recurrent models
    heads: int = 4  # the transformer's attention heads
    dropout: float = 0.0
    model_options: dict[str, Any] = field(default_factory=dict)  # more constructor arguments
    length: int = 64  # BPTT length of a recurrent model, the transformer's context
    batch_size: int = 12
    steps: int | None = 2000
    epochs: int | None = None  # instead of steps
    opt: str = "adamw"
    lr: float = 1e-3
    beta2: float = 0.99  # Adam's β2 (nanoGPT: 0.99, "a bit bigger: few tokens per iteration")
    weight_decay: float = 0.1  # matrices and embeddings only (biases and norms exempt)
    schedule: str = "cosine"
    warmup: int = 100  # steps of linear warm-up
    min_lr: float = 1e-4  # where the cosine schedule ends
    clip: float | None = 1.0  # max gradient norm (None: no clipping)
    max_vocab: int | None = None  # words: the most frequent training words kept
    eval_batches: int | None = None  # validation chunks per epoch while training (None: all)
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class LanguageModelRun:
    out: Path | None
    model: nn.Module
    vocab: Vocabulary
    trainer: Trainer
    val: dict[str, float]
    test: dict[str, float]
    samples: dict[float, str]


def train_language_model(
    corpus: str | os.PathLike = "tinyshakespeare",
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> LanguageModelRun:
    """Train a language model on a corpus (settings: `TextConfig`'s fields); see the module
    docstring. `resume=True` continues the run stopped in `out` with its saved settings, exactly
    as if it had not stopped; `callbacks` add features (`striate.engine.callbacks`)."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_language_model: resume needs the run folder (out=...)")
        config = saved_config(out)
    else:
        if "epochs" in settings and "steps" not in settings:
            settings = {**settings, "steps": None}
        given = known_settings("train_language_model", TextConfig, settings, ("corpus",))
        config = TextConfig(corpus=str(corpus), **given)
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    _check(config)
    data = read_corpus(config)
    torch.manual_seed(config.seed)
    model = build_model(config, len(data.vocab))
    dev = resolve_device(config.device)
    train = StreamLoader(data.train, config.batch_size, config.length, seed=config.seed, device=dev)
    val, test = (stream(tokens, config, dev) for tokens in (data.val, data.test))
    trainer = Trainer(
        steps=config.steps,
        epochs=config.epochs,
        task=LanguageModel(),
        opt=_optimizer(config, model),
        lr=config.lr,
        weight_decay=config.weight_decay,  # for the optimisers given by name
        schedule=config.schedule,
        schedule_options=_schedule_options(config, len(train)),
        precision=config.precision,
        device=dev,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=[*_clipping(config), *callbacks],
    )
    if out is not None and not resume:
        trainer.check(model, train)  # a bad option fails before the folder is made
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {f"{k}_tokens": len(getattr(data, k)) for k in ("train", "val", "test")}
        resolved = resolved_facts(trainer, model, vocabulary=len(data.vocab), **sizes)
        resolved["split_rule"] = data.split_rule
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    trainer.fit(model, train, _first(val, config.eval_batches), resume=out if resume else None)
    if trainer.interrupted:
        return LanguageModelRun(out, model, data.vocab, trainer, {}, {}, {})
    scores = {"val": trainer.evaluate(model, val)}
    same = data.test.data_ptr() == data.val.data_ptr() and len(data.test) == len(data.val)
    scores["test"] = dict(scores["val"]) if same else trainer.evaluate(model, test)
    length = 500 if config.level == "char" else 100
    with phase("sampling", enabled=progress):
        samples = {
            t: sample(model, data.vocab, "", length, temperature=t, seed=config.seed, device=dev)
            for t in SAMPLE_TEMPERATURES
        }
    if out is not None:
        save_language_model(out / "model", model, data, scores)
        _write_outputs(out, config, trainer, data, scores, samples)
    return LanguageModelRun(out, model, data.vocab, trainer, scores["val"], scores["test"], samples)


def _check(config: TextConfig) -> None:
    owner = "train_language_model"
    one_of(owner, "level", config.level, LEVELS)
    LANGUAGE_MODELS.get(config.model)  # an unknown name: the registry's did-you-mean line
    for name in ("embed", "hidden", "heads", "length", "batch_size"):
        positive_int(owner, name, getattr(config, name))
    positive_int(owner, "layers", config.layers, allow_none=True)
    positive_int(owner, "max_vocab", config.max_vocab, allow_none=True)
    positive_int(owner, "eval_batches", config.eval_batches, allow_none=True)
    non_negative_int(owner, "warmup", config.warmup)
    probability(owner, "dropout", config.dropout, high_open=True)
    number(owner, "lr", config.lr, low=0.0, low_open=True)
    number(owner, "min_lr", config.min_lr, low=0.0, high=config.lr, hint="at most lr")
    number(owner, "beta2", config.beta2, low=0.0, high=1.0, high_open=True)
    number(owner, "clip", config.clip, low=0.0, low_open=True, allow_none=True)
    if (config.steps is None) == (config.epochs is None):
        raise ConfigError(f"{owner}: give the length of training as one of steps or epochs")
    positive_int(owner, "steps", config.steps, allow_none=True)
    positive_int(owner, "epochs", config.epochs, allow_none=True)
    if not isinstance(config.model_options, dict):
        raise ConfigError(f"{owner}: model_options must be a dict, got {config.model_options!r}")


def saved_config(run: str | os.PathLike) -> TextConfig:
    """The settings a run folder was trained with (its config.json)."""
    return saved_settings(Path(run), TextConfig, MADE_BY)


def read_corpus(config: TextConfig) -> Corpus:
    """The corpus of `config`: its vocabulary and train/val/test token streams."""
    return load_corpus(config.corpus, config.level, config.root, max_vocab=config.max_vocab)


def build_model(config: TextConfig, vocab_size: int) -> nn.Module:
    """The network of `config` over `vocab_size` tokens (`model_options` override the rest)."""
    if config.model == "transformer":
        arguments = dict(context=config.length, layers=config.layers or 4, heads=config.heads)
        arguments.update(embed=config.embed, dropout=config.dropout)
    else:
        arguments = dict(embed=config.embed, hidden=config.hidden, layers=config.layers or 2)
        arguments["dropout"] = config.dropout
    return build_language_model(config.model, vocab_size, **{**arguments, **config.model_options})


def stream(tokens: torch.Tensor, config: TextConfig, device: Any) -> StreamLoader:
    """An evaluation loader of a split: `batch_size` streams in chunks of `length`, in order."""
    return StreamLoader(tokens, config.batch_size, config.length, shuffle=False, device=device)


def _optimizer(config: TextConfig, model: nn.Module) -> str | torch.optim.Optimizer:
    """Adam/AdamW with the config's β2 (the Trainer takes a name with torch's betas); other
    optimisers by name."""
    if config.opt not in ("adam", "adamw"):
        return config.opt
    return make_optimizer(
        config.opt, model, config.lr, config.weight_decay, betas=(0.9, config.beta2)
    )


def _schedule_options(config: TextConfig, steps_per_epoch: int) -> dict[str, Any]:
    """Warm-up (given in steps, the schedules take epochs) and the cosine's floor min_lr / lr."""
    options: dict[str, Any] = {}
    if config.warmup:
        options["warmup"] = config.warmup / steps_per_epoch
    if config.schedule == "cosine":
        options["min_factor"] = config.min_lr / config.lr
    return options


def _clipping(config: TextConfig) -> list[Callback]:
    return [GradientClipping(max_norm=config.clip)] if config.clip is not None else []


class _First:
    """The first `n` batches of a loader (nanoGPT's eval_iters: a cheaper validation)."""

    def __init__(self, loader: StreamLoader, n: int) -> None:
        self.loader, self.n = loader, min(n, len(loader))

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return itertools.islice(iter(self.loader), self.n)


def _first(loader: StreamLoader, n: int | None) -> StreamLoader | _First:
    return loader if n is None else _First(loader, n)


# ------------------------------------------------------------------ the model files


def save_language_model(
    folder: Path, model: nn.Module, corpus: Corpus, scores: dict[str, dict[str, float]]
) -> Path:
    """`folder`/weights.safetensors and model.json (format, task, architecture spec, vocabulary,
    corpus and split rule, scores), each written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.safetensors", model.state_dict())
    info = {
        "format": FORMAT,
        "task": TASK,
        "striate_version": __version__,
        "architecture": model.spec,
        "vocabulary": corpus.vocab.to_json(),
        "corpus": corpus.name,
        "split_rule": corpus.split_rule,
        "metrics": {f"{split}_{k}": v for split, m in scores.items() for k, v in m.items()},
    }
    write_json(folder / "model.json", info)
    return folder


@dataclass
class LoadedLanguageModel:
    """A trained language model with its vocabulary and the settings of its run."""

    model: nn.Module
    vocab: Vocabulary
    config: TextConfig
    run: Path
    info: dict[str, Any]

    def sample(self, prompt: str, length: int, **options: Any) -> str:
        """`striate.sequence.sampling.sample` with this model and vocabulary (on its device)."""
        device = next(self.model.parameters()).device
        return sample(self.model, self.vocab, prompt, length, device=device, **options)


def load_language_model(
    run: str | os.PathLike, device: str | torch.device = "cpu"
) -> LoadedLanguageModel:
    """The trained model of a run folder made by `train_language_model`, in eval mode on
    `device`; an InputError when the folder is missing, unfinished, not a language-model run, or
    its model files are damaged."""
    run = Path(run)
    if not run.is_dir():
        raise InputError(f"no run folder at {run}: give a folder made by {MADE_BY}")
    try:
        folder, info = read_model_info(run, task=TASK, made_by=MADE_BY)
    except StriateError as e:
        raise InputError(str(e)) from e
    try:
        vocab = Vocabulary.from_json(info["vocabulary"])
        net = language_model_from_spec(info["architecture"])
        net.load_state_dict(load_file(str(folder / "weights.safetensors")))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as e:
        raise InputError(
            f"{folder} does not hold a readable language model ({_first_line(e)}); train the "
            f"run again"
        ) from e
    except StriateError as e:
        raise InputError(f"{folder} does not hold a readable language model ({e})") from e
    try:
        config = saved_config(run)
    except ConfigError as e:
        raise InputError(str(e)) from e
    return LoadedLanguageModel(net.to(device).eval(), vocab, config, run, info)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def evaluate_language_model(
    run: str | os.PathLike,
    split: str = "test",
    *,
    cache: bool | dict[str, Any] = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, float]:
    """Loss (nats per token), perplexity and bits per token of a trained run on `split` ("val"
    or "test") of its corpus, read as it was trained (same streams and chunks as training's
    evaluation).

    With `cache` (True, or a dict of `neural_cache.GRID`'s keys plus "batch" and "length" for
    `cache.collect`), the neural cache (Grave et al. 2017) is added without retraining: hidden
    states are collected along the validation and the `split` stream, θ, λ and the window n are
    chosen by grid search on validation, and the result also holds "cache_theta",
    "cache_lambda", "cache_window", "cache_val_perplexity" and the `split` perplexity without
    ("plain_perplexity") and with the cache ("cache_perplexity") on the collected stream."""

    one_of("evaluate_language_model", "split", split, ("val", "test"))
    lm = load_language_model(run)
    config = lm.config
    data = read_corpus(config)
    if data.vocab != lm.vocab:
        raise DataError(
            f"{config.corpus}: its vocabulary is not the one {run} was trained with (the text "
            f"changed); evaluate on the corpus the run was trained on"
        )
    trainer = Trainer(steps=1, task=LanguageModel(), device=device, progress=progress)
    tokens = getattr(data, split)
    metrics = trainer.evaluate(lm.model, stream(tokens, config, trainer.device))
    if not cache:
        return metrics
    options = {**neural_cache.GRID, "batch": 1, "length": min(config.length, 128)}
    if isinstance(cache, dict):
        unknown = sorted(set(cache) - set(options))
        if unknown:
            raise ConfigError(
                f"evaluate_language_model: unknown cache option(s) {', '.join(unknown)}; the "
                f"options are {', '.join(options)}"
            )
        options.update(cache)
    model = lm.model.to(trainer.device)
    collected = {}
    for name, part in (("val", data.val), (split, tokens)):
        if name not in collected:
            collected[name] = neural_cache.collect(
                model, part, batch=options["batch"], length=options["length"],
                device=trainer.device, progress=progress,
            )  # fmt: skip
    hidden, log_p, targets = collected["val"]
    best = neural_cache.grid_search(
        hidden, targets, log_p, thetas=options["thetas"], lams=options["lams"],
        windows=options["windows"], progress=progress,
    )  # fmt: skip
    hidden, log_p, targets = collected[split]
    p_cache = neural_cache.cache_probabilities(
        hidden, targets, window=best["window"], theta=best["theta"]
    )
    return {
        **metrics,
        "cache_theta": best["theta"],
        "cache_lambda": best["lam"],
        "cache_window": best["window"],
        "cache_val_perplexity": best["perplexity"],
        "plain_perplexity": neural_cache.cached_perplexity(log_p, p_cache, 0.0),
        "cache_perplexity": neural_cache.cached_perplexity(log_p, p_cache, best["lam"]),
    }


# ------------------------------------------------------------------ the run folder's files


def _write_outputs(
    out: Path,
    config: TextConfig,
    trainer: Trainer,
    data: Corpus,
    scores: dict[str, dict[str, float]],
    samples: dict[float, str],
) -> None:
    seconds = sum(h.get("time", 0.0) for h in trainer.history)
    summary = {
        **scores,
        "level": config.level,
        "corpus": data.name,
        "split_rule": data.split_rule,
        "tokens": {k: len(getattr(data, k)) for k in ("train", "val", "test")},
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "training_seconds": seconds,
    }
    write_json(out / "eval.json", summary)
    text = "".join(f"--- temperature {t} ---\n{s}\n\n" for t, s in samples.items())
    with atomic_write(out / "samples.txt", "w") as f:
        f.write(text)
    sections = [("Samples", f"<pre>{html.escape(text)}</pre>")]
    sections += _cell_view_sections(config, trainer, data)
    unit = "character" if config.level == "char" else "word"
    final = {f"{split}_{k}": v for split, m in scores.items() for k, v in m.items()}
    write_task_report(
        out,
        trainer,
        title=f"striate {unit} language model ({config.model}) on {data.name}",
        config={**asdict(config), "split rule": data.split_rule},
        final=final,
        sections=sections,
    )


def _cell_view_sections(config: TextConfig, trainer: Trainer, data: Corpus) -> list:
    """The interpretable-cell view of a character LSTM (Karpathy, Johnson & Fei-Fei 2015): for
    each text feature (quotes, line position, bracket depth, line end), the cell of the last layer
    that tracks it best over the first 2,000 validation characters, drawn over the first 600."""
    if config.level != "char" or config.model != "lstm":
        return []

    text = data.vocab.decode(data.val[:2000])
    model = trainer.model.eval()
    device = next(model.parameters()).device
    matches = cell_view.find_cells(model, data.vocab, text, device=device)
    if not matches:
        return []
    acts = cell_view.cell_activations(model, data.vocab, text[:600], device=device)
    figures = []
    for m in matches:
        title = f"cell {m.cell}: {m.feature.replace('_', ' ')} (r = {m.correlation:+.2f})"
        page = cell_view.cell_html(text[:600], acts[:, m.cell], title=title)
        figures.append(
            f'<iframe title="{html.escape(title)}" srcdoc="{html.escape(page)}" '
            f'style="width:100%;height:16em;border:1px solid #ddd"></iframe>'
        )
    note = (
        "<p>tanh(c) of the last LSTM layer after each validation character (red positive, blue "
        "negative; the value shows on hover); each cell is the one best correlated with the "
        "feature over 2,000 characters.</p>"
    )
    return [("Interpretable cells", note + "".join(figures))]
