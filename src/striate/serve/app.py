"""The FastAPI application: `GET /` (the page), `GET /healthz`, `POST /predict` (top-k classes
as JSON, batched with concurrent requests) and `POST /explain` (the classes and an overlay).

Nothing a request says names a file: the page is a string in this package, images are read from
the request's body. Each bad request gets a 4xx with ``{"detail": "one line"}``.
"""

from __future__ import annotations

import asyncio
import html
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from striate.checks import positive_int
from striate.models.io import ImageClassifier
from striate.serve.batching import Batcher, ModelWorker
from striate.serve.explaining import explain
from striate.serve.page import PAGE
from striate.serve.uploads import RequestRefused, decode, image_bytes, read_body

MAX_K = 100


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, and how requests are batched."""

    max_bytes: int = 10_000_000  # a request's body
    max_pixels: int = 40_000_000  # an image's width × height, read from its header
    max_batch: int = 32  # images in one forward pass
    wait_ms: float = 5.0  # how long the first image of a batch waits for others
    decoders: int = 4  # images decoded at once (a 40-megapixel image takes ~0.6 GB to prepare)

    def __post_init__(self) -> None:
        positive_int("Limits", "max_bytes", self.max_bytes)
        positive_int("Limits", "max_pixels", self.max_pixels)
        positive_int("Limits", "decoders", self.decoders)


def create_app(model: ImageClassifier, name: str = "model", limits: Limits = Limits()) -> FastAPI:
    """The server of `model` (named `name` on the page and in /healthz)."""
    model.eval()
    worker = ModelWorker()
    batcher = Batcher(
        partial(probabilities, model), worker, max_batch=limits.max_batch, wait_ms=limits.wait_ms
    )
    decoding = asyncio.Semaphore(limits.decoders)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await batcher.close()
        worker.close()

    app = FastAPI(title=f"striate: {name}", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)  # fmt: skip
    app.state.batcher, app.state.model = batcher, model

    @app.exception_handler(RequestRefused)
    async def refused(_request: Request, e: RequestRefused) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}" for err in e.errors()]
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, e: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(e.detail)}, status_code=e.status_code,
                            headers=getattr(e, "headers", None))  # fmt: skip

    async def read_image(request: Request) -> np.ndarray:
        body = await read_body(request, limits.max_bytes)
        data = await image_bytes(request, body)
        async with decoding:
            return await run_in_threadpool(decode, data, limits.max_pixels)

    async def read_prepared(request: Request) -> torch.Tensor:
        """The image as the network takes it (1×C×H×W): what waits for a batch is small."""
        body = await read_body(request, limits.max_bytes)
        data = await image_bytes(request, body)
        async with decoding:
            return await run_in_threadpool(lambda: model.prepare([decode(data, limits.max_pixels)]))

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.replace("{{NAME}}", html.escape(name)))

    @app.get("/healthz")
    async def healthz() -> dict:
        s = batcher.stats
        batching = {"max_batch": batcher.max_batch, "wait_ms": batcher.wait * 1000,
                    "images": s.images, "batches": s.batches, "largest": s.largest}  # fmt: skip
        return {"status": "ok", "model": name, "classes": len(model.classes),
                "in_shape": list(model.in_shape), "batching": batching}  # fmt: skip

    @app.post("/predict")
    async def predict(request: Request, k: int = 5) -> dict:
        """The image's top-k classes, most probable first."""
        k = _check_k(k)
        with batcher.expecting():
            x = await read_prepared(request)
        probs = await batcher.predict(x)
        return {"model": name, "predictions": top_k(probs, model.classes, k)}

    @app.post("/explain")
    async def explained(request: Request, k: int = 5) -> dict:
        """The image's top-k classes and an overlay of what the top one rests on."""
        k = _check_k(k)
        image = await read_image(request)
        probs, method, picture = await worker.run(explain, model, image)
        return {"model": name, "predictions": top_k(probs, model.classes, k), "method": method,
                "overlay": picture}  # fmt: skip

    return app


@torch.no_grad()
def probabilities(model: ImageClassifier, prepared: list[torch.Tensor]) -> torch.Tensor:
    """The class probabilities of prepared images (each 1×C×H×W) in one forward pass, as
    `predict_proba` computes them."""
    return model(torch.cat(prepared)).float().softmax(1).cpu()


def top_k(probs: torch.Tensor, classes: tuple[str, ...], k: int) -> list[dict]:
    top = probs.float().topk(min(k, probs.shape[-1]))
    return [{"class": classes[i], "probability": p}
            for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]  # fmt: skip


def _check_k(k: int) -> int:
    if not 1 <= k <= MAX_K:
        raise RequestRefused(422, f"k must be between 1 and {MAX_K}, got {k}")
    return k
