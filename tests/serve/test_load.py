"""A few seconds of benchmarks/serve_load.py's load test against the server on 127.0.0.1: eight
concurrent clients, with and without batching, and not one failed request."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from tests.serve.conftest import digit_image, encode, live_server

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


@pytest.fixture(scope="module")
def serve_load():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("max_batch", [1, 32])
def test_eight_clients_for_two_seconds_without_a_failure(serve_load, classifier, digits_test,
                                                         max_batch):  # fmt: skip
    data = encode(digit_image(digits_test, 0))
    with live_server(classifier, max_batch=max_batch) as url:
        result = asyncio.run(serve_load.load(url, data, "image/png", 8, 2.0, warmup=0.3))
    assert result["failed"] == 0, result["first_failure"]
    assert result["requests"] >= 8 and result["rps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]


def test_the_load_test_counts_refused_requests_as_failures(serve_load, classifier):
    with live_server(classifier) as url:
        result = asyncio.run(serve_load.load(url, b"not an image", "image/png", 2, 0.5, 0.1))
    assert result["requests"] == 0 and result["failed"] > 0
    assert result["first_failure"].startswith("422")
