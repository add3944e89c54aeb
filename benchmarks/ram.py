"""The recurrent attention model against a CNN given the whole image, on 60×60 cluttered MNIST at a
CPU budget (Mnih, Heess, Graves & Kavukcuoglu 2014, "Recurrent Models of Visual Attention").

    python benchmarks/ram.py                                   # ~6 min on 1 thread
    python benchmarks/ram.py --ram-steps 20000 --cnn-steps 3000 --train 60000
    python benchmarks/ram.py --quick                           # a smoke test; records nothing

Data: the digits of a stratified subset of MNIST (--train images of its training set, --test of
its test set) placed at random in a 60×60 canvas with 4 distractor 8×8 patches cut from other
digits (`striate.spatial.cluttered`, train seed 1, test seed 2) — our reading of the paper's
sec. 4.1 "Cluttered Translated MNIST" for 60×60; the STN paper's variant uses six 6×6 patches.

RAM: the paper's 60×60 settings (12×12 glimpses at 3 scales, 8 glimpses, a 256-unit ReLU core,
h_g = h_l = 128, g = 256), location std 0.22, the hybrid loss (cross-entropy + REINFORCE with a
learned baseline, reward 1 when right after the last glimpse; the location policy reads a
detached core state, see striate.rl.attention_model), Adam. CNN: conv 9×9 (32) - pool -
conv 7×7 (32) - pool - FC on the whole image (the STN paper's baseline CNN), same batches and
optimiser, cross-entropy. Each gets its own number of steps (a step of RAM costs much less than
one of the CNN); both are reported with their wall times. Test accuracy: RAM at its policy's mean
locations (no sampling).

The paper's Table 2 for 60×60 cluttered translated MNIST, as we remember it (the paper's text
could not be opened from this machine to check): Convolutional, 2 layers 7.83% error; RAM 4 / 6 /
8 glimpses 7.1 / 5.88 / 5.23%, after far longer training than here.

Appends one JSON line to results/ram.jsonl and draws the glimpse paths of test images to
docs/rl/ram_glimpses.png.
"""

from __future__ import annotations

import argparse
import datetime
import time
from pathlib import Path

import torch

from _common import (
    RESULTS,
    append_record,
    cpu_name,
    print_machine,
    print_table,
    results_dir,
    row,
    shared_data,
    stratified_subset,
)
from striate import load_dataset
from striate._atomic import atomic_path
from striate.rl.attention_figures import glimpse_figure
from striate.rl.attention_model import RAMConfig, RecurrentAttention
from striate.rl.attention_training import FitConfig, accuracy, fit, whole_image_cnn
from striate.spatial.cluttered import cluttered

RECORD = RESULTS / "ram.jsonl"
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "rl" / "ram_glimpses.png"
CANVAS, DISTRACTORS, PATCH, SHOW = 60, 4, 8, 16


def cluttered_set(split: str, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = stratified_subset(load_dataset("mnist", split, root=shared_data(), progress=False), size)
    images, _ = cluttered(ds.images, seed=seed, canvas=CANVAS, distractors=DISTRACTORS, patch=PATCH)
    return images, ds.labels


def timed_fit(model, images, labels, cfg: FitConfig) -> tuple[list[dict], float]:
    t0 = time.perf_counter()
    history = fit(model, images, labels, cfg, progress=True)
    return history, time.perf_counter() - t0


def sampled_accuracy(model: RecurrentAttention, images, labels) -> float:
    """Test accuracy with glimpse locations drawn from the policy (as in training)."""
    torch.manual_seed(0)
    with torch.no_grad():
        model.eval()
        hits = [
            (model(images[i : i + 500], sample=True).logits.argmax(1) == labels[i : i + 500])
            for i in range(0, len(images), 500)
        ]
    return float(torch.cat(hits).float().mean())


def draw(model: RecurrentAttention, images, labels, path: Path, caption: str) -> None:
    with torch.no_grad():
        model.eval()
        out = model(images, sample=False)
    predicted = out.logits.argmax(1)
    fig = glimpse_figure(
        images, out.locations, model.glimpse.sensor.sizes, labels, predicted, title=caption
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=20_000, help="training images")
    parser.add_argument("--test", type=int, default=5_000, help="test images")
    parser.add_argument("--ram-steps", type=int, default=4000)
    parser.add_argument("--cnn-steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--std", type=float, default=0.22, help="location policy's std")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="a smoke test; records nothing")
    parser.add_argument("--record", type=Path, default=RECORD, help="JSON-lines record")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.test, args.ram_steps, args.cnn_steps = 500, 200, 20, 5
    torch.set_num_threads(args.threads)

    train_x, train_y = cluttered_set("train", args.train, seed=1)
    test_x, test_y = cluttered_set("test", args.test, seed=2)

    torch.manual_seed(args.seed)
    ram = RecurrentAttention(RAMConfig(in_shape=(1, CANVAS, CANVAS), std=args.std))
    ram_cfg = FitConfig(steps=args.ram_steps, batch=args.batch, lr=args.lr, seed=args.seed)
    ram_history, ram_s = timed_fit(ram, train_x, train_y, ram_cfg)
    ram_acc = accuracy(ram, test_x, test_y)
    print(f"RAM: test accuracy {100 * ram_acc:.2f}% after {args.ram_steps} steps ({ram_s:.0f} s)")

    torch.manual_seed(args.seed)
    cnn = whole_image_cnn((1, CANVAS, CANVAS))
    cnn_cfg = FitConfig(steps=args.cnn_steps, batch=args.batch, lr=args.lr, seed=args.seed)
    _, cnn_s = timed_fit(cnn, train_x, train_y, cnn_cfg)
    cnn_acc = accuracy(cnn, test_x, test_y)
    print(f"CNN: test accuracy {100 * cnn_acc:.2f}% after {args.cnn_steps} steps ({cnn_s:.0f} s)")

    figure = results_dir(True) / "ram_glimpses.png" if args.quick else FIGURE
    caption = (
        f"RAM on {CANVAS}×{CANVAS} cluttered MNIST: glimpse paths (green first, red last), "
        f"test accuracy {100 * ram_acc:.1f}% (CNN {100 * cnn_acc:.1f}%)"
    )
    draw(ram, test_x[:SHOW], test_y[:SHOW], figure, caption)

    last = ram_history[-200:]
    entry = {
        "canvas": CANVAS,
        "distractors": DISTRACTORS,
        "patch": PATCH,
        "train": len(train_x),
        "test": len(test_x),
        "batch": args.batch,
        "lr": args.lr,
        "seed": args.seed,
        "glimpses": ram.cfg.glimpses,
        "glimpse": ram.cfg.glimpse,
        "scales": ram.cfg.scales,
        "std": ram.cfg.std,
        "ram_steps": args.ram_steps,
        "cnn_steps": args.cnn_steps,
        "ram_accuracy": ram_acc,
        "cnn_accuracy": cnn_acc,
        "ram_train_reward_last_200": sum(r["reward"] for r in last) / len(last),
        "ram_s": ram_s,
        "cnn_s": cnn_s,
        "ram_accuracy_sampled": sampled_accuracy(ram, test_x, test_y),
        "device": cpu_name(torch.get_num_threads()),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    if not args.quick:
        append_record(args.record, [entry])
        print(f"appended to {args.record}")
    section = f"{CANVAS}×{CANVAS} cluttered MNIST ({len(train_x)} train, {len(test_x)} test)"
    print_table(
        [
            row(
                section,
                f"RAM, {ram.cfg.glimpses} glimpses",
                100 * ram_acc,
                "% acc",
                f"{args.ram_steps} steps, {ram_s:.0f} s",
            ),
            row(
                section,
                "CNN, whole image",
                100 * cnn_acc,
                "% acc",
                f"{args.cnn_steps} steps, {cnn_s:.0f} s",
            ),
        ]
    )


if __name__ == "__main__":
    print_machine()
    main()
