"""Scores for an alignment against ground truth: boundary error, frame accuracy, peak hits.

These are the standard ways forced aligners and attention aligners are judged
(e.g. phone-boundary error within 20 ms in speech alignment, McAuliffe et al.
2017 "Montreal Forced Aligner"): how far predicted segment boundaries fall from
the true ones in milliseconds, which share of frames get the right label, and --
for implicit (attention) alignment -- which share of tokens put their attention
peak inside their true segment. Inputs may be tensors or numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike

from chorus.errors import DataError


def _array(x: ArrayLike | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def boundary_errors(
    pred_boundaries: ArrayLike | torch.Tensor, true_boundaries: ArrayLike | torch.Tensor, hop_seconds: float
) -> np.ndarray:
    """Absolute boundary errors in milliseconds, element by element.

    Boundaries are frame indices (e.g. segment starts or ends) of matching
    shape; ``hop_seconds`` is the time between consecutive frames (1 / frame rate).
    """
    pred, true = _array(pred_boundaries), _array(true_boundaries)
    if pred.shape != true.shape:
        raise DataError(f"pred_boundaries {pred.shape} and true_boundaries {true.shape} differ in shape")
    if not hop_seconds > 0:
        raise DataError(f"hop_seconds must be > 0, got {hop_seconds}")
    return np.abs(pred.astype(np.float64) - true.astype(np.float64)) * hop_seconds * 1000.0


def frame_accuracy(
    pred_labels: ArrayLike | torch.Tensor, true_labels: ArrayLike | torch.Tensor, ignore: int | None = None
) -> float:
    """Share of frames whose predicted label equals the true one, skipping true labels == ``ignore``."""
    pred, true = _array(pred_labels), _array(true_labels)
    if pred.shape != true.shape:
        raise DataError(f"pred_labels {pred.shape} and true_labels {true.shape} differ in shape")
    keep = np.ones(true.shape, dtype=bool) if ignore is None else true != ignore
    if not keep.any():
        raise DataError("no frame left to score (every true label is the ignored one)")
    return float((pred[keep] == true[keep]).mean())


def path_to_frame_labels(path: ArrayLike | torch.Tensor, labels: ArrayLike | torch.Tensor | None = None) -> np.ndarray:
    """Label of each row element ``i`` of a warping path [L, 2] of (i, j) cells.

    Each ``i`` takes its first matched ``j`` (paths are monotone, so this is its
    earliest partner); with ``labels`` [M] the result is ``labels[j]`` instead of ``j``.
    Use it to turn a DTW path against a labelled reference into frame labels.
    """
    cells = _array(path).astype(np.int64)
    if cells.ndim != 2 or cells.shape[1] != 2 or len(cells) == 0:
        raise DataError(f"path must be a non-empty [L, 2] array of (i, j) cells, got shape {cells.shape}")
    first = np.ones(len(cells), dtype=bool)
    first[1:] = cells[1:, 0] != cells[:-1, 0]
    matched = cells[first, 1]
    if len(matched) != cells[-1, 0] + 1:
        raise DataError("path does not visit every row index 0..n-1 in order")
    return matched if labels is None else _array(labels)[matched]


def peak_hit_rate(
    peaks: ArrayLike | torch.Tensor,
    starts: ArrayLike | torch.Tensor,
    ends: ArrayLike | torch.Tensor,
    mask: ArrayLike | torch.Tensor | None = None,
) -> float:
    """Share of queries whose attention peak (a key index) lies in its true segment [start, end).

    ``peaks``, ``starts``, ``ends`` share a shape ([Nq] or [B, Nq]); ``mask``
    (True = real query) skips padded queries. Chance level for a random peak is
    the mean segment length over the number of keys.
    """
    p, s, e = _array(peaks), _array(starts), _array(ends)
    if not p.shape == s.shape == e.shape:
        raise DataError(f"peaks {p.shape}, starts {s.shape} and ends {e.shape} must share a shape")
    keep = np.ones(p.shape, dtype=bool) if mask is None else _array(mask).astype(bool)
    if not keep.any():
        raise DataError("mask leaves no query to score")
    hits = (p >= s) & (p < e)
    return float(hits[keep].mean())
