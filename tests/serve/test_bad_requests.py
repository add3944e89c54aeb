"""Malformed requests: each gets a 4xx with a one-line message, never a 500, and the server
answers /healthz afterwards. The test client re-raises any exception the server did not turn
into an answer, so a crash fails the test."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striate.serve import Limits, create_app
from tests.serve.conftest import digit_image, encode


@pytest.fixture(scope="module")
def server(classifier):
    with TestClient(create_app(classifier, "digits-mlp")) as c:
        yield c


@pytest.fixture(scope="module")
def png(digits_test) -> bytes:
    return encode(digit_image(digits_test, 0))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def declared_png(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header declares width × height grey pixels (its data
    holds a few rows: enough for a decoder that trusts the header to allocate the whole)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", rows)
        + _chunk(b"IEND", b"")
    )


def _refused(r, status: int | tuple[int, ...], words: str) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert r.status_code in statuses, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    assert words.lower() in detail.lower(), detail


def _upload(c, data: bytes, name="x.png", kind="image/png", path="/predict"):
    return c.post(path, files={"file": (name, data, kind)})


@pytest.mark.parametrize("path", ["/predict", "/explain"])
def test_each_kind_of_bad_request_gets_its_4xx_and_a_message(server, png, path):
    c = server
    jpeg = encode(np.repeat(np.asarray(np.arange(64 * 64) % 251, np.uint8).reshape(64, 64, 1), 3,
                            axis=2), "JPEG")  # fmt: skip
    cases = [
        (_upload(c, b"not an image at all", path=path), 422, "not a readable image"),
        (_upload(c, png[: len(png) // 2], path=path), 422, "cannot be decoded"),
        (_upload(c, jpeg[: len(jpeg) // 2], "x.jpg", "image/jpeg", path), 422, "truncated"),
        (_upload(c, declared_png(30000, 30000), path=path), 413, "too large"),
        (_upload(c, declared_png(8000, 6000), path=path), 413, "48.0 megapixels"),
        (_upload(c, declared_png(0, 0), path=path), 422, "not a readable image"),
        (_upload(c, b"", path=path), 400, "empty"),
        (c.post(path, content=png, headers={"content-type": "text/plain"}), 415, "content type"),
        (c.post(path, json={"image": "x.png"}), 415, "application/json"),
        (c.post(path, content=png, headers={"content-type": ""}), 415, "(none)"),
        (c.post(path, content=b"", headers={"content-type": "image/png"}), 400, "empty"),
        (c.post(path, files={"other": ("x.png", png, "image/png")}), 400, "no field named 'file'"),
        (c.post(path, data={"file": "/etc/passwd"}), 415, "x-www-form-urlencoded"),
        (
            c.post(path, data={"file": "/etc/passwd"}, files={"other": ("x.png", png)}),
            400,
            "text, not a file",
        ),  # fmt: skip
        (
            c.post(
                path,
                content=b"--zz\r\ngarbage",
                headers={"content-type": "multipart/form-data; boundary=zz"},
            ),
            400,
            "multipart",
        ),  # fmt: skip
        (
            c.post(path, content=b"garbage", headers={"content-type": "multipart/form-data"}),
            400,
            "multipart",
        ),  # fmt: skip
        (c.post(f"{path}?k=0", files={"file": ("x.png", png)}), 422, "k must be"),
        (c.post(f"{path}?k=many", files={"file": ("x.png", png)}), 422, "k"),
        (c.get(path), 405, "method not allowed"),
    ]
    for r, status, words in cases:
        _refused(r, status, words)
    assert c.get("/healthz").json()["status"] == "ok"
    assert _upload(c, png, path=path).status_code == 200


def test_no_request_path_reaches_the_file_system(server):
    for path in ["/../../etc/passwd", "/static/../../etc/passwd", "/etc/passwd", "/%2e%2e/x"]:
        r = server.get(path)
        assert r.status_code == 404 and "root:" not in r.text


def test_the_body_size_limit_holds_with_and_without_a_content_length(classifier, png):
    small = Limits(max_bytes=2000)
    with TestClient(create_app(classifier, "small", small)) as c:
        _refused(_upload(c, b"\0" * 5000), 413, "up to 0.002 MB")
        _refused(c.post("/predict", content=b"\0" * 5000, headers={"content-type": "image/png"}),
                 413, "0.005 MB")  # fmt: skip

        def chunks():  # no Content-Length: sent chunked, refused while it arrives
            for _ in range(100):
                yield b"\0" * 1000

        _refused(c.post("/predict", content=chunks(), headers={"content-type": "image/png"}), 413,
                 "over")  # fmt: skip
        assert _upload(c, png).status_code == 200  # a small image still passes


def test_the_default_limit_refuses_eleven_megabytes(server):
    _refused(server.post("/predict", content=b"\0" * 11_000_000,
                         headers={"content-type": "image/png"}), 413, "10 MB")  # fmt: skip


def test_the_pixel_limit_is_read_from_the_header(classifier, digits_test):
    with TestClient(create_app(classifier, "tiny", Limits(max_pixels=1000))) as c:
        big = np.zeros((40, 40, 1), np.uint8)  # 1600 pixels, a real and valid image
        _refused(_upload(c, encode(big)), 413, "40×40 pixels")
        assert _upload(c, encode(digit_image(digits_test, 0))).status_code == 200


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=3000), raw=st.booleans())
def test_random_bytes_are_refused_in_one_line(server, body, raw):
    r = (server.post("/predict", content=body, headers={"content-type": "image/png"}) if raw
         else _upload(server, body))  # fmt: skip
    assert r.status_code in (400, 422), r.text
    assert "\n" not in r.json()["detail"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_damaged_images_never_crash_the_server(server, png, data):
    """A real PNG with bytes overwritten, cut or inserted: an answer or a 4xx, never a 500."""
    damaged = bytearray(png)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(damaged) - 1))
        action = data.draw(st.sampled_from(["set", "cut", "insert"]))
        byte = data.draw(st.integers(0, 255))
        if action == "set":
            damaged[at] = byte
        elif action == "cut":
            del damaged[at:]
            if not damaged:
                damaged = bytearray(b"\0")
        else:
            damaged.insert(at, byte)
    r = _upload(server, bytes(damaged))
    assert r.status_code in (200, 400, 413, 422), r.text
    if r.status_code == 200:
        assert len(r.json()["predictions"]) == 5
    assert server.get("/healthz").status_code == 200
