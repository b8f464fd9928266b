"""``POST /align``: dynamic time warping between two recordings, returned as a path and a picture.

What: both clips are resampled to 8 kHz, turned into log-mel frames (10 ms
hop) with per-clip mean/variance normalisation (cepstral mean-variance
normalisation in spirit: it removes loudness and channel differences so the
cost compares *what* is said), and aligned end to end by
:func:`chorus.align.dtw` (Sakoe & Chiba 1978) with a Euclidean frame cost.
The baseline DTW beats is linear stretching; the picture shows the cost matrix
with the warping path over it, so one sees where one speaker was slower.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from chorus.align import dtw
from chorus.align.similarity import cost_matrix
from chorus.data.audio import LogMel, resample

SAMPLE_RATE = 8000
_LOGMEL = LogMel(sample_rate=SAMPLE_RATE, n_mels=40)


def frames(wave: Tensor, sample_rate: int) -> Tensor:
    """Waveform → normalised log-mel frames [T, n_mels]."""
    with torch.inference_mode():
        mel = _LOGMEL(resample(wave, sample_rate, SAMPLE_RATE)).T
        return (mel - mel.mean(0)) / (mel.std(0) + 1e-5)


def picture(cost: np.ndarray, path: np.ndarray, frame_s: float) -> str:
    """Cost matrix with the warping path drawn over it, as a ``data:image/png;base64`` URL."""
    fig = Figure(figsize=(4.2, 4.0), dpi=90)  # no pyplot: Figure objects are safe to use from request threads
    ax = fig.add_subplot()
    extent = (0, cost.shape[1] * frame_s, cost.shape[0] * frame_s, 0)
    ax.imshow(cost, cmap="magma_r", aspect="auto", extent=extent, interpolation="nearest")
    ax.plot((path[:, 1] + 0.5) * frame_s, (path[:, 0] + 0.5) * frame_s, color="#00c2ff", linewidth=1.8)
    ax.set_xlabel("clip B (s)")
    ax.set_ylabel("clip A (s)")
    ax.set_title("DTW: frame distance and best path", fontsize=10)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def align_audio(a: tuple[Tensor, int], b: tuple[Tensor, int]) -> dict[str, Any]:
    """DTW of two (waveform, sample rate) clips → distance, path [[i, j], ...] in frames, and the picture."""
    x, y = frames(*a), frames(*b)
    result = dtw(x, y, metric="euclidean", return_path=True)
    assert result.paths is not None  # return_path=True
    path = result.paths[0]
    frame_s = _LOGMEL.hop_length / SAMPLE_RATE
    cost = cost_matrix(x, y, "euclidean").numpy()
    distance = float(result.distance)
    return {
        "distance": distance,
        "mean_cost": distance / len(path),
        "frames": [len(x), len(y)],
        "frame_seconds": frame_s,
        "path": path.tolist(),
        "picture": picture(cost, path, frame_s),
    }
