"""What the server accepts as an image: the request's body read up to a size limit, the image
taken from a multipart form or a raw image body, and decoded only after its header says that its
size is sensible. Every refusal is a `RequestRefused` with an HTTP status and one line."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image
from starlette.requests import Request

from striate.data.folder import decode_image
from striate.errors import StriateError

# The formats PIL may try: the common photo and web formats, not every plug-in it has.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")
FIELDS = ("file", "image")


class RequestRefused(StriateError):
    """A request the server will not serve: `status` is the HTTP status, the message says why
    and what to send instead."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, refused (413) as soon as it is longer than `max_bytes`: a declared
    Content-Length is checked before anything is read, a chunked body while it arrives."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise RequestRefused(413, _too_long(int(declared), max_bytes))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestRefused(413, _too_long(size, max_bytes, at_least=True))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_long(size: int, limit: int, at_least: bool = False) -> str:
    return (
        f"the request is {'over ' if at_least else ''}{size / 1e6:.3g} MB; the server takes "
        f"images up to {limit / 1e6:g} MB"
    )


async def image_bytes(request: Request, body: bytes) -> bytes:
    """The image file in the request: the `file` (or `image`) field of a multipart form, or the
    body itself when its content type is image/*."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.startswith("image/") or kind == "application/octet-stream":
        data = body
    elif kind == "multipart/form-data":
        data = await _form_file(request, body)
    else:
        raise RequestRefused(
            415,
            f"content type {kind or '(none)'} is not an image upload; send a multipart form with "
            f"the image in a field named 'file', or the image itself with an image/* content type",
        )
    if not data:
        raise RequestRefused(400, "the image is empty (0 bytes); send an image file")
    return data


async def _form_file(request: Request, body: bytes) -> bytes:
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=2, max_fields=8)
    except Exception as e:  # noqa: BLE001 - a malformed form, whatever the parser says
        reason = getattr(e, "detail", None) or getattr(e, "message", None) or str(e)
        raise RequestRefused(400, f"the multipart form cannot be read ({reason})") from None
    try:
        for name in FIELDS:
            value = form.get(name)
            if value is None:
                continue
            if isinstance(value, str):
                raise RequestRefused(
                    400, f"the form field '{name}' is text, not a file; upload the image as a file"
                )
            return await value.read()
        raise RequestRefused(
            400,
            "the multipart form has no field named 'file'; put the image in a field named 'file'",
        )
    finally:
        await form.close()


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """The image as uint8 H×W×C, after its header has shown a known format and at most
    `max_pixels` pixels (a decompression bomb is refused before a pixel is decoded)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as img:
                width, height = img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise RequestRefused(413, f"the image is too large to decode safely ({e})") from None
    except Exception:  # noqa: BLE001 - PIL raises many kinds for a file it cannot read
        raise RequestRefused(
            422,
            f"not a readable image: not one of {', '.join(FORMATS)}, or damaged; send an "
            f"image file",
        ) from None
    if width * height > max_pixels:
        raise RequestRefused(
            413,
            f"the image is {width}×{height} pixels ({width * height / 1e6:.1f} megapixels); the "
            f"server decodes at most {max_pixels / 1e6:g} megapixels; send a smaller image",
        )
    try:
        return decode_image(data, None)
    except StriateError as e:
        raise RequestRefused(422, f"the image cannot be decoded: {e}") from None
