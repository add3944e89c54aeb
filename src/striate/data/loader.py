"""Minibatches on the training device: from an in-memory ImageSet, or streamed from a folder/zip.

Both loaders yield ``(x, y)``: ``x`` float32 N×C×H×W on the device (values 0–1, then `augment`,
then `normalize`), ``y`` int64 labels, or soft targets when the augmentation mixes (mixup, cutmix).
Epoch e is shuffled and augmented from a generator seeded by ``(seed, e)``, so a run is reproducible
and can resume at any epoch (`state_dict` / `load_state_dict`, or `set_epoch`).

A `sampler` (an iterable of dataset indices with ``set_epoch`` and ``__len__``, such as
`striate.engine.sampling.SGDSSampler`) replaces the shuffled order: epoch e is its iteration after
``set_epoch(e)``, cut into batches. After each batch, `batch_index` holds the dataset indices of
the images yielded (this process's share), for whoever records per-sample values.

Data-parallel training (torchrun, see `striate.engine.distributed`): with ``world_size`` W > 1
(by default the process group's), ``batch_size`` stays the global batch and must be a multiple of
W. Every process draws the same order, and process ``rank`` takes its contiguous share of each
global batch, so the union of the shares is the batch one process would see. The in-memory
loader augments the whole global batch in every process and keeps its share: the same draws as
in one process, mixup partners included, at the cost of W× the (elementwise) augmentation work.
The streaming loader decodes its share only and augments it with draws of its own (reproducible,
not those of one process). A short last batch is split as evenly as possible (shares differ by
at most one image; `global_size` tells the Trainer the whole batch's size, for the weighting);
one with fewer images than processes is left out, so every process yields `len(loader)` batches.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from striate.checks import integer, positive_int
from striate.data.augment import BatchInfo, call_transform
from striate.data.folder import (
    FolderIndex,
    bad_image_message,
    check_policy,
    decode_image,
    describe_failure,
    parse_size,
    read_member,
    scan,
    skipped_message,
)
from striate.data.imageset import ImageSet
from striate.device import resolve_device
from striate.errors import ConfigError, DataError, StriateError, StriateWarning

Transform = Callable[
    [torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]
]
Batch = tuple[torch.Tensor, torch.Tensor]


@runtime_checkable
class IndexSampler(Protocol):
    """Dataset indices for one epoch at a time (`SGDSSampler` is one)."""

    def set_epoch(self, epoch: int) -> None: ...
    def __iter__(self) -> Iterator[int]: ...
    def __len__(self) -> int: ...


def _check_sampler(owner: str, sampler: Any, shuffle: bool) -> None:
    if sampler is None:
        return
    if not isinstance(sampler, IndexSampler):
        raise ConfigError(
            f"{owner}: sampler must yield dataset indices and have set_epoch(epoch) and "
            f"__len__ (e.g. striate.engine.sampling.SGDSSampler), got {type(sampler).__name__}"
        )
    if not shuffle:
        raise ConfigError(
            f"{owner}: a sampler decides the order itself; leave shuffle=True (the default) "
            f"when giving one"
        )


class ResumableEpochs:
    """Where a seeded loader is, for checkpoints: the epoch, and inside a running epoch the
    batches handed out and the epoch generator's state (`_position`, which `__iter__` keeps).
    Epoch e draws from a CPU generator seeded by (seed, e): the same draws on any device."""

    seed: int
    epoch: int = 0
    _position: tuple[int, torch.Generator] | None = None  # inside the running epoch
    _resume: tuple[int, torch.Tensor] | None = None  # (batches done, generator state)

    def set_epoch(self, epoch: int) -> None:
        """The next iteration yields epoch `epoch` (its order and augmentation) from its start."""
        self.epoch, self._resume = int(epoch), None

    def state_dict(self) -> dict:
        """Where the loader is; taken in the middle of an epoch, it resumes after the last batch
        handed out, with the same order and the same augmentation draws."""
        if self._position is None:
            return {"epoch": self.epoch, "seed": self.seed}
        done, g = self._position
        return {"epoch": self.epoch - 1, "seed": self.seed, "batch": done, "rng": g.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])
        self._resume = (int(state["batch"]), state["rng"]) if "batch" in state else None

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)


class _Epochs(ResumableEpochs):
    """Shared epoch bookkeeping: the seeded order of each epoch and the batch post-processing."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int,
        augment: Transform | None,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None,
        device: str | torch.device,
        rank: int | None = None,
        world_size: int | None = None,
        sampler: IndexSampler | None = None,
    ) -> None:
        positive_int(type(self).__name__, "batch_size", batch_size)
        if n == 0:
            raise DataError("cannot make batches of an empty dataset")
        _check_sampler(type(self).__name__, sampler, shuffle)
        self.rank, self.world_size = _shard_of(rank, world_size, n, batch_size)
        if drop_last and n < batch_size:
            raise StriateError(
                f"drop_last with batch_size {batch_size} > {n} images leaves no batch at all; "
                f"use a smaller batch_size or drop_last=False"
            )
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.augment, self.normalize = seed, augment, normalize
        self.device = resolve_device(device)
        self.sampler = sampler
        self.epoch = 0
        self.global_size = 0  # images of the global batch whose share was yielded last
        self.batch_index = torch.empty(0, dtype=torch.long)  # dataset indices of that share

    def __len__(self) -> int:
        full, rest = divmod(self._epoch_size(), self.batch_size)
        return full + (0 if self.drop_last or rest < self.world_size else 1)

    def _epoch_size(self) -> int:
        return self.n if self.sampler is None else len(self.sampler)

    def _order(self, g: torch.Generator) -> torch.Tensor:
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
            order = torch.as_tensor(list(self.sampler), dtype=torch.long)
            if len(order) and (int(order.min()) < 0 or int(order.max()) >= self.n):
                raise ConfigError(
                    f"{type(self).__name__}: the sampler yielded index "
                    f"{int(order.max()) if int(order.max()) >= self.n else int(order.min())} "
                    f"for a dataset of {self.n} images; make it for this dataset"
                )
            return order
        return torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)

    def _batches(self, g: torch.Generator) -> list[torch.Tensor]:
        order = self._order(g)
        if len(order) == 0:
            raise ConfigError(f"{type(self).__name__}: the sampler yielded no index this epoch")
        batches = list(order.split(self.batch_size))
        last = len(batches[-1])
        if last < self.batch_size and (self.drop_last or last < self.world_size):
            batches.pop()
        return batches

    def _share(self, size: int) -> slice:
        """This process's part of a global batch of `size` images (as `tensor_split` cuts it)."""
        q, r = divmod(size, self.world_size)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))

    def _start_epoch(self) -> tuple[torch.Generator, list[torch.Tensor], int]:
        """The generator and batches of the epoch to run, and how many of them are already done."""
        g = self._generator()
        batches = self._batches(g)
        done = 0
        if self._resume is not None:
            done, rng = self._resume
            g.set_state(rng)
            self._resume = None
        self.epoch += 1
        return g, batches, done

    def _augment_generator(self, g: torch.Generator) -> torch.Generator:
        """`g` in one process; with several, a generator of this process's own, seeded from one
        draw of `g` (the same draw everywhere, so `g` stays in step across processes)."""
        if self.world_size == 1 or self.augment is None:
            return g
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        return torch.Generator().manual_seed(seed + self.rank)

    def _track(self, done: int, g: torch.Generator) -> None:
        self._position = (done, g) if done < len(self) else None

    def _finish(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        index: torch.Tensor,
        g: torch.Generator,
        share: slice | None = None,
    ) -> Batch:
        """Float, augmented (then cut to `share`, when given) and normalised batch of the images
        at `index` in the dataset."""
        x = images.to(self.device, non_blocking=True).float().div_(255)
        y = labels.to(self.device, non_blocking=True)
        if self.augment is not None:
            info = BatchInfo(index, self.epoch - 1, self.seed)
            x, y = call_transform(self.augment, x, y, g, info)
        if share is not None:
            x, y = x[share], y[share]
        if self.normalize is not None:
            x = self.normalize(x)
        return x, y


class BatchLoader(_Epochs):
    """Shuffled minibatches of an in-memory ImageSet, kept as uint8 on the device.

    The whole set moves to `device` once; each batch is gathered there, turned to float and
    augmented as one tensor operation. Under torchrun each process yields its share of every
    global batch of `batch_size` (see the module docstring).
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int = 128,
        shuffle: bool = True,
        augment: Transform | None = None,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        drop_last: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        sampler: IndexSampler | None = None,
    ) -> None:
        if not isinstance(data, ImageSet):
            raise StriateError(f"BatchLoader takes an ImageSet, got {type(data).__name__}")
        n = len(data)
        super().__init__(
            n,
            batch_size,
            shuffle,
            drop_last,
            seed,
            augment,
            normalize,
            device,
            rank,
            world_size,
            sampler,
        )
        self.data = data
        self._images = data.images.to(self.device)
        self._labels = data.labels.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        g, batches, done = self._start_epoch()
        for i, index in enumerate(batches[done:], start=done + 1):
            share = None
            if self.world_size > 1:
                share = self._share(len(index))
                if self.augment is None:
                    index, share = index[share], None
            self.global_size = len(batches[i - 1])
            self.batch_index = index if share is None else index[share]
            idx = index.to(self.device)
            batch = self._finish(self._images[idx], self._labels[idx], index, g, share)
            self._track(i, g)
            yield batch
        self._position = None


class StreamingLoader(_Epochs):
    """Minibatches decoded from an image folder or zip by worker processes, for sets too large
    to hold in memory. Only the batches in flight are in memory; augmentation runs on the device.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "train",
        batch_size: int = 128,
        size: int | Sequence[int] | None = None,
        shuffle: bool = True,
        augment: Transform | None = None,
        normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device = "auto",
        drop_last: bool = False,
        seed: int = 0,
        workers: int = 2,
        on_bad_image: str = "error",
        rank: int | None = None,
        world_size: int | None = None,
        sampler: IndexSampler | None = None,
    ) -> None:
        check_policy(on_bad_image)
        index = scan(Path(path))
        if split not in index.splits:
            raise DataError(f"{path} has no split '{split}'; it has {', '.join(index.splits)}")
        names, labels = index.splits[split]
        n = len(names)
        super().__init__(
            n,
            batch_size,
            shuffle,
            drop_last,
            seed,
            augment,
            normalize,
            device,
            rank,
            world_size,
            sampler,
        )
        self.index, self.split, self.classes = index, split, index.classes
        self.workers, self.on_bad_image = workers, on_bad_image
        size = parse_size(size)
        self.size, self.channels = _probe(index, names, labels, size)
        self._reader = _BatchReader(
            index, names, labels, self.size, self.channels, size is not None
        )
        self.skipped: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[Batch]:
        g, batches, done = self._start_epoch()
        todo = batches[done:]
        if self.world_size > 1:  # decode this process's share only
            todo = [b[self._share(len(b))] for b in todo]
        loader = DataLoader(
            self._reader,
            batch_size=None,
            sampler=todo,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if self.workers > 0 else None,
        )
        self.skipped = []
        for i, (images, labels, index, skipped, fatal) in enumerate(loader, start=done + 1):
            if fatal:
                raise DataError(fatal)
            if skipped and self.on_bad_image == "error":
                raise DataError(bad_image_message(self.index.path, skipped))
            self.skipped += skipped
            if not len(labels) and self.world_size > 1:
                raise DataError(
                    f"{self.index.path}: every image of process {self.rank}'s share of batch {i} "
                    f"is unreadable, and under torchrun every process must take each step; "
                    f"fix or remove the unreadable files"
                )
            if len(labels):
                self.global_size = len(batches[i - 1])
                self.batch_index = index
                batch = self._finish(images, labels, index, self._augment_generator(g))
                self._track(i, g)
                yield batch
        self._position = None
        if self.skipped:
            where = f"'{self.split}' this epoch"
            warnings.warn(
                skipped_message(self.index.path, where, self.skipped), StriateWarning, stacklevel=2
            )


def _shard_of(rank: int | None, world_size: int | None, n: int, batch_size: int) -> tuple[int, int]:
    """(rank, world_size): as given, or the running process group's (0, 1 without one)."""
    if world_size is None:
        running = dist.is_available() and dist.is_initialized()
        world_size = dist.get_world_size() if running else 1
        if rank is None:
            rank = dist.get_rank() if running else 0
    if rank is None:
        rank = 0
    rank = integer("", "rank", rank)
    world_size = positive_int("", "world_size", world_size, hint="the number of processes")
    if not 0 <= rank < world_size:
        raise ConfigError(
            f"rank must lie in 0..{world_size - 1} (world_size {world_size}), got {rank}"
        )
    if batch_size % world_size:
        lower = batch_size // world_size * world_size
        options = f"{lower} or {lower + world_size}" if lower else f"{world_size}"
        raise ConfigError(
            f"batch_size is the global batch of all {world_size} processes and must be a "
            f"multiple of {world_size}, got {batch_size}; use e.g. {options}"
        )
    if n < world_size:
        raise ConfigError(
            f"{n} image(s) cannot be shared by {world_size} processes: use fewer processes or "
            f"more data"
        )
    return rank, world_size


def _probe(
    index: FolderIndex, names: list[str], labels: np.ndarray, size: tuple[int, int] | None
) -> tuple[tuple[int, int], int]:
    """Output size and channels of a stream: `size` or the first image's, and 3 if any of the
    first image of each class is colour (a stream cannot look at every file first)."""
    zf = zipfile.ZipFile(index.path) if index.is_zip else None
    probes = []
    try:
        firsts = np.unique(labels, return_index=True)[1][: len(index.classes)]
        for i in [0, *firsts[1:]]:
            try:
                probes.append(decode_image(read_member(index.path, names[i], zf), None))
            except Exception as e:  # noqa: BLE001
                raise DataError(
                    f"{index.path}: cannot read image '{names[i]}', one of the first images that "
                    f"size the stream: {describe_failure(e)}; fix or remove it"
                ) from e
    finally:
        if zf is not None:
            zf.close()
    channels = max(p.shape[2] for p in probes)
    return size or probes[0].shape[:2], channels


class _BatchReader(Dataset):
    """Decodes one batch of files per item, in a DataLoader worker (each opens the zip once)."""

    def __init__(self, index, names, labels, size, channels, resize: bool) -> None:
        self.root, self.is_zip = index.path, index.is_zip
        self.names, self.labels = names, labels
        self.size, self.channels, self.resize = size, channels, resize
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(
        self, batch: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list, str | None]:
        """The decoded images of the files at `batch` that could be read, their labels and
        indices, the (name, reason) of those that could not, and a reason to stop (or None)."""
        if self.is_zip and self._pid != os.getpid():  # a zip handle must not cross a fork
            self._zip, self._pid = zipfile.ZipFile(self.root), os.getpid()
        h, w = self.size
        out = torch.empty((len(batch), self.channels, h, w), dtype=torch.uint8)
        keep, skipped = [], []
        for k, i in enumerate(batch.tolist()):
            name = self.names[i]
            try:
                arr = decode_image(
                    read_member(self.root, name, self._zip), self.size if self.resize else None
                )
            except Exception as e:  # noqa: BLE001 - reported (or raised) by the main process
                skipped.append((name, describe_failure(e)))
                continue
            if arr.shape[:2] != (h, w):  # raised by the main process: worker tracebacks are noise
                fatal = (
                    f"{self.root}: '{name}' is {arr.shape[0]}×{arr.shape[1]}, the stream's first "
                    f"image {h}×{w}; pass size=(H, W) to resize them all"
                )
                empty = torch.empty(0, dtype=torch.int64)
                return out[:0], empty, empty, skipped, fatal
            if arr.shape[2] == 3 and self.channels == 1:  # ITU-R 601 luma, as PIL's convert("L")
                arr = (arr @ np.array([0.299, 0.587, 0.114]))[:, :, None].round().astype(np.uint8)
            out[k] = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
            keep.append(k)
        labels = torch.from_numpy(self.labels[batch.numpy()])
        if len(keep) < len(batch):
            out, labels, batch = out[keep], labels[keep], batch[keep]
        return out, labels, batch, skipped, None
