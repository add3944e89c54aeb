"""CIFAR-10 (JPEG copy) ConvNet: snapshot ensembles against their members and a single cosine run.

    python benchmarks/snapshot_ensemble_cifar10.py                       # all three sections
    python benchmarks/snapshot_ensemble_cifar10.py --sections cosine,fge # the two that go together
    python benchmarks/snapshot_ensemble_cifar10.py --quick               # subsets: a smoke test

The setting (constants below) is that of train_cifar10_schedules.py but on a stratified
TRAIN_SIZE = 5,000-image subset (seed 0) of the 50,000 training images: the registry's "convnet"
(0.59 M parameters, PyTorch's default init from seed 0); flip + random crop (padding 4); a
Normalizer fitted on the subset; batch 128, SGD with Nesterov momentum 0.9, weight decay 5e-4 (not
on biases and BatchNorm), cross entropy. Test accuracy is on all 10,000 test images, without
test-time augmentation, in fp32. One seed.

cosine: CYCLES x CYCLE_EPOCHS = 32 epochs of one cosine decay from LR = 0.05 to 0.

snapshots: Huang et al. 2017 (arXiv:1704.00109), "Snapshot ensembles: train 1, get M for free":
the same budget as ``schedule="sgdr"`` (Loshchilov & Hutter 2017) with CYCLES = 4 cosine cycles of
8 epochs from LR to 0, the `Snapshots` callback saving the model at the end of each cycle. Each
snapshot alone, the ensembles of the first k and of the last k snapshots (the mean of their
softmax probabilities, `evaluate_ensemble`). Plot: results/snapshot_ensemble_sgdr.png. On this
CPU budget each cycle still ends 3-5 points above the last, and the ensemble falls behind its last
member (see BENCHMARKS.md).

fge: FGE_CYCLES = 4 SGDR cycles of FGE_CYCLE_EPOCHS = 2 epochs from FGE_LR = 0.01 to 0, started
from the trained cosine model, a snapshot at the end of each (the short cycles near a trained
solution of fast geometric ensembling, Garipov et al. 2018, arXiv:1802.10026): the snapshots are
about equally good and still differ. Plot (each snapshot, the ensembles of the first k, the cosine
model): results/snapshot_ensemble.png.

torch runs one thread unless --threads says otherwise (faster on the shared 2-core machine).
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from _common import cifar10_jpeg, print_machine, results_dir, row, run_sections, timed
from striate import models
from striate.data import BatchLoader, ImageSet, Normalizer
from striate.data.augment_spec import parse_augment
from striate.device import resolve_device
from striate.engine import Trainer
from striate.models.io import save_model
from striate.train import Snapshots, evaluate_ensemble, snapshot_paths
from striate.train.ensemble import plot_ensemble

TRAIN_SIZE, BATCH, SEED = 5_000, 128, 0
CYCLES, CYCLE_EPOCHS, LR = 4, 8, 0.05
MOMENTUM, WEIGHT_DECAY, AUGMENT = 0.9, 5e-4, "flip,crop"
FGE_CYCLES, FGE_CYCLE_EPOCHS, FGE_LR = 4, 2, 0.01
QUICK_TRAIN, QUICK_TEST, QUICK_CYCLES, QUICK_CYCLE_EPOCHS = 1_024, 500, 3, 1


def cifar10(quick: bool) -> tuple[ImageSet, ImageSet, Normalizer]:
    """The training subset, the test set and the Normalizer fitted on the training subset."""
    if quick:
        return cifar10_jpeg(QUICK_TRAIN, QUICK_TEST, SEED)
    return cifar10_jpeg(TRAIN_SIZE, None, SEED)


def schedule_length(quick: bool) -> tuple[int, int]:
    """(cycles, epochs per cycle)."""
    return (QUICK_CYCLES, QUICK_CYCLE_EPOCHS) if quick else (CYCLES, CYCLE_EPOCHS)


def train(
    quick: bool, schedule: str, callbacks=(), start=None, cycles=None, cycle_epochs=None, lr=LR
) -> tuple[torch.nn.Module, float]:
    """Train the ConvNet with `schedule` (from the weights of `start`, if given); (model, s)."""
    if cycles is None:
        cycles, cycle_epochs = schedule_length(quick)
    train_set, _, norm = cifar10(quick)
    device = resolve_device("auto")
    loader = BatchLoader(
        train_set,
        BATCH,
        shuffle=True,
        augment=parse_augment(AUGMENT, train_set.shape, train_set.num_classes),
        normalize=norm,
        device=device,
        seed=SEED,
    )
    torch.manual_seed(SEED)
    model = models.create("convnet", num_classes=10, in_shape=(3, 32, 32))
    if start is not None:
        model.load_state_dict(start.state_dict())
    options = {"T_0": cycle_epochs} if schedule == "sgdr" else {}
    trainer = Trainer(
        epochs=cycles * cycle_epochs,
        opt="sgd",
        lr=lr,
        momentum=MOMENTUM,
        nesterov=True,
        weight_decay=WEIGHT_DECAY,
        schedule=schedule,
        schedule_options=options,
        seed=SEED,
        device=device,
        progress=False,
        tensorboard=False,
        callbacks=callbacks,
    )
    _, seconds = timed(lambda: trainer.fit(model, loader))
    return model, seconds


@functools.cache
def work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="striate-snapshots-"))


def bench_snapshots(quick: bool) -> list[dict]:
    """One SGDR run with a snapshot per cycle: each snapshot, and the ensembles of the first k."""
    cycles, cycle_epochs = schedule_length(quick)
    _, test, _ = cifar10(quick)
    folder = work_dir() / "snapshots"
    _, seconds = train(quick, "sgdr", [Snapshots(folder=folder)])
    paths = snapshot_paths(folder)
    names = [f"snapshot {k} (epoch {k * cycle_epochs})" for k in range(1, len(paths) + 1)]
    result, eval_seconds = timed(lambda: evaluate_ensemble(paths, test, names=names))
    rows = []
    for k, (name, m, p) in enumerate(
        zip(names, result.members, result.prefixes, strict=True), start=1
    ):
        print(
            f"snapshots: {name}: {100 * m['acc']:.2f}% (loss {m['loss']:.4f}); ensemble of 1..{k}: "
            f"{100 * p['acc']:.2f}% (loss {p['loss']:.4f})",
            flush=True,
        )
        rows.append(row("snapshots", f"{name}: test acc", 100 * m["acc"], "%"))
        rows.append(row("snapshots", f"ensemble of snapshots 1..{k}: test acc", 100 * p["acc"], "%",
                        f"loss {p['loss']:.4f}"))  # fmt: skip
    # the ensembles of the last k snapshots (Huang et al.'s Table 4 shape): the same members,
    # evaluated in reverse order, so that their first k are the last k
    last = evaluate_ensemble(paths[::-1], test, names=names[::-1])
    for k, p in enumerate(last.prefixes[1:], start=2):
        print(f"snapshots: ensemble of the last {k}: {100 * p['acc']:.2f}%", flush=True)
        rows.append(row("snapshots", f"ensemble of the last {k} snapshots: test acc",
                        100 * p["acc"], "%", f"loss {p['loss']:.4f}"))  # fmt: skip
    best = result.best_member
    rows.append(
        row(
            "snapshots",
            "ensemble - best member",
            100 * result.gain,
            "%",
            f"best member: {result.names[best]}",
        )  # fmt: skip
    )
    budget = f"{cycles} cycles x {cycle_epochs} epochs of {len(cifar10(quick)[0]):,} images"
    rows.append(row("snapshots", "train time", seconds, "s", budget))
    rows.append(row("snapshots", "evaluation time", eval_seconds, "s", f"{len(paths)} models"))
    reference = _cosine_result(quick)
    fig = plot_ensemble(
        result,
        title=f"CIFAR-10 convnet, SGDR {cycles} x {cycle_epochs} epochs, lr {LR}: "
        f"{len(test):,} test images",
    )
    if reference is not None:
        ax = fig.axes[0]
        ax.axhline(100 * reference, color="C2", ls="--", label=f"cosine, {cycles * cycle_epochs} "
                   f"epochs, one model")  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 100 * reference - 1), max(hi, 100 * reference + 1))
    out = results_dir(quick) / "snapshot_ensemble_sgdr.png"
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(f"snapshots: wrote {out} ({out.stat().st_size / 1024:.0f} KB)", flush=True)
    return rows


_COSINE: dict[bool, float] = {}
_COSINE_MODEL: dict[bool, torch.nn.Module] = {}


def _cosine_result(quick: bool) -> float | None:
    return _COSINE.get(quick)


def bench_cosine(quick: bool) -> list[dict]:
    """One cosine decay over the same budget: the single model it buys."""
    cycles, cycle_epochs = schedule_length(quick)
    _, test, norm = cifar10(quick)
    model, seconds = train(quick, "cosine")
    path = save_model(
        work_dir() / "cosine",
        model,
        classes=test.classes,
        in_shape=test.shape,
        normalization=norm.state_dict(),
    )
    m = evaluate_ensemble([path], test).members[0]
    _COSINE[quick], _COSINE_MODEL[quick] = m["acc"], model
    print(f"cosine: {100 * m['acc']:.2f}% (loss {m['loss']:.4f}), {seconds:.0f} s", flush=True)
    return [
        row("cosine", "one cosine cycle: test acc", 100 * m["acc"], "%", f"loss {m['loss']:.4f}"),
        row("cosine", "train time", seconds, "s", f"{cycles * cycle_epochs} epochs"),
    ]


def bench_fge(quick: bool) -> list[dict]:
    """Snapshots of short SGDR cycles started from the trained cosine model (fast geometric
    ensembling, Garipov et al. 2018): each cycle starts near a good solution, so the snapshots
    are about equally good and still differ."""
    if quick not in _COSINE_MODEL:
        bench_cosine(quick)
    cycles, cycle_epochs = (QUICK_CYCLES, 1) if quick else (FGE_CYCLES, FGE_CYCLE_EPOCHS)
    _, test, _ = cifar10(quick)
    folder = work_dir() / "fge"
    _, seconds = train(
        quick, "sgdr", [Snapshots(folder=folder)], _COSINE_MODEL[quick], cycles, cycle_epochs,
        FGE_LR,
    )  # fmt: skip
    paths = snapshot_paths(folder)
    names = [f"fge {k} (+{k * cycle_epochs} ep)" for k in range(1, len(paths) + 1)]
    result = evaluate_ensemble(paths, test, names=names)
    rows = [row("fge", "start: the cosine model", 100 * _COSINE[quick], "%")]
    for k, (name, m, p) in enumerate(
        zip(names, result.members, result.prefixes, strict=True), start=1
    ):
        print(f"fge: {name}: {100 * m['acc']:.2f}%; ensemble of 1..{k}: {100 * p['acc']:.2f}%")
        rows.append(row("fge", f"{name}: test acc", 100 * m["acc"], "%", f"loss {m['loss']:.4f}"))
        rows.append(row("fge", f"ensemble of 1..{k}: test acc", 100 * p["acc"], "%",
                        f"loss {p['loss']:.4f}"))  # fmt: skip
    rows.append(row("fge", "ensemble - best member", 100 * result.gain, "%",
                    f"best member: {result.names[result.best_member]}"))  # fmt: skip
    rows.append(row("fge", "train time", seconds, "s",
                    f"{cycles} cycles x {cycle_epochs} epochs, lr {FGE_LR} -> 0"))  # fmt: skip
    fig = plot_ensemble(
        result,
        title=f"CIFAR-10 convnet: {cycles} SGDR cycles of {cycle_epochs} epochs (lr {FGE_LR}) "
        f"after the cosine run",
    )
    ax = fig.axes[0]
    ax.axhline(100 * _COSINE[quick], color="C2", ls="--", label="the cosine model (start)")
    ax.legend(loc="lower right", fontsize=8)
    lo, hi = ax.get_ylim()
    ax.set_ylim(min(lo, 100 * _COSINE[quick] - 1), max(hi, 100 * _COSINE[quick] + 1))
    out = results_dir(quick) / "snapshot_ensemble.png"
    fig.savefig(out, dpi=90, bbox_inches="tight")
    print(f"fge: wrote {out}", flush=True)
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "cosine": bench_cosine,  # first, so that the snapshot plot can show it
    "snapshots": bench_snapshots,
    "fge": bench_fge,
}


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)  # the default here; --threads N (applied after) overrides it
    run_sections(__doc__, SECTIONS, argv)


if __name__ == "__main__":
    print_machine()
    main()
