"""Concurrent requests share forward passes, and each gets its own answer: the one a direct
single-image predict_proba gives for its image."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
import torch

from striate.serve import Limits, create_app
from striate.serve.batching import Batcher, ModelWorker
from tests.serve.conftest import digit_image, encode


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(classifier, digits_test):
    app = create_app(classifier, "digits-mlp", Limits(max_batch=8, wait_ms=200))
    files = [encode(digit_image(digits_test, i)) for i in range(20)]

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            answers = await asyncio.gather(*[
                c.post("/predict?k=10", files={"file": ("d.png", f, "image/png")}) for f in files
            ])  # fmt: skip
            return answers, (await c.get("/healthz")).json()["batching"]

    answers, batching = asyncio.run(main())
    assert all(a.status_code == 200 for a in answers)
    for i, answer in enumerate(answers):
        direct = classifier.predict_proba([digit_image(digits_test, i)])[0]
        got = torch.zeros(10)
        for p in answer.json()["predictions"]:
            got[classifier.classes.index(p["class"])] = p["probability"]
        torch.testing.assert_close(got, direct, rtol=1e-5, atol=1e-6)
    assert batching["images"] == 20
    assert batching["largest"] == 8  # bounded
    assert batching["batches"] < 20 and batching["batches"] >= 3


def test_the_batcher_routes_rows_back_and_bounds_the_batch():
    calls = []

    def double(images):
        calls.append(len(images))
        return torch.tensor([[float(im[0, 0, 0]) * 2] for im in images])

    async def main():
        worker = ModelWorker()
        batcher = Batcher(double, worker, max_batch=4, wait_ms=100)
        images = [np.full((1, 1, 1), i, np.uint8) for i in range(10)]
        rows = await asyncio.gather(*[batcher.predict(im) for im in images])
        await batcher.close()
        worker.close()
        return rows, batcher.stats

    rows, stats = asyncio.run(main())
    assert [float(r[0]) for r in rows] == [2.0 * i for i in range(10)]
    assert calls == [4, 4, 2] and stats.batches == 3 and stats.sizes == {4: 2, 2: 1}


def test_without_waiting_a_lone_request_goes_alone():
    async def main():
        worker = ModelWorker()
        batcher = Batcher(lambda ims: torch.ones(len(ims), 1), worker, max_batch=32, wait_ms=0)
        for _ in range(3):
            await batcher.predict(np.zeros((1, 1, 1), np.uint8))
        worker.close()
        return batcher.stats

    assert asyncio.run(main()).sizes == {1: 3}


def test_a_failing_batch_fails_its_requests_not_the_batcher():
    state = {"fail": True}

    def flaky(images):
        if state.pop("fail", False):
            raise RuntimeError("boom")
        return torch.ones(len(images), 1)

    async def main():
        worker = ModelWorker()
        batcher = Batcher(flaky, worker, max_batch=4, wait_ms=0)
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.predict(np.zeros((1, 1, 1), np.uint8))
        row = await batcher.predict(np.zeros((1, 1, 1), np.uint8))
        worker.close()
        return row

    assert float(asyncio.run(main())[0]) == 1.0


def test_a_lone_request_does_not_wait_for_others_that_may_not_come(classifier, digits_test):
    """With a 2-second wait for company, requests sent one after another still answer at once:
    the batch waits only for requests already arriving."""
    app = create_app(classifier, "digits-mlp", Limits(max_batch=8, wait_ms=2000))
    data = encode(digit_image(digits_test, 0))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            start = time.perf_counter()
            for _ in range(3):
                assert (
                    await c.post("/predict", files={"file": ("d.png", data)})
                ).status_code == 200
            return time.perf_counter() - start

    assert asyncio.run(main()) < 1.5
