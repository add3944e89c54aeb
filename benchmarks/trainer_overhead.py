"""Trainer overhead: striate's Trainer against a hand-written PyTorch loop and Lightning's Trainer.

    python benchmarks/trainer_overhead.py              # the full run (about 6 minutes on 2 cores)
    python benchmarks/trainer_overhead.py --quick      # a few hundred images, a smoke test
    python benchmarks/trainer_overhead.py --threads 1  # fix torch's thread count

On a machine shared with other work use --threads 1: with every core busy, torch's threads wait
on one another and a step can take twice as long, at random.

The same job for every program: convnet_small on the first IMAGES MNIST training images (batches
from one seeded BatchLoader each, already normalised and on the device), SGD with momentum 0.9 at a
constant lr, cross entropy, fp32, EPOCHS epochs, the same initial weights and torch threads.

- hand-written loop: ``zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward();
  opt.step()`` and ``loss.item()`` kept per step; nothing else.
- striate: ``Trainer(progress=True, out=tmpdir)``: rich progress bar, steps.csv/metrics.csv and
  checkpoints (last + best) every epoch, running loss/accuracy on the device.
- Lightning (the `bench` extra): a LightningModule around the same model, its default progress bar
  (rich where rich is installed, as it is with striate), CSVLogger (every step), ModelCheckpoint.

Each program runs ROUNDS times, interleaved and in rotating order, after one untimed warm-up run
each; the table shows medians. "fit" is the wall time of the whole call, setup included (CPU time
of the process, all threads, in the note and its own ratio row: it moves less than wall time when
other work shares the machine); "per epoch after the first" is (fit of E epochs − fit of 1 epoch)
/ (E − 1), which leaves out startup and the first epoch. The acceptance line for striate is a fit
at most 5% slower than the loop. The first ratio row of each program compares its final weights
and last loss with the loop's: the same batches and initial weights give the same training.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from _common import (
    RESULTS,
    print_machine,
    row,
    run_sections,
    same_malloc_as_trainer,
    shared_data,
    timed,
)
from striate import models
from striate.data import BatchLoader, Normalizer, load_dataset
from striate.data.imageset import ImageSet
from striate.device import resolve_device
from striate.engine import Trainer

IMAGES, EPOCHS, ROUNDS = 6_000, 3, 5
QUICK_IMAGES, QUICK_EPOCHS, QUICK_ROUNDS = 512, 2, 1
BATCH, LR, MOMENTUM, SEED = 128, 0.05, 0.9, 0
MNIST_MEAN, MNIST_STD = [0.1307], [0.3081]

# A program trains `model` in place for `epochs` epochs on `loader`, writing what it writes into
# the folder it is given, and returns the loss of every step.
Program = Callable[[nn.Module, BatchLoader, int, Path], list[float]]


# --------------------------------------------------------------------------- the programs


def hand_loop(model: nn.Module, loader: BatchLoader, epochs: int, out: Path) -> list[float]:
    """The plain PyTorch loop: the floor that the Trainer's overhead is measured against."""
    with same_malloc_as_trainer():  # the malloc setting the Trainer trains under
        return _hand_loop(model, loader, epochs)


def _hand_loop(model: nn.Module, loader: BatchLoader, epochs: int) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def striate_program(channels_last: bool | str) -> Program:
    """striate's Trainer with progress bar, CSV logging and checkpoints on."""

    def fit(model: nn.Module, loader: BatchLoader, epochs: int, out: Path) -> list[float]:
        trainer = Trainer(
            epochs=epochs,
            opt="sgd",
            lr=LR,
            momentum=MOMENTUM,
            precision="fp32",
            channels_last=channels_last,
            device=loader.device,
            progress=True,
            out=out,
            tensorboard=False,
        )
        trainer.fit(model, loader)
        return trainer.steps_log["loss"]

    return fit


def lightning_program(device: torch.device) -> Program | None:
    """Lightning's Trainer on the same job, or None where Lightning is not installed."""
    try:
        from _trainer_overhead_lightning import lightning_fit
    except ImportError:
        return None

    def fit(model: nn.Module, loader: BatchLoader, epochs: int, out: Path) -> list[float]:
        with same_malloc_as_trainer():
            return lightning_fit(
                model, loader, epochs, out, lr=LR, momentum=MOMENTUM, device=device
            )

    return fit


# --------------------------------------------------------------------------- measuring

LOOP = "hand-written loop"


@dataclass
class Run:
    """One timed run: wall and CPU seconds (this process, all its threads), step losses and the
    final weights."""

    wall: float
    cpu: float
    losses: list[float]
    weights: dict[str, torch.Tensor]


def _run(program: Program, init: dict[str, torch.Tensor], data: ImageSet, epochs: int) -> Run:
    """Train a fresh convnet_small from the weights `init` with `program` and time it."""
    model = models.create("convnet_small", num_classes=10, in_shape=tuple(data.images.shape[1:]))
    model.load_state_dict(init)
    device = resolve_device("auto")
    model.to(device)
    loader = BatchLoader(
        data,
        BATCH,
        normalize=Normalizer(mean=MNIST_MEAN, std=MNIST_STD),
        device=device,
        seed=SEED,
    )
    threads = torch.get_num_threads()
    gc.collect()
    with tempfile.TemporaryDirectory() as out:
        cpu = time.process_time()
        losses, wall = timed(lambda: _synced(program, model, loader, epochs, Path(out)))
        cpu = time.process_time() - cpu
    if torch.get_num_threads() != threads:  # a program must not change the job of the others
        raise RuntimeError(
            f"a run changed torch's threads from {threads} to {torch.get_num_threads()}"
        )
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Run(wall, cpu, losses, weights)


def _synced(program: Program, model: nn.Module, loader: BatchLoader, epochs: int, out: Path):
    # What the programs print (bars, epoch lines, Lightning's model summary) goes to stderr, so
    # that stdout holds the table alone.
    with contextlib.redirect_stdout(sys.stderr):
        losses = program(model, loader, epochs, out)
    if loader.device.type == "cuda":
        torch.cuda.synchronize(loader.device)
    return losses


def _relative_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """‖a − b‖ / ‖b‖ over every floating-point entry of two state dicts (weights, BN statistics)."""
    keys = [k for k in b if b[k].is_floating_point()]
    diff = torch.cat([(a[k].double() - b[k].double()).flatten() for k in keys])
    return float(diff.norm() / torch.cat([b[k].double().flatten() for k in keys]).norm())


def bench_overhead(quick: bool) -> list[dict]:
    """The programs of the module docstring, interleaved; medians, ratios to the loop."""
    if quick:
        n, epochs, rounds = QUICK_IMAGES, QUICK_EPOCHS, QUICK_ROUNDS
    else:
        n, epochs, rounds = IMAGES, EPOCHS, ROUNDS
    data = load_dataset("mnist", "train", root=shared_data())[:n]
    torch.manual_seed(SEED)
    init = copy.deepcopy(
        models.create("convnet_small", num_classes=10, in_shape=(1, 28, 28)).state_dict()
    )
    device = resolve_device("auto")
    programs: dict[str, Program] = {
        LOOP: hand_loop,
        "striate Trainer": striate_program(False),
        "striate Trainer, channels_last='auto'": striate_program("auto"),
    }
    notes = {
        LOOP: "zero_grad/forward/CE/backward/step + loss.item() per step",
        "striate Trainer": "rich bar + CSV + checkpoints, fp32, channels_last=False",
        "striate Trainer, channels_last='auto'": "as above, channels-last memory (other "
        "kernels round differently, so its weights drift from the loop's)",
    }
    lightning = lightning_program(device)
    if lightning is not None:
        from _trainer_overhead_lightning import BAR, VERSION

        programs["Lightning Trainer"] = lightning
        notes["Lightning Trainer"] = (
            f"lightning {VERSION}: its default ({BAR}) bar, CSVLogger, ModelCheckpoint"
        )

    # Warm-up (untimed): first-call costs (oneDNN kernel setup, lazy imports) belong to no one.
    for program in programs.values():
        _run(program, init, data[: 4 * BATCH], 1)

    names = list(programs)
    full: dict[str, list[Run]] = {k: [] for k in names}
    one: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotating order
            full[name].append(_run(programs[name], init, data, epochs))
            one[name].append(_run(programs[name], init, data, 1).wall)

    wall = {k: statistics.median(x.wall for x in full[k]) for k in names}
    cpu = {k: statistics.median(x.cpu for x in full[k]) for k in names}
    per_epoch = {
        k: (wall[k] - statistics.median(one[k])) / (epochs - 1) if epochs > 1 else math.nan
        for k in names
    }
    steps = len(full[LOOP][-1].losses) // epochs
    job = (
        f"{n:,} MNIST images, batch {BATCH}, {epochs} epochs × {steps} steps, "
        f"{torch.get_num_threads()} threads, {device.type}, median of {rounds}"
    )
    notes[LOOP] = f"{job}; {notes[LOOP]}"
    rows = []
    for k in names:
        rounds_note = " / ".join(f"{x.wall:.2f}" for x in full[k])
        note = f"{notes[k]}; rounds {rounds_note}; CPU {cpu[k]:.2f} s"
        rows.append(row("overhead", f"{k}: fit", wall[k], "s", note))
    for k in names:
        rows.append(row("overhead", f"{k}: per epoch after the first", per_epoch[k], "s"))
    ref = full[LOOP][-1]
    for k in names[1:]:
        last = full[k][-1]
        agree = (
            f"last loss {last.losses[-1]:.6f} vs loop {ref.losses[-1]:.6f}, "
            f"weights differ by {_relative_diff(last.weights, ref.weights):.1e} (relative)"
        )
        if len(last.losses) != len(ref.losses):
            agree += f"; {len(last.losses)} steps vs the loop's {len(ref.losses)}"
        target = " (target ≤ 1.05)" if k == "striate Trainer" else ""
        rows += [
            row("overhead", f"{k} / loop: fit", wall[k] / wall[LOOP], "×", agree + target),
            row("overhead", f"{k} / loop: fit, CPU time", cpu[k] / cpu[LOOP], "×"),
            row("overhead", f"{k} / loop: per epoch", per_epoch[k] / per_epoch[LOOP], "×"),
        ]
    if lightning is None:
        rows.append(
            row(
                "overhead",
                "Lightning Trainer",
                math.nan,
                "",
                "not installed: pip install -e '.[bench]'",
            )
        )
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {"overhead": bench_overhead}


def main(argv: list[str] | None = None) -> None:
    run_sections(__doc__, SECTIONS, argv, record=RESULTS / "trainer_overhead.jsonl")


if __name__ == "__main__":
    print_machine()
    main()
