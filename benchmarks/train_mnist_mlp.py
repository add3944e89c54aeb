"""MNIST MLP benchmarks: Gugger's "A Neural Net In PyTorch" reproduced, and the SGD variants.

    python benchmarks/train_mnist_mlp.py                          # both sections (~2 min, 2 cores)
    python benchmarks/train_mnist_mlp.py --sections reference     # one of them
    python benchmarks/train_mnist_mlp.py --quick                  # subsets: a smoke test

reference: the post's net, 784-100-10 with ReLU (``models.create("mlp", hidden=(100,))``, PyTorch's
default init), plain SGD (no momentum) at lr 0.01, batch 64, 10 epochs, cross entropy, fp32, on the
60,000 training images; test accuracy on the 10,000 test images, seeds 0, 1, 2. Inputs as in the
post's notebook ("First neural net in pytorch.ipynb"): pixels / 255, then normalised with the
training set's mean and std (0.1307, 0.3081; striate's Normalizer). The post reports 96.23%
(running) training accuracy after the 10th epoch and "a 96% accuracy" on the test set, 96.03% in
its notebook. The same runs without the normalisation (pixels / 255 only, as the post's text
describes the inputs) are reported too.

sgd-variants: the post "SGD Variants" trains that net once per optimiser "with the same initial
model" and plots the smoothed loss per mini-batch. Here: seed 0, the same initial weights and data
order for all, EPOCHS_VARIANTS epochs, normalised inputs. The post gives no learning rates; these
are the usual ones: SGD 0.01 (the post's net), SGD + momentum 0.9 and Nesterov 0.9 at 0.01,
RMSProp 1e-3 (torch's alpha 0.99, eps 1e-8 outside the square root; the post writes beta 0.9 with
eps inside), Adam 1e-3 with betas (0.9, 0.999). The smoothed curves (bias-corrected EMA, beta
0.98, as in the LR-finder post) go to results/mnist_sgd_variants.png.

torch runs one thread unless --threads says otherwise: the net is so small that each step is a few
dozen tiny kernels, and on a shared 2-core machine two torch threads wait on each other (measured
here: 300 steps took 0.22 s with one thread, 2-6 s with two while another process was busy).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable

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
from striate import load_dataset, models
from striate.data import BatchLoader, ImageSet, Normalizer
from striate.engine import Trainer
from striate.evaluate.curves import plot_losses, smooth

BATCH, LR, EPOCHS, SEEDS = 64, 0.01, 10, (0, 1, 2)
EPOCHS_VARIANTS = 2
POST_TEST_ACC, POST_NOTEBOOK_TEST_ACC, POST_TRAIN_ACC = 96.0, 96.03, 96.23
# name -> (striate optimiser, lr, momentum)
VARIANTS: dict[str, tuple[str, float, float]] = {
    "SGD lr 0.01": ("sgd", 0.01, 0.0),
    "SGD + momentum 0.9, lr 0.01": ("sgd", 0.01, 0.9),
    "Nesterov 0.9, lr 0.01": ("nesterov", 0.01, 0.9),
    "RMSProp lr 1e-3": ("rmsprop", 1e-3, 0.0),
    "Adam lr 1e-3": ("adam", 1e-3, 0.9),  # momentum is not used by Adam (betas are)
}
QUICK_TRAIN, QUICK_TEST = 2_000, 1_000


def mnist(quick: bool) -> tuple[ImageSet, ImageSet]:
    train = load_dataset("mnist", "train", root=shared_data())
    test = load_dataset("mnist", "test", root=shared_data())
    if quick:
        train, test = stratified_subset(train, QUICK_TRAIN), stratified_subset(test, QUICK_TEST)
    return train, test


def mlp(seed: int) -> torch.nn.Module:
    """The post's 784-100-10 ReLU net, PyTorch's default initialisation drawn from `seed`."""
    torch.manual_seed(seed)
    return models.create("mlp", num_classes=10, in_shape=(1, 28, 28), hidden=(100,))


def train_once(
    model: torch.nn.Module,
    train: ImageSet,
    test: ImageSet,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None,
    *,
    epochs: int,
    seed: int,
    opt: str = "sgd",
    lr: float = LR,
    momentum: float = 0.0,
) -> tuple[Trainer, dict[str, float], float]:
    """Train `model` in place; (trainer, test metrics, training seconds)."""
    trainer = Trainer(
        epochs=epochs,
        opt=opt,
        lr=lr,
        momentum=momentum,
        schedule="constant",
        precision="fp32",
        seed=seed,
        progress=False,
    )
    loader = BatchLoader(
        train, BATCH, shuffle=True, normalize=normalize, device=trainer.device, seed=seed
    )
    test_loader = BatchLoader(test, 1000, shuffle=False, normalize=normalize, device=trainer.device)
    _, seconds = timed(lambda: trainer.fit(model, loader))
    return trainer, trainer.evaluate(model, test_loader), seconds


# --------------------------------------------------------------------------- reference


def bench_reference(quick: bool) -> list[dict]:
    """The post's MLP, SGD lr 0.01, batch 64, 10 epochs; test accuracy per seed and the mean."""
    train, test = mnist(quick)
    epochs = 1 if quick else EPOCHS
    norm = Normalizer().fit(train)
    mean, std = norm.mean_.item(), norm.std_.item()
    rows: list[dict] = []
    for label, normalize in (
        (f"normalised (mean {mean:.4f}, std {std:.4f})", norm),
        ("pixels / 255 only", None),
    ):
        accs = []
        for seed in SEEDS:
            trainer, metrics, seconds = train_once(
                mlp(seed), train, test, normalize, epochs=epochs, seed=seed
            )
            acc, train_acc = 100 * metrics["acc"], 100 * trainer.history[-1]["train_acc"]
            accs.append(acc)
            print(
                f"reference {label} seed {seed}: test {acc:.2f}%, train (running, last epoch) "
                f"{train_acc:.2f}%, {seconds:.2f} s",
                flush=True,
            )
            rows.append(
                row(
                    "reference",
                    f"{label}, seed {seed}",
                    acc,
                    "%",
                    f"test acc; train acc (running, epoch {epochs}) {train_acc:.2f}%; "
                    f"{seconds:.2f} s",
                )
            )
        spread = f" ± {statistics.stdev(accs):.2f} (sd)" if len(accs) > 1 else ""
        rows.append(
            row(
                "reference",
                f"{label}, mean of {len(accs)} seeds",
                statistics.fmean(accs),
                "%",
                f"test acc{spread}",
            )
        )
    rows.append(
        row(
            "reference",
            "the post (Gugger, 'A Neural Net In PyTorch')",
            POST_NOTEBOOK_TEST_ACC,
            "%",
            f"test acc in its notebook (text: '96%'); train acc after 10 epochs {POST_TRAIN_ACC}%",
        )
    )
    return rows


# --------------------------------------------------------------------------- sgd variants


def bench_variants(quick: bool) -> list[dict]:
    """SGD, momentum, Nesterov, RMSProp and Adam from the same initial weights and data order."""
    train, test = mnist(quick)
    epochs = 1 if quick else EPOCHS_VARIANTS
    norm = Normalizer().fit(train)
    initial = mlp(0)
    curves: dict[str, list[float]] = {}
    rows: list[dict] = []
    for name, (opt, lr, momentum) in VARIANTS.items():
        model = copy.deepcopy(initial)
        trainer, metrics, seconds = train_once(
            model, train, test, norm, epochs=epochs, seed=0, opt=opt, lr=lr, momentum=momentum
        )
        losses = trainer.steps_log["loss"]
        curves[name] = losses
        final = float(smooth(losses, 0.98)[-1])
        acc = 100 * metrics["acc"]
        print(
            f"sgd-variants {name}: final smoothed loss {final:.4f}, test {acc:.2f}%, "
            f"{seconds:.2f} s",
            flush=True,
        )
        steps = f"{len(losses)} steps ({epochs} epoch{'s' if epochs > 1 else ''})"
        rows.append(row("sgd-variants", name, final, "loss", f"final smoothed loss, {steps}"))
        rows.append(row("sgd-variants", name, acc, "%", f"test acc; {seconds:.2f} s"))
    out = results_dir(quick) / "mnist_sgd_variants.png"
    fig = plot_losses(
        curves,
        beta=0.98,
        title=f"MNIST MLP 784-100-10, batch {BATCH}, same initial weights and data order",
    )
    fig.savefig(out, dpi=90)
    print(f"sgd-variants: wrote {out} ({out.stat().st_size / 1024:.0f} KB)", flush=True)
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "reference": bench_reference,
    "sgd-variants": bench_variants,
}


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)  # the default here; --threads N (applied after) overrides it
    run_sections(__doc__, SECTIONS, argv)


if __name__ == "__main__":
    print_machine()
    main()
