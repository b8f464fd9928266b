"""Bytes → samples: the only place raw image and audio bytes are decoded.

Why a separate module: every loader funnels its files through these two
functions, so the bad-data policy has one choke point. Pillow and libsndfile
raise a zoo of exception types on corrupt input (``OSError``, ``SyntaxError``,
``struct.error``, ``ValueError``, ``LibsndfileError``, ...); here they all
become :class:`~chorus.errors.DataError` naming the file and the problem, so a
dataset's ``on_error`` policy can catch exactly one type (a hypothesis fuzz
test holds the decoders to that).

libsndfile silently decodes a WAV whose data chunk is cut short (it just
returns fewer frames), so :func:`decode_audio` also walks the RIFF chunk list
and refuses a file holding fewer audio bytes than its header declares.
"""

from __future__ import annotations

import io
import os
import struct
import warnings

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from chorus.errors import DataError


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit ("I;16*"), 32-bit integer ("I") or float ("F") greyscale image as 8-bit "L".

    Why: Pillow's ``convert("RGB")`` clips such pixels at 255, turning a 16-bit scan into a few grey levels.
    Integers up to 65535 are read as 16-bit (÷ 257, so 65535 → 255); larger ones and floats above 1 are
    scaled by their maximum; floats within [0, 1] are × 255.
    """
    if not (img.mode.startswith("I") or img.mode == "F"):
        return img
    pixels = np.asarray(img, dtype=np.float64)
    top = float(pixels.max(initial=0.0))
    if img.mode == "F" and top <= 1.0:
        scale = 255.0
    elif img.mode != "F" and top <= 65535:
        scale = 1 / 257
    else:
        scale = 255.0 / top if top > 0 else 1.0
    return Image.fromarray(np.clip(np.rint(pixels * scale), 0, 255).astype(np.uint8), mode="L")


def decode_image(data: bytes, name: str, mode: str | None = None) -> Image.Image:
    """Decode image bytes fully (not lazily) and optionally convert to ``mode``.

    ``name`` is only used in error messages (a path or archive member name). High bit-depth greyscale
    images are brought to 8 bits by :func:`to_8bit` before a conversion.
    """
    if not data:
        raise DataError(f"{name}: empty file, not an image")
    try:
        with warnings.catch_warnings():
            # A decompression-bomb warning on a tiny file means garbage, not a photo.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                out = to_8bit(img).convert(mode) if mode is not None else img.copy()
    except Exception as err:  # Pillow raises many unrelated types on corrupt bytes
        raise DataError(f"{name}: cannot decode image ({type(err).__name__}: {err})") from err
    if out.width == 0 or out.height == 0:
        raise DataError(f"{name}: image has zero size {out.size}")
    return out


def _check_wav_complete(data: bytes, name: str) -> None:
    """Raise if a RIFF/WAVE file's ``data`` chunk is shorter than its header says."""
    offset = 12
    while offset + 8 <= len(data):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        if chunk_id == b"data":
            held = len(data) - (offset + 8)
            if held < size:
                raise DataError(f"{name}: truncated WAV, header declares {size} audio bytes but the file holds {held}")
            return
        offset += 8 + size + (size & 1)  # chunks are word-aligned
    raise DataError(f"{name}: WAV file has no 'data' chunk")


def decode_audio(data: bytes, name: str, expected_sr: int | None = None) -> tuple[torch.Tensor, int]:
    """Decode audio bytes to a mono float32 waveform [T] in [-1, 1] and its sample rate.

    Multi-channel audio is averaged to mono. Integer PCM decodes to [-1, 1)
    by libsndfile's scaling; float files that overshoot are clipped (as a DAC
    would). ``expected_sr`` set and different from the file's rate → DataError
    (resample explicitly with :func:`chorus.data.audio.resample` instead).
    """
    if not data:
        raise DataError(f"{name}: empty file, not audio")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        _check_wav_complete(data, name)
    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile / soundfile raise several types on garbage
        raise DataError(f"{name}: cannot decode audio ({type(err).__name__}: {err})") from err
    if wave.shape[0] == 0:
        raise DataError(f"{name}: audio has no samples")
    if not np.isfinite(wave).all():
        raise DataError(f"{name}: audio contains NaN or infinite samples")
    if expected_sr is not None and sr != expected_sr:
        raise DataError(f"{name}: sample rate is {sr} Hz, expected {expected_sr} Hz")
    mono = np.clip(wave.mean(axis=1), -1.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32)), int(sr)


def read_bytes(path: str | os.PathLike[str], name: str | None = None) -> bytes:
    """Read a whole file, turning a missing/unreadable file into DataError."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as err:
        raise DataError(f"{name or path}: cannot read file ({err.strerror or err})") from err
