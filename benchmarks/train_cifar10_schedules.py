"""CIFAR-10 (JPEG copy) ConvNet: the LR finder, then 1cycle against a constant learning rate.

    python benchmarks/train_cifar10_schedules.py                       # both (~12 min, 2 cores)
    python benchmarks/train_cifar10_schedules.py --sections lr-find    # one of them
    python benchmarks/train_cifar10_schedules.py --quick               # subsets: a smoke test

The setting shared by both sections, in the constants below: the registry's "convnet" with its
defaults ([(CONV3-BN-RELU)x2-MAXPOOL]x2 at widths 32, 64, then FC 128 and FC 10; 0.59 M parameters,
PyTorch's default init from seed 0); a stratified TRAIN_SIZE-image subset (seed 0) of the 50,000
training images, so that two trainings fit in about ten minutes on 2 CPU cores (one step of batch
128 takes ~0.3 s there); pixels / 255, flip + random crop (padding 4, reflect;
``parse_augment("flip,crop", ...)``), then normalised with a Normalizer fitted on that subset;
batch 128, SGD with momentum 0.9, weight decay 5e-4 (not on biases and BatchNorm), cross entropy.
Test accuracy is on all 10,000 test images, without test-time augmentation.

lr-find: ``Trainer(...).lr_find(model, train, start=1e-5, end=10, num_steps=100)`` under the same
conditions as the training (Gugger, "The 1cycle policy": batch size and weight decay change the
curve); the smoothed loss against the lr goes to results/cifar10_lr_find.png. Table: the
suggestion (the lr at the minimum of the smoothed loss / 10, Gugger's "one order of magnitude
before the minimum"), the steepest-descent lr, the lr at the minimum and where the test stopped.

onecycle: the same ConvNet, initial weights, data order and augmentation, EPOCHS epochs, trained
(a) with ``schedule="onecycle"``: lr from lr_max/10 up to lr_max over 45% of the steps, back down
over 45%, then to lr_max/1000; momentum 0.95 -> 0.85 -> 0.95 (Smith 2018, arXiv:1803.09820;
striate's OneCycle defaults); (b) with ``schedule="constant"`` at the suggestion, momentum 0.9.
lr_max follows the 1cycle post: "the value picked with the Learning Rate Finder", "a bit before the
minimum, where the loss still improves", and 1cycle "allows us to pick larger maximum learning
rates, closer to the minimum". The rule used: lr_max = ONECYCLE_FACTOR x suggestion, i.e. the
minimum's lr / 3.3, half-way (on the log axis) between the suggestion and the minimum. The lr and
momentum of every step of the 1cycle run go to results/cifar10_onecycle_steps.png. Both runs take
the same number of steps; a difference in their times is the shared machine's load, not the
schedule.

The lr-find result is computed once per process and shared by both sections. torch runs one
thread unless --threads says otherwise (on the shared 2-core machine one thread was 2x faster
than two: 13 s against 26 s for 40 steps).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from _common import cifar10_jpeg, print_machine, results_dir, row, run_sections, timed
from striate import models
from striate.data import BatchLoader, ImageSet, Normalizer
from striate.data.augment_spec import parse_augment
from striate.device import resolve_device
from striate.engine import LRFinderResult, Trainer
from striate.evaluate.curves import plot_steps

TRAIN_SIZE, EPOCHS, BATCH, SEED = 20_000, 5, 128, 0
MOMENTUM, WEIGHT_DECAY, AUGMENT = 0.9, 5e-4, "flip,crop"
FIND_START, FIND_END, FIND_STEPS = 1e-5, 10.0, 100
ONECYCLE_FACTOR = 3.0
FALLBACK_LR = 0.01  # when the finder has too few points for a suggestion (only in --quick)
QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS, QUICK_STEPS = 1_024, 500, 2, 30


def cifar10(quick: bool) -> tuple[ImageSet, ImageSet, Normalizer]:
    """The training subset, the test set and the Normalizer fitted on the training subset."""
    if quick:
        return cifar10_jpeg(QUICK_TRAIN, QUICK_TEST, SEED)
    return cifar10_jpeg(TRAIN_SIZE, None, SEED)


def convnet() -> torch.nn.Module:
    torch.manual_seed(SEED)
    return models.create("convnet", num_classes=10, in_shape=(3, 32, 32))


def train_loader(quick: bool, device: torch.device) -> BatchLoader:
    """Shuffled, augmented, normalised batches of the training subset (seed SEED)."""
    train, _, norm = cifar10(quick)
    augment = parse_augment(AUGMENT, train.shape, train.num_classes)
    return BatchLoader(
        train, BATCH, shuffle=True, augment=augment, normalize=norm, device=device, seed=SEED
    )


def trainer(epochs: int, schedule: str, lr: float) -> Trainer:
    return Trainer(
        epochs=epochs,
        opt="sgd",
        lr=lr,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        schedule=schedule,
        seed=SEED,
        progress=False,
    )


# --------------------------------------------------------------------------- lr-find


@functools.cache
def find_lr(quick: bool) -> tuple[LRFinderResult, float]:
    """The LR finder's result on the training setting, and its wall time in seconds."""
    t = trainer(1, "constant", 0.01)  # the lr is replaced by the sweep; the rest is the setting
    loader = train_loader(quick, t.device)
    steps = QUICK_STEPS if quick else FIND_STEPS
    result, seconds = timed(
        lambda: t.lr_find(convnet(), loader, start=FIND_START, end=FIND_END, num_steps=steps)
    )
    print(
        f"lr-find: {len(result.lrs)} steps in {seconds:.1f} s, stop {result.stop_reason}, "
        f"suggestion {result.suggestion}, steepest {result.steepest}",
        flush=True,
    )
    return result, seconds


def min_loss_lr(result: LRFinderResult) -> float:
    """The lr at the minimum of the smoothed loss over the points the suggestion looks at."""
    lrs, losses = result.lrs[10 : len(result.lrs) - 5], result.losses[10 : len(result.losses) - 5]
    if not lrs:
        return math.nan
    return lrs[min(range(len(losses)), key=losses.__getitem__)]


def suggested_lr(quick: bool) -> tuple[float, str]:
    """(the finder's suggestion, how it was obtained) with a fallback for tiny --quick runs."""
    result, _ = find_lr(quick)
    if result.suggestion is None:
        return FALLBACK_LR, f"no suggestion ({len(result.lrs)} points): fallback {FALLBACK_LR}"
    return result.suggestion, "LR finder suggestion"


def bench_lr_find(quick: bool) -> list[dict]:
    """The LR finder on the ConvNet; its plot and the learning rates it suggests."""
    result, seconds = find_lr(quick)
    out = results_dir(quick) / "cifar10_lr_find.png"
    fig = result.plot()
    fig.suptitle(
        f"CIFAR-10 (JPEG copy) convnet, batch {BATCH}, SGD momentum {MOMENTUM}, "
        f"wd {WEIGHT_DECAY:g}, {AUGMENT}",
        fontsize=9,
    )
    fig.savefig(out, dpi=90)
    print(f"lr-find: wrote {out} ({out.stat().st_size / 1024:.0f} KB)", flush=True)
    where = f"{len(result.lrs)} of {FIND_STEPS if not quick else QUICK_STEPS} steps"
    rows = []
    for name, lr in (
        ("suggestion (min / 10)", result.suggestion),
        ("steepest descent", result.steepest),
        ("minimum of the smoothed loss", min_loss_lr(result)),
        (f"stop lr ({result.stop_reason})", result.stop_lr),
    ):
        value = math.nan if lr is None else lr
        note = "none: the test ran all its steps" if lr is None else f"lr {value:.3g}"
        rows.append(row("lr-find", name, value, "lr", note))
    rows.append(row("lr-find", "time", seconds, "s", where))
    return rows


# --------------------------------------------------------------------------- onecycle


def bench_onecycle(quick: bool) -> list[dict]:
    """1cycle at lr_max = ONECYCLE_FACTOR x suggestion against a constant lr = suggestion."""
    suggestion, how = suggested_lr(quick)
    lr_max = ONECYCLE_FACTOR * suggestion
    epochs = QUICK_EPOCHS if quick else EPOCHS
    device = resolve_device("auto")
    _, test, norm = cifar10(quick)
    test_loader = BatchLoader(test, 500, shuffle=False, normalize=norm, device=device)
    rows: list[dict] = []
    for name, schedule, lr, note in (
        (
            "1cycle",
            "onecycle",
            lr_max,
            f"lr {lr_max / 10:.3g} -> {lr_max:.3g} -> {lr_max / 1000:.2g}, momentum 0.95-0.85",
        ),
        ("constant lr", "constant", suggestion, f"lr {suggestion:.3g} ({how}), momentum 0.9"),
    ):
        t = trainer(epochs, schedule, lr)
        model = convnet()
        _, seconds = timed(lambda t=t, model=model: t.fit(model, train_loader(quick, device)))
        metrics = t.evaluate(model, test_loader)
        acc, train_acc = 100 * metrics["acc"], 100 * t.history[-1]["train_acc"]
        print(
            f"onecycle {name}: test {acc:.2f}%, train (running, last epoch) {train_acc:.2f}%, "
            f"{seconds:.0f} s",
            flush=True,
        )
        steps = f"{t.step} steps: {epochs} epochs of {len(cifar10(quick)[0]):,} images"
        rows.append(row("onecycle", f"{name}: test acc", acc, "%", note))
        rows.append(row("onecycle", f"{name}: train time", seconds, "s", steps))
        if schedule == "onecycle":
            out = results_dir(quick) / "cifar10_onecycle_steps.png"
            fig = plot_steps(t.steps_log)
            fig.suptitle(
                f"1cycle, lr_max {lr_max:.3g}: lr, momentum, training loss", fontsize=9, y=1.03
            )
            fig.savefig(out, dpi=80, bbox_inches="tight")
            print(f"onecycle: wrote {out} ({out.stat().st_size / 1024:.0f} KB)", flush=True)
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "lr-find": bench_lr_find,
    "onecycle": bench_onecycle,
}


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)  # the default here; --threads N (applied after) overrides it
    run_sections(__doc__, SECTIONS, argv)


if __name__ == "__main__":
    print_machine()
    main()
