"""Transfer learning on CIFAR-10 (JPEG copy): pretrain on six classes, transfer to the other four.

    python benchmarks/transfer_cifar10.py                          # everything (~25 min, 2 cores)
    python benchmarks/transfer_cifar10.py --sections source,target-100
    python benchmarks/transfer_cifar10.py --quick                  # subsets: a smoke test

Lecture 7's table of when to use which (CS231n 2017; Donahue et al. 2014, arXiv:1310.1531;
Razavian et al. 2014, arXiv:1403.6382): with very little data of a similar task, a linear
classifier on the top layer's features; with quite a lot, fine-tune a few layers. Here:

source: ``resnet20`` (He et al. 2016, arXiv:1512.03385; 0.27 M parameters) trained from scratch
on all 30,000 training images of airplane, automobile, bird, cat, deer and dog (CIFAR-10 labels
0-5), SOURCE_EPOCHS epochs (5.5-7 min on 2 cores at one torch thread, 0.35-0.45 s per step) with the
settings of ``striate train``: batch 128, flip + crop, SGD with Nesterov momentum 0.9, weight
decay 5e-4, 1cycle up to SOURCE_LR. SOURCE_LR = 0.1 lies between the suggestion (0.013) and the
minimum (0.15) of an LR-finder sweep on this data (80 steps, 1e-4 to 10) made while writing this
script. The model is written with ``save_model`` (weights + model.json with its normalisation)
and read back by the target runs from that folder, as ``--weights PATH`` does. Reported: its
accuracy on the 6,000 source test images.

target: frog, horse, ship, truck (labels 6-9, relabelled 0-3): two animals and two vehicles, so
the task is similar to the source one (the table's left column). Every method sees the same
stratified subset of PER_CLASS training images per class (seed s) and is tested on all 4,000
test images of the four classes; every network method trains TARGET_EPOCHS epochs of batch
TARGET_BATCH with flip + crop and 1cycle, normalised with the *source* statistics (read from
model.json, as ``striate train --weights`` does). Networks are assembled by ``prepare`` (the
6-class head replaced by a fresh 4-class one, the layers frozen as --finetune says): the library
path of ``striate train --model resnet20 --weights PATH --finetune MODE --lr-factor F``.

- scratch: the same architecture, random initialisation (seed s), lr 0.1 as the source run.
- frozen features + softmax / kNN: ``FeatureExtractor`` (the 64 averaged features before ``fc``)
  then striate.classic ``LinearClassifier(loss="softmax")`` at its defaults, and
  ``KNNClassifier`` (l2) with k chosen by 5-fold cross-validation on the training features
  (``select_k``). No augmentation: one feature vector per training image.
- head (Trainer): ``finetune="head"``: ``fc`` alone is trained (lr 0.1), the rest frozen with
  its batch-norm statistics kept (``FreezeFrozen``).
- last:2: ``layer3`` and ``fc`` trained, lr 0.03 for ``fc`` and 0.01 for ``layer3``
  (``lr_factor`` 3, Howard & Ruder 2018, arXiv:1801.06146).
- all, lr_factor 3: every group, ``fc`` at 0.03 and each earlier group 3x smaller
  (``layer3`` 0.01, ``layer2`` 3.3e-3, ``layer1`` 1.1e-3, ``bn1`` 3.7e-4, ``conv1`` 1.2e-4).
- all, one lr: every layer at 0.03 (plain fine-tuning).

The learning rates and epochs were fixed before the runs, not tuned on the test images (there is
no validation split of 400 images worth the name). target-100 repeats everything for SEEDS (the
subset, the head's initialisation and the data order change with the seed) and reports the mean
± std; target-1000 is the lectures' other axis, 1,000 images per class, one seed, fewer epochs
(TARGET_EPOCHS_1000; 800 steps against 240). The bar chart of both goes to
results/transfer_cifar10.png. torch runs one thread unless --threads says otherwise.
"""

from __future__ import annotations

import functools
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from _common import (
    print_machine,
    results_dir,
    row,
    run_sections,
    shared_data,
    stratified_subset,
    timed,
)
from striate import load_dataset
from striate.classic import KNNClassifier, LinearClassifier
from striate.classic.knn import select_k
from striate.data import ImageSet, Normalizer
from striate.models.io import load_model, save_model
from striate.train.assembly import RunData, prepare
from striate.train.config import TrainConfig
from striate.train.transfer import FeatureExtractor, layer_groups

CIFAR = "cifar10/cifar10-jpeg.zip"
SOURCE = ("airplane", "automobile", "bird", "cat", "deer", "dog")
TARGET = ("frog", "horse", "ship", "truck")
MODEL, AUGMENT = "resnet20", "flip,crop"
SOURCE_EPOCHS, SOURCE_BATCH, SOURCE_LR = 4, 128, 0.1
PER_CLASS, TARGET_EPOCHS, TARGET_BATCH, SEEDS = 100, 30, 50, (0, 1, 2)
PER_CLASS_1000, TARGET_EPOCHS_1000, SEEDS_1000 = 1_000, 10, (0,)
FT_LR, LR_FACTOR = 0.03, 3.0
# --quick: a smoke test of every code path in about a minute
QUICK_SOURCE, QUICK_SOURCE_TEST, QUICK_PER_CLASS, QUICK_PER_CLASS_1000 = 1_200, 300, 20, 40
QUICK_TEST, QUICK_EPOCHS, QUICK_SEEDS = 200, 4, (0, 1)


@dataclass(frozen=True)
class Method:
    """One way of solving the target task: a network run (finetune mode) or frozen features."""

    name: str
    kind: str  # "scratch", "finetune" or "features"
    finetune: str = "all"
    lr: float = FT_LR
    lr_factor: float = 1.0


METHODS = (
    Method("scratch", "scratch", lr=SOURCE_LR),
    Method("frozen features + softmax", "features"),
    Method("frozen features + kNN", "features"),
    Method("head (Trainer)", "finetune", "head", lr=SOURCE_LR),
    Method("last:2, lr_factor 3", "finetune", "last:2", lr_factor=LR_FACTOR),
    Method("all, lr_factor 3", "finetune", "all", lr_factor=LR_FACTOR),
    Method("all, one lr", "finetune", "all"),
)


def classes_subset(ds: ImageSet, names: tuple[str, ...]) -> ImageSet:
    """The images of the classes `names`, relabelled 0..len(names)-1 in that order."""
    code = torch.full((len(ds.classes),), -1, dtype=torch.int64)
    for new, name in enumerate(names):
        code[ds.classes.index(name)] = new
    labels = code[ds.labels]
    keep = labels >= 0
    return ImageSet(ds.images[keep], labels[keep], names, f"{ds.source} [{', '.join(names)}]")


@functools.cache
def cifar10() -> tuple[ImageSet, ImageSet]:
    path = shared_data() / CIFAR
    return load_dataset(path, "train", progress=False), load_dataset(path, "test", progress=False)


def config(**kw) -> TrainConfig:
    """`striate train`'s settings for this benchmark (kw: epochs, batch_size, lr, ...)."""
    return TrainConfig(model=MODEL, augment=AUGMENT, val_size=0.0, **kw)


def pretrained(quick: bool) -> tuple[Path, float, float, int]:
    """(the source model's folder, its source test accuracy in %, training seconds, steps)."""
    train, test = (classes_subset(s, SOURCE) for s in cifar10())
    if quick:
        train = stratified_subset(train, QUICK_SOURCE, 0)
        test = stratified_subset(test, QUICK_SOURCE_TEST, 0)
    cfg = config(
        epochs=1 if quick else SOURCE_EPOCHS,
        batch_size=SOURCE_BATCH,
        lr=SOURCE_LR,
    )
    run = prepare(cfg, progress=False, data=RunData(train, None, test, Normalizer().fit(train)))
    model, trainer, norm = run.model, run.trainer, run.data.normalizer
    _, seconds = timed(lambda: trainer.fit(model, run.train))
    acc = 100 * trainer.evaluate(model, run.test)["acc"]
    folder = Path(tempfile.mkdtemp(prefix="striate-transfer-")) / "source"
    save_model(
        folder,
        model,
        classes=train.classes,
        in_shape=train.shape,
        normalization=norm.state_dict(),
        metrics={"test_acc": acc / 100},
    )
    print(
        f"source: {MODEL} on {len(train):,} images of {len(SOURCE)} classes, {trainer.step} steps "
        f"in {seconds:.0f} s, test {acc:.2f}% on {len(test):,}; saved to {folder}",
        flush=True,
    )
    return folder, acc, seconds, trainer.step


def bench_source(quick: bool) -> list[dict]:
    """Pretraining on the six source classes: test accuracy and time."""
    _, acc, seconds, steps = pretrained(quick)
    n = QUICK_SOURCE if quick else 30_000
    return [
        row("source", f"{MODEL}, {len(SOURCE)} classes: test acc", acc, "%", "chance 16.67 %"),
        row("source", "pretraining time", seconds, "s", f"{steps} steps, {n:,} images"),
    ]


# --------------------------------------------------------------------------- target


def target_data(quick: bool, per_class: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """`per_class` training images per target class (stratified, seed) and the test images."""
    train, test = (classes_subset(s, TARGET) for s in cifar10())
    train = stratified_subset(train, per_class * len(TARGET), seed)
    if quick:
        test = stratified_subset(test, QUICK_TEST, 0)
    return train, test


def run_method(
    m: Method, train: ImageSet, test: ImageSet, seed: int, epochs: int, quick: bool
) -> tuple[float, float, str]:
    """(test accuracy in %, seconds, a note) of method `m` on one target subset."""
    source, *_ = pretrained(quick)
    weights = None if m.kind == "scratch" else str(source)
    if m.kind == "features":
        return features_method(m, source, train, test, seed)
    cfg = config(
        weights=weights,
        finetune=m.finetune,
        lr_factor=m.lr_factor,
        epochs=epochs,
        batch_size=TARGET_BATCH,
        lr=m.lr,
        seed=seed,
    )
    # prepare normalises with the source's mean and std from its model.json (the target's own
    # for scratch), loads the weights and freezes what cfg.finetune says
    run = prepare(cfg, progress=False, data=RunData(train, None, test, Normalizer().fit(train)))
    model, trainer = run.model, run.trainer
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = frozen_state(model)
    _, seconds = timed(lambda: trainer.fit(model, run.train))
    moved = [k for k, v in frozen_state(model).items() if not torch.equal(v, frozen[k])]
    if moved:  # a frozen group must keep its weights and its batch-norm statistics
        raise AssertionError(f"{m.name}: frozen tensors changed in training: {moved[:5]}")
    acc = 100 * trainer.evaluate(model, run.test)["acc"]
    return acc, seconds, f"{trainable:,} trained params, {trainer.step} steps"


def frozen_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters and buffers of the layer groups that have nothing to train."""
    return {
        f"{name}.{k}": v.detach().clone()
        for name, group in layer_groups(model)
        if not any(p.requires_grad for p in group.parameters())
        for k, v in group.state_dict().items()
    }


def features_method(
    m: Method, source: Path, train: ImageSet, test: ImageSet, seed: int
) -> tuple[float, float, str]:
    """A classic classifier on the frozen source network's features."""

    def fit_and_score() -> tuple[float, str]:
        # load_model's ImageClassifier normalises with the source statistics itself
        extract = FeatureExtractor(load_model(source))
        f_train, f_test = extract.transform(train), extract.transform(test)
        y_train, y_test = train.labels.numpy(), test.labels.numpy()
        if "kNN" in m.name:
            folds = min(5, int(train.class_counts().min()))
            ks = [k for k in (1, 3, 5, 8, 10, 15, 20, 30, 50) if k < len(train) * 0.6]
            k = select_k(f_train, y_train, ks=ks, folds=folds, random_state=seed).best_k
            clf = KNNClassifier(n_neighbors=k).fit(f_train, y_train)
            note = f"k = {k} (CV), {f_train.shape[1]} features"
        else:
            clf = LinearClassifier(loss="softmax", random_state=seed)
            clf.fit(f_train, y_train)
            note = f"{f_train.shape[1]} features, reg {clf.reg:g}, {clf.n_iter_} SGD steps"
        return 100 * float(np.mean(clf.predict(f_test) == y_test)), note

    (acc, note), seconds = timed(fit_and_score)
    return acc, seconds, note + " (time includes feature extraction)"


def bench_target(quick: bool, per_class: int, epochs: int, seeds: tuple[int, ...]) -> list[dict]:
    """Every method on `per_class` images per target class, for each seed; mean ± std."""
    section = f"target-{per_class}"
    accs: dict[str, list[float]] = {m.name: [] for m in METHODS}
    times: dict[str, list[float]] = {m.name: [] for m in METHODS}
    notes: dict[str, str] = {}
    for seed in seeds:
        train, test = target_data(quick, per_class, seed)
        for m in METHODS:
            acc, seconds, note = run_method(m, train, test, seed, epochs, quick)
            accs[m.name].append(acc)
            times[m.name].append(seconds)
            notes[m.name] = note
            print(f"{section} seed {seed}: {m.name}: {acc:.2f}% ({seconds:.0f} s; {note})")
    RESULTS_BY_SECTION[section] = accs
    rows = []
    for m in METHODS:
        a = accs[m.name]
        spread = (
            f"± {statistics.stdev(a):.2f} over seeds {', '.join(map(str, seeds))}: "
            + ", ".join(f"{v:.2f}" for v in a)
            if len(a) > 1
            else f"seed {seeds[0]}"
        )
        rows.append(row(section, f"{m.name}: test acc", statistics.mean(a), "%", spread))
    for m in METHODS:
        rows.append(
            row(section, f"{m.name}: time", statistics.mean(times[m.name]), "s", notes[m.name])
        )
    _plot(quick)
    return rows


RESULTS_BY_SECTION: dict[str, dict[str, list[float]]] = {}


def bench_target_100(quick: bool) -> list[dict]:
    """The lecture's "very little data": 100 images per target class, 3 seeds."""
    per_class = QUICK_PER_CLASS if quick else PER_CLASS
    epochs = QUICK_EPOCHS if quick else TARGET_EPOCHS
    return bench_target(quick, per_class, epochs, QUICK_SEEDS if quick else SEEDS)


def bench_target_1000(quick: bool) -> list[dict]:
    """The lecture's "quite a lot of data": 1,000 images per target class, one seed."""
    per_class = QUICK_PER_CLASS_1000 if quick else PER_CLASS_1000
    epochs = QUICK_EPOCHS if quick else TARGET_EPOCHS_1000
    return bench_target(quick, per_class, epochs, QUICK_SEEDS[:1] if quick else SEEDS_1000)


def _plot(quick: bool) -> None:
    """Bar chart of target test accuracy per method, one bar per data size run so far."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.4), layout="constrained")
    ax = fig.add_subplot()
    sections = list(RESULTS_BY_SECTION)
    width = 0.8 / len(sections)
    x = np.arange(len(METHODS))
    for i, section in enumerate(sections):
        accs = RESULTS_BY_SECTION[section]
        means = [statistics.mean(accs[m.name]) for m in METHODS]
        n = len(next(iter(accs.values())))
        stds = [statistics.stdev(accs[m.name]) for m in METHODS] if n > 1 else None
        label = f"{section.removeprefix('target-')} per class ({n} seed{'s' * (n > 1)})"
        bars = ax.bar(
            x + (i - (len(sections) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=3,
            label=label,
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
    ax.axhline(25, color="grey", linestyle=":", linewidth=1, label="chance (4 classes)")
    ax.set_xticks(
        x, [m.name.replace(", ", ",\n").replace(" + ", "\n+ ") for m in METHODS], fontsize=8
    )
    ax.set_ylabel("target test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"{MODEL} pretrained on {len(SOURCE)} CIFAR-10 classes, transferred to {', '.join(TARGET)}",
        fontsize=9,
    )
    fig.legend(fontsize=8, loc="outside lower center", ncols=3)
    out = results_dir(quick) / "transfer_cifar10.png"
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)", flush=True)


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "source": bench_source,
    "target-100": bench_target_100,
    "target-1000": bench_target_1000,
}


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)  # the default here; --threads N (applied after) overrides it
    run_sections(__doc__, SECTIONS, argv)


if __name__ == "__main__":
    print_machine()
    main()
