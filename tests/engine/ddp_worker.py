"""The program test_distributed.py starts under torchrun (2 CPU processes, gloo).

    torchrun --standalone --nproc_per_node 2 tests/engine/ddp_worker.py OUT

OUT holds data.pt (the digits, from `save_digits`; reading it spares each process importing
scikit-learn). Each process writes what it saw to OUT/result_<rank>.pt, what it printed to
OUT/stderr_<rank>.txt and the files it published to OUT/published_<rank>.json; the tests compare
that with a single-process run built by the same functions (`model`, `loaders`, `trainer`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import torch

from striate import models
from striate.data import BatchLoader, ImageSet
from striate.data.augment import Mixup
from striate.engine import EMA, Callback, Trainer, TrainingDiverged, distributed
from striate.state_file import load_state

QUIET = dict(device="cpu", tensorboard=False, precision="fp32")


def save_digits(path: Path) -> tuple[ImageSet, ImageSet]:
    """503 training images (15 batches of 32 and a short one of 23, which two processes share
    12 + 11) and 256 test images, written where the worker reads them."""
    from striate.data import load_dataset

    train, test = load_dataset("digits", "train")[:503], load_dataset("digits", "test")[:256]
    torch.save(
        {k: (d.images, d.labels, list(d.classes)) for k, d in [("train", train), ("test", test)]},
        path,
    )
    return train, test


def load_digits(path: Path) -> tuple[ImageSet, ImageSet]:
    data = torch.load(path, weights_only=True)
    return tuple(ImageSet(x, y, tuple(c), "digits") for x, y, c in (data["train"], data["test"]))


def model(dropout: float = 0.0):
    torch.manual_seed(0)
    return models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(32,), dropout=dropout)


def loaders(train, test):
    """Mixup pairs images across the whole global batch: the hardest case for sharing it."""
    return (
        BatchLoader(train, 32, device="cpu", seed=3, augment=Mixup(0.2, num_classes=10)),
        BatchLoader(test, 100, shuffle=False, device="cpu"),
    )


def trainer(out=None, callbacks=(), epochs=6, **kw):
    options = dict(opt="sgd", lr=0.3, momentum=0.9, schedule="onecycle")
    return Trainer(
        epochs=epochs,
        out=out,
        callbacks=callbacks,
        progress=out is not None,
        **options,
        **kw,
        **QUIET,
    )


class OnRank(Callback):
    """Does `action(trainer)` after step `at`, in process `rank` only."""

    def __init__(self, rank: int, at: int, action) -> None:
        self.rank, self.at, self.action = rank, at, action

    def on_step_end(self, trainer, loss):
        if trainer.rank == self.rank and trainer.step == self.at:
            self.action(trainer)


def _poison(trainer):
    with torch.no_grad():
        next(trainer.model.parameters()).mul_(float("inf"))


def _stop(trainer):
    trainer.should_stop = True
    trainer.stop_reason = "asked by rank 1"


def _ctrl_c(trainer):
    os.kill(os.getpid(), signal.SIGINT)


def weights(m):
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def run(out: Path) -> dict:
    train, test = load_digits(out / "data.pt")
    result: dict = {"chosen": distributed.broadcast_object(f"chosen by {distributed.rank()}")}

    # the run compared with one process
    net = model()
    tr = trainer(out / "run")
    train_loader, val_loader = loaders(train, test)
    result["history"] = tr.fit(net, train_loader, val_loader)
    result["weights"] = weights(net)
    result["test"] = tr.evaluate(net, val_loader)  # a shared loader: every process calls it
    result["steps_log"] = tr.steps_log
    result["is_main"] = tr.is_main
    result["len"] = len(train_loader)

    # a loss that turns non-finite in process 1 alone stops both
    diverging = trainer(callbacks=[OnRank(1, 3, _poison)], epochs=1)
    try:
        diverging.fit(model(), *loaders(train, test))
        result["diverged"] = None
    except TrainingDiverged as e:
        result["diverged"] = (diverging.step, str(e).splitlines()[0])

    # should_stop set in process 1 alone stops both after the same step
    stopping = trainer(callbacks=[OnRank(1, 5, _stop)], epochs=1)
    stopping.fit(model(), *loaders(train, test))
    result["stopped"] = (stopping.step, stopping.should_stop, stopping.stop_reason)

    # Ctrl-C in process 1 alone, in the middle of epoch 2, then resume: as if never stopped
    def resumable(folder, callbacks=(), resume=None):
        net = model(dropout=0.2)  # dropout draws from each process's own generator
        tr = trainer(folder, callbacks=[EMA(0.9), *callbacks], epochs=3)
        tr.fit(net, *loaders(train, test), resume=resume)
        return tr, net

    full, full_net = resumable(out / "full")
    cut, _ = resumable(out / "cut", callbacks=[OnRank(1, 21, _ctrl_c)])
    saved = load_state(out / "cut" / "checkpoints" / "last.safetensors")  # fit waited for it
    resumed, resumed_net = resumable(out / "cut", resume=out / "cut")
    result["resume"] = {
        "full": weights(full_net),
        "full_ema": weights(full.eval_model),
        "cut": (cut.step, cut.interrupted, cut.stop_reason),
        "saved_step": saved["trainer"]["step"],
        "resumed": weights(resumed_net),
        "resumed_ema": weights(resumed.eval_model),
        "resumed_step": resumed.step,
        "full_history": full.history,
        "resumed_history": resumed.history,
    }
    return result


def main() -> None:
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    ctx = distributed.init_from_env(device="cpu")
    # what this process prints, and which files it publishes (atomic writes end in os.replace)
    sys.stderr = open(out / f"stderr_{ctx.rank}.txt", "w")  # noqa: SIM115
    published: list[str] = []
    replace = os.replace

    def spy(src, dst, *args, **kwargs):
        published.append(str(dst))
        return replace(src, dst, *args, **kwargs)

    os.replace = spy
    try:
        result = run(out)
    finally:
        os.replace = replace
        sys.stderr.flush()
        distributed.cleanup()
    result["rank"], result["world_size"] = ctx.rank, ctx.world_size
    (out / f"published_{ctx.rank}.json").write_text(json.dumps(published))
    torch.save(result, out / f"result_{ctx.rank}.pt")


if __name__ == "__main__":
    main()
