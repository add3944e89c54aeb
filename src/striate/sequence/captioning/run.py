"""Training a captioner end to end: captioned scenes → ShowAttendTell → Trainer(task=Captioning)
→ a run folder with the model, BLEU and the attention maps.

    result = train_captioner(out="runs/cap", epochs=5)
    train_captioner(out="runs/cap", resume=True)                  # after Ctrl-C
    evaluate_captioner("runs/cap", beam=3)                        # BLEU on the test scenes
    predict_caption("runs/cap", images)                           # [(caption, Decoded), …]

The scenes are drawn afresh from seeds (`striate.sequence.captioning.scenes`): `train_size`
training scenes from `seed`, `val_size` validation scenes from `seed` + 1 (scored each epoch;
checkpoints/best keeps the weights of the best BLEU-4, model/ those of the last epoch), and
`test_size` test scenes from `seed` + 2, an independent draw scored once, at the end, by greedy
decoding and by beam search (`beam`). `held_out` ("red triangle", …) keeps those (colour, shape)
pairs out of the training and validation scenes; the test scenes that show one are scored apart
too: can the decoder say a combination of words it never saw together?

The doubly stochastic regulariser is off by default (`regularizer` λ = 0): with the paper's
λ = 1, about 10 words over L = 64 locations cannot give every location Σ_t α_ti ≈ 1, and the
penalty pushed the attention onto the background (measured on the default run: the attention's
peak on the shape a colour word names 48% of the time at λ = 1, 63% at 0.1, 79% at 0; test BLEU-4
0.829, 0.838, 0.841).

The run folder gets config.json, metrics.csv, steps.csv, checkpoints/ (last and best), model/
(weights.safetensors + model.json: "striate-model/1", task "captioning", the architecture's
arguments and the vocabulary), eval.json (BLEU-1…4, greedy and beam), attention.png (one test
image and, per generated word, its attention map over the image), samples.png and report.html.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file

from striate import __version__
from striate._atomic import write_json
from striate.checks import integer, non_negative_int, number, positive_int, probability
from striate.engine.callbacks import Callback
from striate.engine.run_config import known_settings, saved_settings
from striate.engine.run_info import resolved_facts, write_task_report
from striate.engine.trainer import Trainer
from striate.errors import ConfigError, InputError, StriateError
from striate.evaluate.report import figure_html
from striate.models.io import FORMAT, read_model_info
from striate.outputs import check_folder, clear_folder
from striate.progress import phase
from striate.sequence.captioning.decoding import Decoded
from striate.sequence.captioning.figures import plot_attention, plot_captions
from striate.sequence.captioning.model import ShowAttendTell, build_captioner
from striate.sequence.captioning.scenes import (
    END,
    MAX_TOKENS,
    PAD,
    START,
    CaptionLoader,
    CaptionSet,
    holds_pair,
    make_scenes,
    parse_pairs,
)
from striate.sequence.captioning.task import Captioning
from striate.sequence.corpus import Vocabulary
from striate.state_file import save_weights

MADE_BY = "striate caption train"


@dataclass
class CaptionConfig:
    """The settings of `train_captioner` (saved in config.json; a resumed run reads them)."""

    train_size: int = 6000
    val_size: int = 500
    test_size: int = 1000
    image_size: int = 64
    two_shapes: float = 0.7
    held_out: list[str] = field(default_factory=list)  # "COLOUR SHAPE" pairs kept from training
    features: int = 128
    width: int = 32
    embed: int = 64
    hidden: int = 256
    attention: int = 128
    dropout: float = 0.0
    gate: bool = True
    regularizer: float = 0.0  # λ; the paper's 1.0 spread the attention here (module docstring)
    epochs: int = 5
    batch_size: int = 64
    opt: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    beam: int = 3
    length_norm: float = 0.0
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"


@dataclass
class CaptionRun:
    out: Path | None
    model: ShowAttendTell
    trainer: Trainer
    test: dict[str, float]  # greedy decoding
    test_beam: dict[str, float]  # beam search with config.beam
    held_out: dict[str, Any] = field(default_factory=dict)  # on test scenes with held-out pairs


def _check(config: CaptionConfig) -> None:
    owner = "train_captioner"
    for name in ("train_size", "test_size", "epochs", "batch_size", "beam"):
        positive_int(owner, name, getattr(config, name))
    for name in ("features", "width", "embed", "hidden", "attention"):
        positive_int(owner, name, getattr(config, name))
    non_negative_int(owner, "val_size", config.val_size)
    integer(owner, "image_size", config.image_size, low=24)
    probability(owner, "two_shapes", config.two_shapes)
    probability(owner, "dropout", config.dropout, high_open=True)
    number(owner, "regularizer", config.regularizer, low=0)
    number(owner, "length_norm", config.length_norm, low=0)
    if not isinstance(config.held_out, list):
        raise ConfigError(
            f"{owner}: held_out must be a list of 'COLOUR SHAPE', got {config.held_out!r}"
        )
    parse_pairs(config.held_out)
    if config.image_size % 8:
        raise ConfigError(
            f"train_captioner: image_size must be a multiple of 8 (the encoder halves it three "
            f"times), got {config.image_size}"
        )


def _scenes(config: CaptionConfig, split: str) -> CaptionSet:
    """A split's scenes; the held-out pairs are left out of training and validation only."""
    size = {"train": config.train_size, "val": config.val_size, "test": config.test_size}[split]
    offset = {"train": 0, "val": 1, "test": 2}[split]
    return make_scenes(
        size,
        size=config.image_size,
        seed=config.seed + offset,
        two_shapes=config.two_shapes,
        exclude=config.held_out if split != "test" else (),
    )


def held_out_scenes(config: CaptionConfig, test_set: CaptionSet) -> CaptionSet | None:
    """The test scenes showing a held-out (colour, shape) pair, or None without such pairs."""
    if not config.held_out:
        return None
    hit = holds_pair(test_set.objects, parse_pairs(config.held_out))
    return test_set[hit.nonzero().flatten()] if bool(hit.any()) else None


def _task(config: CaptionConfig, vocab: Vocabulary, beam: int = 1) -> Captioning:
    ids = vocab.encode([PAD, START, END]).tolist()
    return Captioning(
        pad=ids[0],
        start=ids[1],
        end=ids[2],
        regularizer=config.regularizer,
        beam=beam,
        max_length=MAX_TOKENS - 1,
        length_norm=config.length_norm,
    )


def _network(config: CaptionConfig, vocab_size: int) -> ShowAttendTell:
    return ShowAttendTell(
        vocab_size,
        image_size=config.image_size,
        features=config.features,
        width=config.width,
        embed=config.embed,
        hidden=config.hidden,
        attention=config.attention,
        dropout=config.dropout,
        gate=config.gate,
    )


def train_captioner(
    *,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **settings: Any,
) -> CaptionRun:
    """Train a Show-Attend-Tell captioner on captioned scenes (settings: `CaptionConfig`'s
    fields); see the module docstring. `resume=True` continues the run stopped in `out` with
    its saved settings, exactly as if it had not stopped."""
    out = Path(out) if out is not None else None
    if resume:
        if out is None:
            raise ConfigError("train_captioner: resume needs the run folder (out=...)")
        config = saved_settings(out, CaptionConfig, MADE_BY)
    else:
        config = CaptionConfig(**known_settings("train_captioner", CaptionConfig, settings))
        if out is not None:
            check_folder(out, overwrite, hint=f"or --resume {out} to continue it")
    _check(config)
    with phase("drawing the scenes", progress):
        train_set, test_set = _scenes(config, "train"), _scenes(config, "test")
        val_set = _scenes(config, "val") if config.val_size else None
    vocab = train_set.vocab
    torch.manual_seed(config.seed)
    model = _network(config, len(vocab))
    task = _task(config, vocab)
    trainer = Trainer(
        epochs=config.epochs,
        task=task,
        opt=config.opt,
        lr=config.lr,
        weight_decay=config.weight_decay,
        schedule=config.schedule,
        precision=config.precision,
        device=config.device,
        seed=config.seed,
        out=out,
        progress=progress,
        tensorboard=False,
        callbacks=callbacks,
    )
    train = CaptionLoader(train_set, config.batch_size, seed=config.seed, device=trainer.device)
    val = CaptionLoader(val_set, 256, shuffle=False, device=trainer.device) if val_set else None
    test = CaptionLoader(test_set, 256, shuffle=False, device=trainer.device)
    if out is not None and not resume:
        trainer.check(model, train)  # a bad option fails before the folder is made
        clear_folder(out) if overwrite else out.mkdir(parents=True, exist_ok=True)
        sizes = {
            "train_images": len(train_set),
            "val_images": len(val_set) if val_set else 0,
            "test_images": len(test_set),
        }
        resolved = resolved_facts(trainer, model, **sizes)
        write_json(out / "config.json", {"config": asdict(config), "resolved": resolved})
    trainer.fit(model, train, val, resume=out if resume else None)
    if trainer.interrupted:
        return CaptionRun(out, model, trainer, {}, {})
    greedy = trainer.evaluate(model, test, beam=1)
    beam = trainer.evaluate(model, test, beam=config.beam)
    unseen = held_out_scenes(config, test_set)
    held: dict[str, Any] = {}
    if unseen is not None:
        loader = CaptionLoader(unseen, 256, shuffle=False, device=trainer.device)
        held = {
            "images": len(unseen),
            "greedy": trainer.evaluate(model, loader, beam=1),
            "beam": trainer.evaluate(model, loader, beam=config.beam),
        }
    if out is not None:
        metrics = {"greedy": greedy, "beam": beam, **({"held_out": held} if held else {})}
        save_captioner(out / "model", model, vocab, metrics)
        _write_outputs(out, config, trainer, model, test_set, greedy, beam, held)
    return CaptionRun(out, model, trainer, greedy, beam, held)


def save_captioner(
    folder: Path, model: ShowAttendTell, vocab: Vocabulary, metrics: dict[str, Any]
) -> Path:
    """model/weights.safetensors and model.json (format, task, architecture, vocabulary)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(folder / "weights.safetensors", model.state_dict())
    info = {
        "format": FORMAT,
        "task": "captioning",
        "striate_version": __version__,
        "architecture": model.spec,
        "vocabulary": vocab.to_json(),
        "max_length": MAX_TOKENS - 1,
        "metrics": metrics,
    }
    write_json(folder / "model.json", info)
    return folder


def _write_outputs(
    out: Path,
    config: CaptionConfig,
    trainer: Trainer,
    model: ShowAttendTell,
    test_set: CaptionSet,
    greedy: dict[str, float],
    beam: dict[str, float],
    held: dict[str, Any],
) -> None:
    task: Captioning = trainer.task  # type: ignore[assignment]
    vocab = test_set.vocab
    n = min(8, len(test_set))
    x = test_set.images[:n].float().div(255).to(trainer.device)
    model.eval()
    decoded = task.decode(model, x, beam=1)
    captions = [vocab.decode(w) for w in task.words(decoded.tokens, decoded.lengths)]
    references = _texts(test_set[:n])
    truths = [refs[0] for refs in references]
    # a two-shape scene shows more of where it looks; a right caption, what the looking is for
    two = (test_set.lengths[:n, 1] > 0).tolist()
    right = [c in refs for c, refs in zip(captions, references, strict=True)]
    order = [i for i in range(n) if two[i] and right[i]] + [i for i in range(n) if two[i]]
    pick = (order or [0])[0]
    words = [vocab.tokens[i] for i in decoded.tokens[pick, : int(decoded.lengths[pick])].tolist()]
    figures = {
        "attention": plot_attention(test_set.images[pick], words, decoded.alphas[pick]),
        "samples": plot_captions(test_set.images[:n], captions, truths),
    }
    summary = {
        "greedy": greedy,
        "beam": {"beam": config.beam, "length_norm": config.length_norm, **beam},
        "test_images": len(test_set),
        **({"held_out": {"pairs": config.held_out, **held}} if held else {}),
        "epochs": trainer.epoch,
        "steps": trainer.step,
        "training_seconds": sum(h.get("time", 0.0) for h in trainer.history),
        "samples": [
            {"caption": c, "references": r} for c, r in zip(captions, references, strict=True)
        ],
    }
    write_json(out / "eval.json", summary)
    headings = {
        "attention": f"Where it looked for each word (test scene {pick}, greedy, captioned "
        f"{'right' if right[pick] else 'wrongly'})",
        "samples": "Test scenes: greedy caption (a reference in brackets)",
    }
    sections = [
        (headings[name], figure_html(fig, name, save=out / f"{name}.png"))
        for name, fig in figures.items()
    ]
    final = {f"test_{k}": v for k, v in greedy.items()}
    final.update(
        {f"test_beam{config.beam}_{k}": v for k, v in beam.items() if k.startswith("bleu")}
    )
    if held:
        final.update({f"held_out_{k}": v for k, v in held["greedy"].items() if "bleu" in k})
    write_task_report(
        out,
        trainer,
        title=f"striate captioning (Show, Attend and Tell) on {len(test_set):,} test scenes",
        config=asdict(config),
        final=final,
        sections=sections,
    )


def _texts(data: CaptionSet) -> list[list[str]]:
    return [[" ".join(words) for words in refs] for refs in data.references()]


# ------------------------------------------------------------------ using a trained run


@dataclass
class Captioner:
    """A trained captioner with its vocabulary: `caption` turns images into text."""

    net: ShowAttendTell
    vocab: Vocabulary
    task: Captioning
    metrics: dict[str, Any]

    @property
    def image_size(self) -> int:
        return self.net.image_size

    @torch.no_grad()
    def caption(
        self, images: torch.Tensor, *, beam: int = 1, length_norm: float = 0.0
    ) -> tuple[list[str], Decoded]:
        """Captions of uint8 images N×3×H×W (resized to the network's size when they differ)
        and the decoding (tokens, attention maps)."""
        self.net.eval()
        device = next(self.net.parameters()).device
        x = images.to(device).float().div(255)
        s = self.image_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        out = self.task.decode(self.net, x, beam=beam, length_norm=length_norm)
        words = self.task.words(out.tokens.cpu(), out.lengths.cpu())
        return [self.vocab.decode(w) for w in words], out

    def words(self, decoded: Decoded, i: int) -> list[str]:
        """The tokens generated for image `i` (`<end>` included where reached)."""
        ids = decoded.tokens[i, : int(decoded.lengths[i])].tolist()
        return [self.vocab.tokens[t] for t in ids]


def load_captioner(run: str | os.PathLike, device: str | torch.device = "cpu") -> Captioner:
    """The trained captioner of a run folder (or its model/ folder)."""
    folder, info = read_model_info(run, task="captioning", made_by=MADE_BY)
    try:
        vocab = Vocabulary.from_json(info["vocabulary"])
        net = build_captioner(info["architecture"])
        max_length = int(info.get("max_length", MAX_TOKENS - 1))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StriateError(f"{folder} does not hold a readable striate captioner ({e})") from e
    try:
        net.load_state_dict(load_file(str(folder / "weights.safetensors")))
    except (OSError, RuntimeError, SafetensorError) as e:
        raise StriateError(f"{folder / 'weights.safetensors'} does not fit model.json ({e})") from e
    ids = vocab.encode([PAD, START, END]).tolist()
    task = Captioning(pad=ids[0], start=ids[1], end=ids[2], max_length=max_length)
    return Captioner(net.to(device).eval(), vocab, task, dict(info.get("metrics", {})))


def evaluate_captioner(
    run: str | os.PathLike,
    *,
    beam: int = 1,
    length_norm: float = 0.0,
    device: str = "auto",
    progress: bool = True,
    held_out: bool = False,
) -> dict[str, float]:
    """Loss, token accuracy and BLEU-1…4 of a trained run on its test scenes (drawn again from
    its saved seed), by greedy decoding (`beam` 1) or beam search; with `held_out`, on the test
    scenes that show a (colour, shape) pair held out of its training (ConfigError if none)."""
    run = Path(run)
    config = saved_settings(run, CaptionConfig, MADE_BY)
    positive_int("evaluate_captioner", "beam", beam)
    number("evaluate_captioner", "length_norm", length_norm, low=0)
    captioner = load_captioner(run)
    test_set = _scenes(config, "test")
    if test_set.vocab != captioner.vocab:
        raise StriateError(f"the model of {run} was trained with another vocabulary")
    if held_out:
        unseen = held_out_scenes(config, test_set)
        if unseen is None:
            raise ConfigError(
                f"{run} held no (colour, shape) pair out of training (or its test scenes show "
                f"none): train with --hold-out 'red triangle' to measure that"
            )
        test_set = unseen
    task = captioner.task
    task.regularizer = config.regularizer
    trainer = Trainer(epochs=1, task=task, device=device, progress=progress)
    loader = CaptionLoader(test_set, 256, shuffle=False, device=trainer.device)
    return trainer.evaluate(captioner.net, loader, beam=beam, length_norm=length_norm)


def as_uint8_images(arrays: Sequence[np.ndarray]) -> list[torch.Tensor]:
    """H×W×C (or H×W) uint8 arrays as 1×3×H×W tensors: grey repeated, alpha dropped."""
    out = []
    for a in arrays:
        t = torch.from_numpy(np.array(a, dtype=np.uint8))
        t = t[..., None] if t.dim() == 2 else t
        if t.dim() != 3 or t.shape[2] == 0:
            raise InputError(f"predict_caption: an image must be H×W×C, got {tuple(t.shape)}")
        t = t.permute(2, 0, 1)[None]
        out.append(t.expand(1, 3, *t.shape[2:]) if t.shape[1] == 1 else t[:, :3])
    return out


def predict_caption(
    run: str | os.PathLike | Captioner,
    images: Sequence[np.ndarray] | torch.Tensor,
    *,
    beam: int = 1,
    length_norm: float = 0.0,
    device: str | torch.device = "cpu",
) -> list[tuple[str, Decoded]]:
    """The caption of each image (uint8 N×3×H×W, or H×W×C arrays as `read_images` gives) by a
    trained run, with its decoding (tokens, attention maps)."""
    captioner = run if isinstance(run, Captioner) else load_captioner(run, device)
    tensor = isinstance(images, torch.Tensor)
    batches = list(images.split(1)) if tensor else as_uint8_images(images)
    results = []
    for x in batches:  # a few files, each its own size
        texts, decoded = captioner.caption(x, beam=beam, length_norm=length_norm)
        results.append((texts[0], decoded))
    return results
