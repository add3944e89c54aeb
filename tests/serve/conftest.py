"""A classifier trained for a few steps on the bundled digits and saved as a run's model, the
server of it (in process, and listening on 127.0.0.1 for the browser and the load test), and
image files made from the digits."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from striate import Trainer, load_dataset, models
from striate.cli.serve import listening_socket
from striate.data import BatchLoader
from striate.models.io import ImageClassifier, load_model, save_model
from striate.serve import Limits, create_app

QUIET = dict(progress=False, device="cpu", tensorboard=False, precision="fp32")


@pytest.fixture(scope="session")
def digits_test():
    return load_dataset("digits", "test", progress=False)


@pytest.fixture(scope="session")
def run_folder(tmp_path_factory, digits_test):
    """A run folder whose model/ is an MLP trained for 60 steps on the digits."""
    train = load_dataset("digits", "train", progress=False)
    torch.manual_seed(0)
    net = models.create("mlp", num_classes=10, in_shape=(1, 8, 8), hidden=(32,))
    Trainer(steps=60, lr=0.1, momentum=0.9, seed=0, **QUIET).fit(
        net, BatchLoader(train, 64, device="cpu", seed=0)
    )
    run = tmp_path_factory.mktemp("digits-mlp")
    save_model(run / "model", net, classes=train.classes, in_shape=train.shape)
    return run


@pytest.fixture(scope="session")
def classifier(run_folder) -> ImageClassifier:
    return load_model(run_folder)


@pytest.fixture
def client(classifier) -> Iterator[TestClient]:
    with TestClient(create_app(classifier, "digits-mlp"), raise_server_exceptions=True) as c:
        yield c


def digit_image(digits_test, i: int) -> np.ndarray:
    """Test image `i` as uint8 H×W×C."""
    return digits_test.images[i].permute(1, 2, 0).numpy()


def encode(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """An H×W×C (C = 1 or 3) uint8 image as an image file's bytes."""
    picture = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@contextmanager
def live_server(model: ImageClassifier, name: str = "digits-mlp", **limits) -> Iterator[str]:
    """The server of `model` under uvicorn in a thread, on a free port of 127.0.0.1: its URL."""
    import uvicorn

    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(model, name, Limits(**limits))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
