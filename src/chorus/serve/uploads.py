"""Untrusted request bytes → decoded image, waveform or text, or a 4xx :class:`BadInput` saying why.

Every check happens before any expensive decoding, cheapest first:

1. size: the whole request body is capped by :class:`BodyLimit` (ASGI
   middleware counting streamed bytes, so a lying or missing
   ``Content-Length`` does not help), and each part again here;
2. declared type: an image part must be declared ``image/*``, an audio part
   ``audio/*`` (``application/octet-stream``, what scripts send by default,
   is accepted and the bytes decide);
3. decompression bombs: the image header is read lazily and the pixel count
   checked *before* decoding (a 50 KB PNG can declare 50 000 × 50 000
   pixels); audio headers give the frame count, so compressed audio that would
   expand past ``max_seconds`` is refused before decoding;
4. decoding through :mod:`chorus.data.decode`, the project's one choke point
   for corrupt bytes, whose :class:`~chorus.errors.DataError` becomes a 422.

Uploaded file names are never used (only echoed, truncated, in messages), so
no path from a request reaches the file system.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import soundfile as sf
from PIL import Image
from torch import Tensor

from chorus.data.decode import decode_audio, decode_image
from chorus.errors import DataError


class BadInput(Exception):
    """A client error: HTTP ``status`` with a one-line ``message`` naming the field at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    """What one request may carry. Defaults suit a demo server on a laptop."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 25_000_000
    max_audio_seconds: float = 30.0
    max_text_chars: int = 1000
    max_classes: int = 200
    max_k: int = 100


def _check_declared(field: str, content_type: str | None, family: str) -> None:
    declared = (content_type or "application/octet-stream").split(";")[0].strip().lower()
    if declared != "application/octet-stream" and not declared.startswith(f"{family}/"):
        raise BadInput(415, f"{field}: content type {declared!r} is not {family}/* (send an {family} file)")


def _check_size(field: str, data: bytes, limits: Limits) -> None:
    if not data:
        raise BadInput(422, f"{field}: the uploaded file is empty")
    if len(data) > limits.max_body_bytes:
        raise BadInput(413, f"{field}: {len(data)} bytes is over the {limits.max_body_bytes} byte limit")


def read_image(field: str, data: bytes, content_type: str | None, limits: Limits) -> Image.Image:
    """Validate and fully decode an uploaded image (any mode; the run's transform converts it)."""
    _check_size(field, data, limits)
    _check_declared(field, content_type, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # lazy: reads the header only
                width, height = header.size
    except Image.DecompressionBombError:
        raise BadInput(413, f"{field}: image declares too many pixels (decompression bomb guard)") from None
    except Exception as err:  # Pillow raises many types on garbage
        raise BadInput(422, f"{field}: not a readable image ({type(err).__name__})") from None
    if width * height > limits.max_image_pixels:
        raise BadInput(
            413,
            f"{field}: image is {width}×{height} = {width * height} pixels, over the "
            f"{limits.max_image_pixels} pixel limit (decompression bomb guard)",
        )
    try:
        return decode_image(data, field)
    except DataError as err:
        raise BadInput(422, str(err)) from None


def read_audio(field: str, data: bytes, content_type: str | None, limits: Limits) -> tuple[Tensor, int]:
    """Validate and decode uploaded audio (WAV, FLAC, OGG...) → mono waveform [T] in [-1, 1] and its rate."""
    _check_size(field, data, limits)
    _check_declared(field, content_type, "audio")
    try:
        info = sf.info(io.BytesIO(data))
    except Exception as err:  # libsndfile raises several types on garbage
        raise BadInput(422, f"{field}: not a readable audio file (WAV, FLAC or OGG; {type(err).__name__})") from None
    if info.samplerate <= 0 or info.frames <= 0:
        raise BadInput(422, f"{field}: audio has no samples")
    seconds = info.frames / info.samplerate
    if seconds > limits.max_audio_seconds:
        raise BadInput(413, f"{field}: audio is {seconds:.1f} s long, over the {limits.max_audio_seconds:g} s limit")
    try:
        return decode_audio(data, field)
    except DataError as err:
        raise BadInput(422, str(err)) from None


def read_text(field: str, text: str | None, limits: Limits) -> str:
    text = (text or "").strip()
    if not text:
        raise BadInput(422, f"{field}: empty text")
    if len(text) > limits.max_text_chars:
        raise BadInput(413, f"{field}: {len(text)} characters, over the {limits.max_text_chars} character limit")
    return text


def read_classes(field: str, raw: str | None, limits: Limits) -> list[str] | None:
    """Class names separated by commas or new lines → list (None when the field is absent or blank)."""
    if raw is None or not raw.strip():
        return None
    names = [n.strip() for n in raw.replace("\n", ",").split(",") if n.strip()]
    if len(names) < 2:
        raise BadInput(422, f"{field}: give at least two class names separated by commas")
    if len(names) > limits.max_classes:
        raise BadInput(413, f"{field}: {len(names)} class names, over the {limits.max_classes} limit")
    if len(set(names)) != len(names):
        raise BadInput(422, f"{field}: class names repeat: {sorted({n for n in names if names.count(n) > 1})}")
    if max(map(len, names)) > limits.max_text_chars:
        raise BadInput(413, f"{field}: a class name is over {limits.max_text_chars} characters")
    return names


class BodyLimit:
    """ASGI middleware: read the body up front and answer 413 once it passes ``max_bytes``.

    Counting streamed chunks (not trusting ``Content-Length``) catches chunked
    uploads; buffering at most ``max_bytes`` and replaying them keeps the
    rejection outside the app, so it can never surface as a 500.
    """

    def __init__(self, app, max_bytes: int) -> None:  # noqa: ANN001 (any ASGI app)
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 (ASGI signature)
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():  # noqa: ANN202
            nonlocal replayed
            if replayed:
                return await receive()  # later reads wait for the disconnect, as ASGI expects
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, send) -> None:  # noqa: ANN001
        body = f'{{"detail":"request body is over the {self.max_bytes} byte limit"}}'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
