"""Segmental alignment: cut each sequence into units by its own cues, align the units, map back to frames.

Frame-level DTW needs every frame's cost to be informative; when single frames
are weak evidence (a 10 ms audio frame rarely names its word) but the units
they form are not, it pays to align units instead. Each modality is cut from
its own signal only, without labels:

- :func:`energy_segments` — voice-activity detection on a per-frame log-energy:
  speech where the energy rises a fraction of the way from the utterance's own
  low percentile (its pauses) to its high percentile (its loud speech), so no
  absolute level is assumed; gaps shorter than a minimum pause are closures
  inside a word and are bridged, and blips shorter than a minimum word are dropped.
- :func:`shot_segments` — consecutive video frames grouped while the picture
  does not change (frame differencing), e.g. a slide-show's slides.

:func:`monotone_segment_path` then aligns the two unit sequences in order with
as few cells as possible: units are matched 1:1 when the counts agree (no cost
can change that), and only the surplus of the longer sequence is merged into
neighbours, where the cost decides which. :func:`segment_frame_pairs` maps the
unit path back to (frame, frame) pairs for frame-level scoring.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def runs(mask: np.ndarray) -> np.ndarray:
    """``[S, 2]`` (start, end exclusive) of the runs of True in a 1-D boolean mask."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return np.stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)], axis=1)


def energy_segments(
    log_energy: np.ndarray,
    fraction: float = 0.03,
    percentiles: tuple[float, float] = (5.0, 95.0),
    min_gap: int = 3,
    min_length: int = 10,
) -> np.ndarray:
    """Speech segments ``[S, 2]`` (frames, end exclusive) of one utterance from its per-frame log-energy [T].

    The threshold is ``low + fraction * (high - low)`` with ``low``/``high`` the
    utterance's own ``percentiles`` of log-energy, so it adapts to the
    recording level and noise floor. Runs above it separated by fewer than
    ``min_gap`` frames are joined (stop closures inside a word are short);
    runs shorter than ``min_length`` frames are then dropped (clicks). An
    utterance with no run left gives an empty ``[0, 2]`` array.
    """
    energy = np.asarray(log_energy, dtype=np.float64)
    low, high = np.percentile(energy, percentiles)
    segments: list[list[int]] = []
    for start, end in runs(energy > low + fraction * (high - low)):
        if segments and start - segments[-1][1] < min_gap:
            segments[-1][1] = int(end)
        else:
            segments.append([int(start), int(end)])
    kept = [s for s in segments if s[1] - s[0] >= min_length]
    return np.asarray(kept, dtype=np.int64).reshape(-1, 2)


def shot_segments(frames: Tensor, tolerance: float = 0.01) -> np.ndarray:
    """Shots ``[S, 2]`` (frames, end exclusive) of a video [F, ...]: a new shot starts where the picture changes.

    A change is a mean absolute difference between consecutive frames above
    ``tolerance`` (in the frames' own units; 0.01 of a [0, 1] range ignores
    compression-level jitter but not a new picture).
    """
    flat = frames.reshape(len(frames), -1).float()
    change = (flat[1:] - flat[:-1]).abs().mean(dim=1) > tolerance
    starts = np.concatenate([[0], np.flatnonzero(change.cpu().numpy()) + 1])
    return np.stack([starts, np.append(starts[1:], len(frames))], axis=1).astype(np.int64)


def monotone_segment_path(cost: np.ndarray | Tensor) -> np.ndarray:
    """Cheapest order-preserving path ``[max(A, V), 2]`` of (a, v) cells through a cost matrix [A, V].

    Steps are (1, 1) plus (1, 0) when A > V or (0, 1) when A < V: every unit
    of the longer sequence is matched to exactly one unit of the shorter, in
    order, and every unit of the shorter gets at least one. With equal counts
    the path is the diagonal whatever the costs — by design: the cost only
    decides where the surplus units go.
    """
    c = np.asarray(cost, dtype=np.float64)
    n, m = c.shape
    if n == 0 or m == 0:
        raise ValueError(f"monotone_segment_path needs a non-empty cost matrix, got {c.shape}")
    transposed = n < m
    if transposed:
        c, n, m = c.T, m, n
    # acc[i, j]: cheapest path ending at (i, j) that used each of the rows 0..i once.
    acc = np.full((n, m), np.inf)
    acc[0, 0] = c[0, 0]
    for i in range(1, n):
        stay = acc[i - 1]
        move = np.concatenate([[np.inf], acc[i - 1, :-1]])
        acc[i] = c[i] + np.minimum(stay, move)
    column, path = m - 1, [(n - 1, m - 1)]
    for i in range(n - 1, 0, -1):
        if column > 0 and acc[i - 1, column - 1] <= acc[i - 1, column]:
            column -= 1
        path.append((i - 1, column))
    cells = np.asarray(path[::-1], dtype=np.int64)
    return cells[:, ::-1].copy() if transposed else cells


def segment_frame_pairs(path: np.ndarray, a_segments: np.ndarray, b_segments: np.ndarray) -> np.ndarray:
    """Frame pairs ``[P, 2]`` (b frame, a frame) implied by a unit path of (a, b) cells.

    Each b unit is paired with every frame of the a units matched to it; an
    a unit matched to k > 1 b units (the a sequence had too few units) is
    split into k equal consecutive parts, one per b unit in order — time
    proportional inside the unit, since nothing finer is known there.
    """
    pairs = []
    for a in np.unique(path[:, 0]):
        shots = path[path[:, 0] == a, 1]
        start, end = a_segments[a]
        edges = np.rint(np.linspace(start, end, len(shots) + 1)).astype(np.int64)
        for b, lo, hi in zip(shots, edges[:-1], edges[1:]):
            b_frames, a_frames = np.arange(*b_segments[b]), np.arange(lo, max(hi, lo + 1))
            pairs.append(np.stack(np.meshgrid(b_frames, a_frames, indexing="ij"), axis=-1).reshape(-1, 2))
    return np.concatenate(pairs)


def pool_segments(embeddings: Tensor, segments: np.ndarray) -> Tensor:
    """Unit-norm mean ``[S, dim]`` of frame embeddings [T, dim] over each segment (the unit's embedding)."""
    pooled = torch.stack([embeddings[s:e].mean(0) for s, e in segments])
    return torch.nn.functional.normalize(pooled, dim=-1)
