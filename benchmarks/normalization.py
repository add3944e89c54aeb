"""Batch, layer, instance and group norm on one network and dataset, at batch sizes 2 to 128.

    python benchmarks/normalization.py          # the comparison and figures (~6 min, 2 cores)
    python benchmarks/normalization.py --quick  # tiny subsets, two batch sizes: a smoke test

The lecture's point (CS231n lecture 7; Wu and He, "Group Normalization", ECCV 2018, Fig. 1): batch
norm's statistics come from the minibatch, so at small batches they are noisy and the running
averages used at test time disagree with them; layer, instance and group norm average within each
example and do not depend on the batch. The setting, in the constants below: the registry's
"convnet_small" ([CONV3-NORM-RELU-MAXPOOL]x2 at widths 32, 64, FC 128, FC 10) with ``norm=`` each
of the four (group norm: 8 groups), PyTorch's default init from seed 0; a stratified TRAIN_SIZE
subset (seed 0) of the CIFAR-10 JPEG copy's training images, normalised by a Normalizer fitted on
it, no augmentation; EPOCHS epochs at every batch size, SGD momentum 0.9, weight decay 5e-4, a
constant lr scaled linearly with the batch (Goyal et al. 2017, arXiv:1706.02677: lr = BASE_LR x
batch / 128, so every batch size takes the same total step of lr per epoch); through striate's
Trainer. Test accuracy on a stratified TEST_SIZE subset of the test images, in eval mode (batch
norm on its running statistics). One seed: differences of a point or two are noise.

Writes benchmarks/results/normalization.jsonl (one row per norm and batch size), and to
docs/normalization/: accuracy.png (accuracy against batch size, one line per norm), cube.png (the
axes each norm averages over) and the table printed here.
"""

from __future__ import annotations

import copy
import datetime
import json
import platform
import sys
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
import torch

from _common import cifar10_jpeg, row, run_sections, timed
from striate import models
from striate.data import BatchLoader
from striate.engine import Trainer

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NORMS = ("batch", "layer", "instance", "group")
BATCHES = (2, 8, 32, 128)
TRAIN_SIZE, TEST_SIZE, EPOCHS, SEED = 4_000, 2_000, 3, 0
BASE_LR, BASE_BATCH, MOMENTUM, WEIGHT_DECAY, GROUPS = 0.05, 128, 0.9, 5e-4, 8
QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS, QUICK_BATCHES = 256, 200, 1, (4, 64)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "normalization"
RECORD = ROOT / "benchmarks" / "results" / "normalization.jsonl"


def train_one(norm: str, batch: int, quick: bool) -> tuple[float, float, float, float]:
    """(test accuracy %, test accuracy % in train mode at batches of ``batch``, last epoch's
    running train accuracy %, seconds) of one run."""
    train, test, normalizer = cifar10_jpeg(QUICK_TRAIN, QUICK_TEST, SEED) if quick else _data()
    torch.manual_seed(SEED)
    model = models.create(
        "convnet_small", num_classes=10, in_shape=(3, 32, 32), norm=norm, norm_groups=GROUPS
    )
    trainer = Trainer(
        epochs=QUICK_EPOCHS if quick else EPOCHS,
        opt="sgd",
        lr=BASE_LR * batch / BASE_BATCH,
        momentum=MOMENTUM,
        weight_decay=WEIGHT_DECAY,
        schedule="constant",
        seed=SEED,
        device="cpu",
        progress=False,
    )
    loader = BatchLoader(train, batch, shuffle=True, normalize=normalizer, device="cpu", seed=SEED)
    _, seconds = timed(lambda: trainer.fit(model, loader))
    test_loader = BatchLoader(test, 500, shuffle=False, normalize=normalizer, device="cpu")
    acc = 100 * trainer.evaluate(model, test_loader)["acc"]
    return (
        acc,
        train_mode_accuracy(model, test, normalizer, batch),
        trainer.history[-1]["train_acc"] * 100,
        seconds,
    )


def train_mode_accuracy(model: torch.nn.Module, test, normalizer, batch: int) -> float:
    """Test accuracy (%) of a copy of ``model`` left in train mode, scored in batches of
    ``batch`` drawn at random: batch norm then uses each batch's statistics (the doctor's
    batchnorm check)."""
    probe = copy.deepcopy(model).train()
    # shuffled: the test set is stored class by class, and a batch of one class would give
    # batch norm the statistics of that class (far worse than the random batches it trained on)
    loader = BatchLoader(test, batch, shuffle=True, normalize=normalizer, device="cpu", seed=SEED)
    correct = 0
    with torch.no_grad():
        for b in loader:
            correct += int((probe(b[0]).argmax(1) == b[1]).sum())
    return 100 * correct / len(test)


_CACHE: dict = {}


def _data():
    if "full" not in _CACHE:
        _CACHE["full"] = cifar10_jpeg(TRAIN_SIZE, TEST_SIZE, SEED)
    return _CACHE["full"]


def plot_accuracy(
    results: dict[tuple[str, int], float],
    batches: tuple[int, ...],
    train_mode: dict[tuple[str, int], float] | None = None,
):
    """Test accuracy against batch size (log axis), one line per norm; dashed, batch norm scored
    in train mode at its training batch size."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for norm, marker in zip(NORMS, "osD^", strict=True):
        ax.plot(batches, [results[norm, b] for b in batches], marker=marker, label=f"{norm} norm")
    if train_mode is not None:
        ax.plot(
            batches,
            [train_mode["batch", b] for b in batches],
            "o--",
            color="C0",
            alpha=0.6,
            label="batch norm, scored in train mode",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size (lr scaled linearly)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("CIFAR-10 subset, convnet_small, same epochs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_cubes():
    """Wu and He 2018, Fig. 2: the N×C×(H·W) cube of a feature batch four times, the entries
    that share one mean and variance shaded (for one choice of them)."""
    fig = plt.figure(figsize=(10, 3.0))
    n, c, hw = 6, 6, 6
    titles = ("Batch norm", "Layer norm", "Instance norm", "Group norm")
    for k, title in enumerate(titles):
        ax = fig.add_subplot(1, 4, k + 1, projection="3d")
        shade = np.zeros((n, c, hw), dtype=bool)  # axes: N (x), C (y), H·W (z)
        if k == 0:
            shade[:, 0, :] = True  # one channel, every example and position
        elif k == 1:
            shade[0, :, :] = True  # one example, every channel and position
        elif k == 2:
            shade[0, 0, :] = True  # one example, one channel
        else:
            shade[0, :2, :] = True  # one example, one group of channels
        ax.voxels(shade, facecolors="#3b6fd4", edgecolor=(0.1, 0.1, 0.3, 0.5), linewidth=0.4)
        for a, b in _cube_edges(n, c, hw):  # the whole N×C×(H·W) block as an outline
            ax.plot(*zip(a, b, strict=True), color="0.35", linewidth=0.8)
        for i in range(1, n):  # one slice per example along N, faint
            ax.plot([i, i], [0, 0], [0, hw], color="0.75", linewidth=0.4)
            ax.plot([i, i], [0, c], [hw, hw], color="0.75", linewidth=0.4)
        ax.set_axis_off()
        ax.text(n / 2, -1.2, -0.6, "N", ha="center", fontsize=9)
        ax.text(n + 0.9, c / 2, -0.6, "C", ha="center", fontsize=9)
        ax.text(-0.9, -0.4, hw / 2, "H, W", ha="center", fontsize=9)
        ax.view_init(elev=20, azim=-60)
        ax.set_box_aspect((1, 1, 1))
        ax.set_title(title, fontsize=10, pad=0)
    fig.suptitle(
        "Shaded: the entries that share one mean and variance (Wu and He 2018, Fig. 2)",
        fontsize=9,
        y=0.04,
    )
    fig.subplots_adjust(left=0, right=1, top=0.92, bottom=0.08, wspace=0.02)
    return fig


def _cube_edges(n: int, c: int, hw: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    corners = [(x, y, z) for x in (0, n) for y in (0, c) for z in (0, hw)]
    return [
        (a, b)
        for i, a in enumerate(corners)
        for b in corners[i + 1 :]
        if sum(p != q for p, q in zip(a, b, strict=True)) == 1
    ]


def table_markdown(
    results: dict, train: dict, train_mode: dict, seconds: dict, batches: tuple[int, ...]
) -> str:
    head = "| norm | " + " | ".join(f"batch {b}" for b in batches) + " |"
    lines = [head, "|" + " --- |" * (len(batches) + 1)]
    for norm in NORMS:
        cells = " | ".join(f"{results[norm, b]:.1f}" for b in batches)
        lines.append(f"| {norm} | {cells} |")
    lines.append("| lr | " + " | ".join(f"{BASE_LR * b / BASE_BATCH:.2g}" for b in batches) + " |")
    cells = " | ".join(f"{train_mode['batch', b]:.1f}" for b in batches)
    lines.append(f"| batch, evaluated in train mode | {cells} |")
    lines.append("")
    diff = max(abs(train_mode[k] - results[k]) for k in results if k[0] != "batch")
    lines.append(
        "Layer, instance and group norm in train mode against eval mode: largest difference "
        f"{diff:.2f} points (they do not depend on the batch)."
    )
    lines.append(
        "Train accuracy (running, last epoch; batch norm in train mode): "
        + "; ".join(
            f"{norm} " + ", ".join(f"{train[norm, b]:.0f}" for b in batches) for norm in NORMS
        )
    )
    total = sum(seconds.values())
    lines.append(f"Training time, all {len(seconds)} runs: {total / 60:.1f} min.")
    return "\n".join(lines)


def bench_compare(quick: bool) -> list[dict]:
    batches = QUICK_BATCHES if quick else BATCHES
    results, train, train_mode, seconds = {}, {}, {}, {}
    rows = []
    for batch in batches:
        for norm in NORMS:
            acc, acc_tm, train_acc, s = train_one(norm, batch, quick)
            results[norm, batch], train[norm, batch], seconds[norm, batch] = acc, train_acc, s
            train_mode[norm, batch] = acc_tm
            print(
                f"{norm:8s} batch {batch:4d}: test {acc:.1f}% (train mode {acc_tm:.1f}%), "
                f"train {train_acc:.1f}%, {s:.0f} s",
                flush=True,
            )
            rows.append(
                row(
                    "compare",
                    f"{norm} norm, batch {batch}",
                    acc,
                    "%",
                    f"lr {BASE_LR * batch / BASE_BATCH:.3g}, train {train_acc:.1f}%, {s:.0f} s",
                )
                | {
                    "norm": norm,
                    "batch": batch,
                    "test_acc_train_mode": acc_tm,
                    "train_acc": train_acc,
                    "seconds": s,
                }
            )
    out = DOCS if not quick else Path(_tmp())
    out.mkdir(parents=True, exist_ok=True)
    plot_accuracy(results, batches, train_mode).savefig(out / "accuracy.png", dpi=90)
    plot_cubes().savefig(out / "cube.png", dpi=80)
    text = table_markdown(results, train, train_mode, seconds, batches)
    (out / "table.md").write_text(text + "\n")
    print(text)
    print(f"wrote {out}/accuracy.png, cube.png, table.md")
    if not quick:
        record(rows)
    return rows


def record(rows: list[dict]) -> None:
    """Append the rows, dated, to RECORD (with the machine as _common describes it, or a short
    description when that cannot be computed)."""
    try:
        from _common import machine

        where = machine()
    except Exception as e:  # noqa: BLE001 - the record matters more than the machine's details
        where = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "note": f"_common.machine() failed: {type(e).__name__}",
        }
    date = datetime.date.today().isoformat()
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    with RECORD.open("a") as f:
        for r in rows:
            f.write(json.dumps({**r, "date": date, "machine": where}) + "\n")


def _tmp() -> str:
    return tempfile.mkdtemp(prefix="striate-norm-")


if __name__ == "__main__":
    if "--replot" in sys.argv:  # the plot again from the record's last run (no training)
        last = [json.loads(line) for line in RECORD.read_text().splitlines()][-16:]
        acc = {(r["norm"], r["batch"]): r["value"] for r in last}
        tm = {(r["norm"], r["batch"]): r["test_acc_train_mode"] for r in last}
        plot_accuracy(acc, BATCHES, tm).savefig(DOCS / "accuracy.png", dpi=90)
        sys.exit(0)
    if "--cube" in sys.argv:  # only the figure
        DOCS.mkdir(parents=True, exist_ok=True)
        plot_cubes().savefig(DOCS / "cube.png", dpi=80)
        sys.exit(0)
    torch.set_num_threads(1)
    run_sections(__doc__, {"compare": bench_compare})
