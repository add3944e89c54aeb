"""Autoencoder pretraining for few labels on MNIST: a classifier initialised from the encoder vs
the same network from scratch, 100 labels per class (issue 18; lecture 12 of the reference).

    python benchmarks/autoencoder_pretraining.py               # ~1 min, one thread
    python benchmarks/autoencoder_pretraining.py --quick       # a smoke test; records nothing

An mlp `Autoencoder` (784-256-32, BCE, Adam 1e-3, batch 128, --ae-epochs) learns from all 60,000
training images without their labels (`train_autoencoder`). Then --k labelled images per class
(`per_class`, seed s) fine-tune `classifier_from_encoder(ae, 10)` and, with the same batches and
budget (--epochs of batch 50, Adam 1e-3, seed s), its scratch twin `classifier_like_encoder`;
also the frozen encoder with a trained head (a linear probe). Test accuracy on the 10,000 test
images; mean ± half the range over the seeds. Appends to results/autoencoder_pretraining.jsonl and
rewrites the ``autoencoder_pretraining`` table of BENCHMARKS.md when its markers exist.
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch

from _common import RESULTS, append_record, cpu_name, print_machine, shared_data, write_table
from striate import load_dataset
from striate.data import BatchLoader
from striate.engine import Trainer
from striate.generative.pretraining import (
    classifier_from_encoder,
    classifier_like_encoder,
    per_class,
)
from striate.generative.run import train_autoencoder

RECORD = RESULTS / "autoencoder_pretraining.jsonl"
QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")
BUILD = {
    "encoder-initialised": lambda ae: classifier_from_encoder(ae, 10),
    "from scratch": lambda ae: classifier_like_encoder(ae, 10),
    "frozen encoder (linear probe)": lambda ae: classifier_from_encoder(ae, 10, freeze=True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, default=100, help="labelled images per class")
    p.add_argument("--ae-epochs", type=int, default=10)
    p.add_argument("--epochs", type=int, default=50, help="fine-tuning epochs")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    root = str(shared_data())
    t0 = time.perf_counter()
    ae_settings = dict(root=root, epochs=args.ae_epochs, test_size=1000, seed=0)
    ae_settings.update(device="cpu", precision="fp32")
    if args.quick:
        ae_settings.update(train_size=2000, test_size=500, epochs=1)
        args.epochs, args.seeds = 3, 1
    ae = train_autoencoder("mnist", **ae_settings).model
    ae_s = time.perf_counter() - t0
    print(f"autoencoder trained on {'2,000' if args.quick else '60,000'} images in {ae_s:.0f} s")
    train = load_dataset("mnist", "train", root)
    test = BatchLoader(load_dataset("mnist", "test", root), 1000, shuffle=False, device="cpu")
    acc: dict[str, list[float]] = {name: [] for name in BUILD}
    for seed in range(args.seeds):
        few = per_class(train, args.k, seed=seed)
        for name, build in BUILD.items():
            torch.manual_seed(seed)  # the same head (and scratch encoder) draws
            net = build(ae)
            trainer = Trainer(epochs=args.epochs, opt="adam", lr=1e-3, seed=seed, **QUIET)
            trainer.fit(net, BatchLoader(few, 50, device="cpu", seed=seed))
            acc[name].append(trainer.evaluate(net, test)["acc"])
            print(f"seed {seed} {name}: test accuracy {acc[name][-1]:.4f}", flush=True)
    total = time.perf_counter() - t0
    rows = []
    for name, values in acc.items():
        v = torch.tensor(values)
        rows.append(
            {
                "method": name,
                "mean_acc": float(v.mean()),
                "spread": float(v.max() - v.min()) / 2,
                "runs": values,
            }
        )
    common = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": cpu_name(1),
        "torch": torch.__version__,
        "k_per_class": args.k,
        "ae_epochs": args.ae_epochs if not args.quick else 1,
        "finetune_epochs": args.epochs,
        "seeds": args.seeds,
        "seconds": round(total, 1),
    }
    table = _table(rows, common)
    print(table)
    if not args.quick:
        append_record(RECORD, [{**common, **r} for r in rows])
        write_table("autoencoder_pretraining", table)


def _table(rows: list[dict], common: dict) -> str:
    lines = [
        f"MNIST, {common['k_per_class']} labels per class ({10 * common['k_per_class']} images), "
        f"autoencoder on 60k unlabelled images for {common['ae_epochs']} epochs, "
        f"{common['finetune_epochs']} fine-tuning epochs, {common['seeds']} seeds, "
        f"{common['device']}, {common['seconds']:.0f} s in all",
        "",
        "| classifier | test accuracy (%) | runs |",
        "|---|---|---|",
    ]
    for r in rows:
        runs = ", ".join(f"{100 * a:.2f}" for a in r["runs"])
        lines.append(
            f"| {r['method']} | {100 * r['mean_acc']:.2f} ± {100 * r['spread']:.2f} | {runs} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print_machine()
    main()
