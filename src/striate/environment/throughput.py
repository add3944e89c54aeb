"""Data loading against training, in images per second, each within its share of a time budget.

Loading: the striate loader a run would use, iterated epoch after epoch — `BatchLoader` for a set
held in memory (a named dataset or a .npz: gather, augment and normalise on the device),
`StreamingLoader` for an image folder or zip (decode in worker processes, then the same). Training:
forward, backward and optimiser step of the model through `Trainer.fit`, on one batch of that
loader repeated, so that no loading is counted. The first batch or step of each (worker start-up,
kernel selection) is left out of the timing when there was time for more; on a GPU the timings end
with a synchronisation, so queued work is counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from striate import models
from striate.checks import non_negative_int, number, positive_int
from striate.data import BatchLoader, Normalizer, StreamingLoader, load_dataset
from striate.data.augment import fit_to
from striate.data.augment_spec import parse_augment
from striate.data.folder import scan
from striate.data.registry import SOURCES
from striate.device import resolve_device
from striate.engine import Callback, Trainer
from striate.engine.optim import make_optimizer
from striate.errors import ConfigError, StriateError
from striate.progress import phase

DEVICES = ("cpu", "cuda", "mps")
now = time.perf_counter  # the clock every measurement reads (a test gives it a fake one)


@dataclass(frozen=True)
class Throughput:
    """`images` in `seconds` over `batches` timed batches (or steps)."""

    images: int
    seconds: float
    batches: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": self.images_per_s}


@dataclass(frozen=True)
class Measurement:
    """What was measured, on what, and the two throughputs."""

    data: str
    loader: str  # "BatchLoader" (in memory) or "StreamingLoader" (folder or zip)
    images_in_set: int
    image_shape: tuple[int, int, int]
    model: str
    batch_size: int
    device: str
    precision: str
    workers: int
    augment: str
    loading: Throughput
    training: Throughput

    @property
    def streaming(self) -> bool:
        return self.loader == "StreamingLoader"

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("loading", "training")}
        out["image_shape"] = list(self.image_shape)
        out["loading"] = self.loading.as_dict()
        out["training"] = self.training.as_dict()
        return out


def check_device(device: str) -> torch.device:
    """`device` resolved ("auto": CUDA, then MPS, then CPU), refused unless it exists here."""
    dev = resolve_device(device)
    if dev.type not in DEVICES:
        raise StriateError(f"device {device!r}: striate env measures on auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise StriateError(
            f"device {device!r} asked for, but this machine has {torch.cuda.device_count()} "
            f"CUDA device(s): use cuda:0 … cuda:{torch.cuda.device_count() - 1}"
        )
    return dev


def measure(
    data: str = "digits",
    root: str | os.PathLike | None = None,
    model: str = "convnet_small",
    batch_size: int = 64,
    device: str = "auto",
    seconds: float = 10.0,
    workers: int = 2,
    augment: str = "auto",
    precision: str = "auto",
    progress: bool = True,
) -> Measurement:
    """Measure loading and training throughput, each within half of `seconds`; see the module
    docstring. `workers` are the decoding processes of a streamed folder or zip."""
    seconds = number("striate env", "seconds", seconds, low=0, low_open=True, high=3600)
    positive_int("striate env", "batch_size", batch_size)
    non_negative_int("striate env", "workers", workers)
    dev = check_device(device)
    share = seconds / 2
    with phase(f"loading {data}", enabled=progress):
        loader, shape, classes, size, kind = _loader(data, root, batch_size, dev, workers, augment)
    with phase(f"measuring data loading ({kind}, {share:.3g} s)", enabled=progress):
        loading, batch = _time_loading(loader, dev, share)
    with phase(f"building {model}", enabled=progress):
        net = models.create(model, num_classes=classes, in_shape=shape)
        # made here, not in fit: torch's first optimiser imports torch._dynamo (seconds, once)
        optimizer = make_optimizer("sgd", net, 0.01, momentum=0.9)
    trainer = Trainer(
        steps=10**9,
        opt=optimizer,
        precision=precision,
        device=dev,
        progress=False,
        tensorboard=False,
        callbacks=[_Clock(share, dev)],
    )
    with phase(
        f"measuring training ({model}, {trainer.precision.name} on {dev}, {share:.3g} s)",
        enabled=progress,
    ):
        training = _time_training(trainer, net, batch, dev)
    return Measurement(
        data=str(data),
        loader=kind,
        images_in_set=size,
        image_shape=tuple(shape),
        model=model,
        batch_size=batch_size,
        device=str(dev),
        precision=trainer.precision.name,
        workers=workers if kind == "StreamingLoader" else 0,
        augment=augment,
        loading=loading,
        training=training,
    )


def _is_stream(data: str, root: str | os.PathLike | None) -> Path | None:
    """The folder or zip `data` names (relative to `root` when not found as given); None for a
    named dataset (whose files may well be in a folder of its name) or anything else."""
    if data in SOURCES:
        return None
    path = Path(data).expanduser()
    if root is not None and not path.is_absolute() and not path.exists():
        path = Path(root) / path
    if path.is_dir() or (path.suffix.lower() == ".zip" and path.is_file()):
        return path
    return None


def _loader(
    data: str,
    root: str | os.PathLike | None,
    batch_size: int,
    device: torch.device,
    workers: int,
    augment: str,
) -> tuple[Any, tuple[int, int, int], int, int, str]:
    """The loader, image shape (C, H, W), number of classes, set size and loader kind."""
    path = _is_stream(data, root)
    if path is not None:
        splits = scan(path).splits
        split = "train" if "train" in splits else next(iter(splits))
        probe = StreamingLoader(path, split, batch_size, device=device, workers=workers)
        shape = (probe.channels, *probe.size)
        classes = len(probe.classes)
        loader = StreamingLoader(
            path,
            split,
            batch_size,
            augment=parse_augment(augment, shape, classes),
            normalize=_normalizer(shape[0]),
            device=device,
            workers=workers,
        )
        return loader, shape, classes, len(probe.index.splits[split][0]), "StreamingLoader"
    ds = load_dataset(data, "train", root)
    shape = tuple(ds.shape)
    loader = BatchLoader(
        ds,
        batch_size,
        augment=fit_to(parse_augment(augment, shape, ds.num_classes), ds.images),
        normalize=_normalizer(shape[0]),
        device=device,
    )
    return loader, shape, ds.num_classes, len(ds), "BatchLoader"


def _normalizer(channels: int) -> Normalizer:
    """Fixed statistics: normalising costs the same whatever they are, and fitting them would
    cost a pass over a streamed set."""
    return Normalizer(mean=[0.5] * channels, std=[0.25] * channels)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _epochs(loader: Any) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def _time_loading(loader: Any, device: torch.device, seconds: float) -> tuple[Throughput, Any]:
    """Batches from `loader` until `seconds` have passed; the first batch is left out of the
    timing when more followed. Returns the throughput and the first batch."""
    start = now()
    deadline = start + seconds
    first = None
    images = batches = 0
    t0 = start
    batches_iter = _epochs(loader)
    try:
        for x, y in batches_iter:
            n = len(x)
            if first is None:
                first = (x, y)
                _sync(device)
                t0, first_images = now(), n
            else:
                images += n
                batches += 1
            if now() >= deadline:
                break
    finally:
        batches_iter.close()  # lets a streaming loader's workers go
    _sync(device)
    end = now()
    if batches == 0:  # only the first batch fitted in the budget: count it, start-up included
        return Throughput(first_images, end - start, 1), first
    return Throughput(images, end - t0, batches), first


class _Repeat:
    """One batch, over and over: training steps with no loading in them."""

    def __init__(self, batch: Any, device: torch.device) -> None:
        self.batch, self.device = batch, device

    def __len__(self) -> int:
        return 10**9

    def __iter__(self) -> Iterator[Any]:
        while True:
            yield self.batch


class _Clock(Callback):
    """Stops training when the time is up; times the steps after the first (or, when the first
    step used up the time, the whole, set-up included)."""

    def __init__(self, seconds: float, device: torch.device) -> None:
        self.seconds, self.device = seconds, device

    def on_fit_start(self, trainer: Trainer) -> None:
        self.start = self.t0 = now()
        self.steps = self.images = self.first = 0

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        n = trainer.last_batch_size
        if trainer.step == 1:
            _sync(self.device)
            self.t0, self.first = now(), n
        else:
            self.steps += 1
            self.images += n
        if now() - self.start >= self.seconds:
            trainer.should_stop = True

    def result(self) -> Throughput:
        _sync(self.device)
        end = now()
        if self.steps == 0:
            return Throughput(self.first, end - self.start, 1)
        return Throughput(self.images, end - self.t0, self.steps)


def _time_training(trainer: Trainer, model: torch.nn.Module, batch: Any, device: torch.device):
    clock = next(cb for cb in trainer.callbacks if isinstance(cb, _Clock))
    try:
        trainer.fit(model, _Repeat(batch, device))
    except torch.OutOfMemoryError as e:
        raise ConfigError(
            f"out of {device} memory training one batch of {len(batch[0])}: use a smaller "
            "--batch-size"
        ) from e
    return clock.result()
