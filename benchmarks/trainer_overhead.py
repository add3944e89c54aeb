"""Trainer overhead: striate's Trainer against a hand-written PyTorch loop and Lightning's Trainer.

    python benchmarks/trainer_overhead.py              # the full run (about 4 minutes on 2 cores)
    python benchmarks/trainer_overhead.py --quick      # a few hundred images, a smoke test
    python benchmarks/trainer_overhead.py --threads 1  # fix torch's thread count

On a machine shared with other work use --threads 1: with every core busy, torch's threads wait
on one another and a step can take twice as long, at random.

The same job for every program: convnet-small on the first IMAGES MNIST training images (batches
from one seeded BatchLoader each, already normalised and on the device), SGD with momentum 0.9 at a
constant lr, cross entropy, fp32, EPOCHS epochs, the same initial weights and torch threads.

- hand-written loop: ``zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward();
  opt.step()`` and ``loss.item()`` kept per step; nothing else.
- striate: ``Trainer(progress=True, out=tmpdir)``: rich progress bar, steps.csv/metrics.csv and
  checkpoints (last + best) every epoch, running loss/accuracy on the device.
- Lightning (the `bench` extra): a LightningModule around the same model, its default progress bar
  (rich where rich is installed, as it is with striate), CSVLogger (every step), ModelCheckpoint.

Each program runs ROUNDS times, interleaved and in rotating order; the table shows medians. "fit"
is the whole call, setup included; "per epoch after the first" is (fit of E epochs − fit of 1
epoch) / (E − 1), which leaves out startup and the first epoch. The acceptance line for striate is
a fit at most 5% slower than the loop. The note of the ratio rows compares the final weights and
the last loss with the loop's: the same batches and initial weights give the same training.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from _common import run_sections, shared_data, timed
from striate import models
from striate.data import BatchLoader, Normalizer, load_dataset
from striate.data.imageset import ImageSet
from striate.device import resolve_device
from striate.train import Trainer

IMAGES, EPOCHS, ROUNDS = 12_000, 3, 3
QUICK_IMAGES, QUICK_EPOCHS, QUICK_ROUNDS = 512, 2, 1
BATCH, LR, MOMENTUM, SEED = 128, 0.05, 0.9, 0
MNIST_MEAN, MNIST_STD = [0.1307], [0.3081]

# A program trains `model` in place for `epochs` epochs on `loader`, writing what it writes into
# the folder it is given, and returns the loss of every step.
Program = Callable[[nn.Module, BatchLoader, int, Path], list[float]]


def row(section: str, program: str, value: float, unit: str, note: str = "") -> dict:
    return {"section": section, "program": program, "value": value, "unit": unit, "note": note}


# --------------------------------------------------------------------------- the programs


def hand_loop(model: nn.Module, loader: BatchLoader, epochs: int, out: Path) -> list[float]:
    """The plain PyTorch loop: the floor that the Trainer's overhead is measured against."""
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
        return lightning_fit(model, loader, epochs, out, lr=LR, momentum=MOMENTUM, device=device)

    return fit


# --------------------------------------------------------------------------- measuring


def _run(
    program: Program, init: dict[str, torch.Tensor], data: ImageSet, epochs: int
) -> tuple[float, list[float], dict[str, torch.Tensor]]:
    """Wall time, step losses and final weights of one run from the weights `init`."""
    model = models.create("convnet-small", num_classes=10, in_shape=tuple(data.images.shape[1:]))
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
        losses, seconds = timed(lambda: _synced(program, model, loader, epochs, Path(out)))
    if torch.get_num_threads() != threads:  # a program must not change the job of the others
        raise RuntimeError(
            f"a run changed torch's threads from {threads} to {torch.get_num_threads()}"
        )
    weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return seconds, losses, weights


def _synced(program: Program, model: nn.Module, loader: BatchLoader, epochs: int, out: Path):
    # What the programs print (bars, epoch lines, Lightning's model summary) goes to stderr, so
    # that stdout holds the table alone.
    with contextlib.redirect_stdout(sys.stderr):
        losses = program(model, loader, epochs, out)
    if loader.device.type == "cuda":
        torch.cuda.synchronize(loader.device)
    return losses


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def bench_overhead(quick: bool) -> list[dict]:
    """The programs of the module docstring, interleaved; medians, ratios to the loop."""
    if quick:
        n, epochs, rounds = QUICK_IMAGES, QUICK_EPOCHS, QUICK_ROUNDS
    else:
        n, epochs, rounds = IMAGES, EPOCHS, ROUNDS
    data = load_dataset("mnist", "train", root=shared_data())[:n]
    torch.manual_seed(SEED)
    init = copy.deepcopy(
        models.create("convnet-small", num_classes=10, in_shape=(1, 28, 28)).state_dict()
    )
    device = resolve_device("auto")
    programs: dict[str, Program] = {
        "hand-written loop": hand_loop,
        "striate Trainer": striate_program(False),
        "striate Trainer, channels_last='auto'": striate_program("auto"),
    }
    lightning = lightning_program(device)
    if lightning is not None:
        programs["Lightning Trainer"] = lightning

    # Warm-up (untimed): first-call costs (oneDNN kernel setup, lazy imports) belong to no one.
    warm = data[: 4 * BATCH]
    for program in programs.values():
        _run(program, init, warm, 1)

    names = list(programs)
    fit: dict[str, list[float]] = {k: [] for k in names}
    one: dict[str, list[float]] = {k: [] for k in names}
    last: dict[str, tuple[list[float], dict[str, torch.Tensor]]] = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds, losses, weights = _run(programs[name], init, data, epochs)
            fit[name].append(seconds)
            last[name] = (losses, weights)
            one[name].append(_run(programs[name], init, data, 1)[0])

    steps = len(last["hand-written loop"][0]) // epochs
    job = (
        f"{n:,} MNIST images, batch {BATCH}, {epochs} epochs × {steps} steps, "
        f"{torch.get_num_threads()} threads, {device.type}"
    )
    loop_losses, loop_weights = last["hand-written loop"]
    notes = {
        "hand-written loop": f"{job}; zero_grad/forward/CE/backward/step + loss.item()",
        "striate Trainer": "rich bar + CSV + checkpoints, fp32, channels_last=False",
        "striate Trainer, channels_last='auto'": "as above, channels-last convolutions",
    }
    if lightning is not None:
        from _trainer_overhead_lightning import BAR, VERSION

        notes["Lightning Trainer"] = (
            f"lightning {VERSION}: its default ({BAR}) bar, CSVLogger, ModelCheckpoint"
        )

    med_fit = {k: statistics.median(v) for k, v in fit.items()}
    med_epoch = {
        k: (med_fit[k] - statistics.median(one[k])) / (epochs - 1) if epochs > 1 else float("nan")
        for k in names
    }
    rows = []
    for k in names:
        rounds_note = "rounds " + " / ".join(f"{t:.2f}" for t in fit[k])
        rows.append(row("overhead", f"{k}: fit", med_fit[k], "s", f"{notes[k]}; {rounds_note}"))
    for k in names:
        rows.append(row("overhead", f"{k}: per epoch after the first", med_epoch[k], "s"))
    for k in names[1:]:
        losses, weights = last[k]
        agree = (
            f"last loss {losses[-1]:.6f} vs loop {loop_losses[-1]:.6f}, "
            f"max |Δweight| {_max_diff(weights, loop_weights):.1e}"
        )
        if len(losses) != len(loop_losses):
            agree += f"; {len(losses)} steps vs the loop's {len(loop_losses)}"
        ratio = med_fit[k] / med_fit["hand-written loop"]
        verdict = " (target ≤ 1.05)" if k == "striate Trainer" else ""
        rows.append(row("overhead", f"ratio {k} / loop: fit", ratio, "×", agree + verdict))
        ratio_epoch = med_epoch[k] / med_epoch["hand-written loop"]
        rows.append(row("overhead", f"ratio {k} / loop: per epoch", ratio_epoch, "×"))
    if lightning is None:
        rows.append(
            row(
                "overhead",
                "Lightning Trainer",
                float("nan"),
                "s",
                "not installed: pip install -e '.[bench]'",
            )
        )
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {"overhead": bench_overhead}


def main(argv: list[str] | None = None) -> None:
    run_sections(__doc__, SECTIONS, argv)


if __name__ == "__main__":
    main()
