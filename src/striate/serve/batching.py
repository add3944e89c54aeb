"""Concurrent requests stacked into one forward pass: the images that queued while the network
was busy go through it together (at most `max_batch`), and a batch waits up to `wait_ms` for
requests that have arrived but are still being read and decoded (`expecting`), never for requests
that may not come: a lone request is not delayed. Each request gets its own row of the result.
The network runs on one worker thread (`ModelWorker`), so the event loop keeps answering while
it computes and no two computations share the model at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from striate.checks import positive_int

T = TypeVar("T")


class ModelWorker:
    """The one thread that runs the model: forward passes and explanations queue for it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="striate-model")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class BatchStats:
    """How the batcher has grouped requests so far (shown by /healthz, read by the tests)."""

    images: int = 0
    batches: int = 0
    largest: int = 0
    sizes: dict[int, int] = field(default_factory=dict)

    def add(self, n: int) -> None:
        self.images += n
        self.batches += 1
        self.largest = max(self.largest, n)
        self.sizes[n] = self.sizes.get(n, 0) + 1


class Batcher:
    """`await batcher.predict(item)` → the item's class probabilities (a 1-D tensor), computed
    by `predict_proba(list of items)` (the server's items: prepared 1×C×H×W images) together
    with the other requests' items queued by then, and those announced by `expecting` within
    `wait_ms`, at most `max_batch` at a time."""

    def __init__(
        self,
        predict_proba: Callable[[list[Any]], torch.Tensor],
        worker: ModelWorker,
        *,
        max_batch: int = 32,
        wait_ms: float = 5.0,
    ) -> None:
        self.max_batch = positive_int("Batcher", "max_batch", max_batch)
        if not (isinstance(wait_ms, (int, float)) and 0 <= wait_ms <= 10_000):
            raise ValueError(f"Batcher: wait_ms must be between 0 and 10000, got {wait_ms!r}")
        self.wait = wait_ms / 1000
        self.predict_proba, self.worker = predict_proba, worker
        self.stats = BatchStats()
        self.arriving = 0  # requests being read and decoded, whose images will come
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Around reading a request: its image is on the way (a batch may wait for it)."""
        self.arriving += 1
        try:
            yield
        finally:
            self.arriving -= 1

    async def predict(self, image: Any) -> torch.Tensor:
        self._start()
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((image, done))  # no await since `expecting` ended: never missed
        return await done

    def _start(self) -> None:
        """The collecting task, started in the loop of the first request (and again should that
        loop have gone: a test client's loop may be another than the server's)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._collect(self._queue))

    async def _collect(self, queue: asyncio.Queue) -> None:
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                left = deadline - time.monotonic()
                if self.arriving == 0 or left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), left))
                except asyncio.TimeoutError:
                    break
            live = [(im, f) for im, f in batch if not f.done()]  # a client may have gone
            if not live:
                continue
            try:
                probs = await self.worker.run(self.predict_proba, [im for im, _ in live])
            except Exception as e:  # noqa: BLE001 - handed to every request of the batch
                for _, f in live:
                    if not f.done():
                        f.set_exception(e)
                continue
            self.stats.add(len(live))
            for row, (_, f) in zip(probs, live, strict=True):
                if not f.done():
                    f.set_result(row)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
