"""Pairwise similarity and cost matrices between two sequences of feature vectors.

Every explicit aligner in :mod:`chorus.align` (DTW, soft-DTW, Sinkhorn) works on a
cost matrix ``C[b, i, j]`` = how badly element ``i`` of sequence ``x`` matches
element ``j`` of sequence ``y``. Building that matrix is kept here, once, so the
aligners never care what the features are (MFCC frames, encoder tokens, word
embeddings).

Padded positions (mask ``False``) are filled so that no aligner can pick them:
``+inf`` cost, ``-inf`` similarity. Matrices are computed in at least float32
even under bf16 autocast, because alignment sums hundreds of small cost
differences and bf16's 8-bit mantissa would swamp them.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from chorus.errors import DataError

Metric = Literal["cosine", "euclidean", "sqeuclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean", "sqeuclidean")


def _batched(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Bring ``a`` [B,N,D] or [N,D] and ``b`` alike to 3-D float tensors; say if they were 2-D."""
    if a.dim() != b.dim() or a.dim() not in (2, 3):
        raise DataError(
            f"expected a and b both [N, D] or both [B, N, D], got shapes {tuple(a.shape)} and {tuple(b.shape)}"
        )
    unbatched = a.dim() == 2
    if unbatched:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.shape[0] != b.shape[0] or a.shape[-1] != b.shape[-1]:
        raise DataError(f"a {tuple(a.shape)} and b {tuple(b.shape)} must share batch size and feature dimension")
    dtype = torch.promote_types(a.dtype, torch.float32)
    return a.to(dtype), b.to(dtype), unbatched


def _pair_mask(a_mask: Tensor | None, b_mask: Tensor | None, n: int, m: int, like: Tensor) -> Tensor | None:
    """[B,N,M] True where both elements are real, or None when nothing is padded."""
    if a_mask is None and b_mask is None:
        return None
    batch = like.shape[0]
    a_mask = torch.ones(batch, n, dtype=torch.bool, device=like.device) if a_mask is None else a_mask
    b_mask = torch.ones(batch, m, dtype=torch.bool, device=like.device) if b_mask is None else b_mask
    a_mask = a_mask.reshape(batch, -1).bool()
    b_mask = b_mask.reshape(batch, -1).bool()
    if a_mask.shape[1] != n or b_mask.shape[1] != m:
        raise DataError(f"masks {tuple(a_mask.shape)} / {tuple(b_mask.shape)} do not match sequence lengths {n} / {m}")
    return a_mask[:, :, None] & b_mask[:, None, :]


def cosine_similarity_matrix(
    a: Tensor, b: Tensor, a_mask: Tensor | None = None, b_mask: Tensor | None = None
) -> Tensor:
    """Cosine similarity of every element of ``a`` with every element of ``b``.

    ``a`` [B,N,D] or [N,D], ``b`` [B,M,D] or [M,D] -> [B,N,M] (or [N,M]).
    Pairs touching a padded element (mask False) get ``-inf`` so an argmax or a
    softmax over the matrix never lands on padding.
    """
    a3, b3, unbatched = _batched(a, b)
    with torch.autocast(device_type=a3.device.type, enabled=False):
        sim = F.normalize(a3, dim=-1) @ F.normalize(b3, dim=-1).transpose(1, 2)
    pair = _pair_mask(a_mask, b_mask, a3.shape[1], b3.shape[1], a3)
    if pair is not None:
        sim = sim.masked_fill(~pair, float("-inf"))
    return sim[0] if unbatched else sim


def cost_matrix(
    a: Tensor,
    b: Tensor,
    metric: Metric = "sqeuclidean",
    a_mask: Tensor | None = None,
    b_mask: Tensor | None = None,
) -> Tensor:
    """Local alignment cost between every element of ``a`` and of ``b``.

    ``metric``: ``"cosine"`` (1 - cosine similarity, in [0, 2]), ``"euclidean"``
    or ``"sqeuclidean"`` (the local cost of classic DTW and of soft-DTW, and what
    tslearn / dtaidistance use). Pairs touching padding get ``+inf``.
    Differentiable; the euclidean gradient at zero distance is 0 (``torch.cdist``).
    """
    if metric not in METRICS:
        raise DataError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}")
    a3, b3, unbatched = _batched(a, b)
    with torch.autocast(device_type=a3.device.type, enabled=False):
        if metric == "cosine":
            cost = 1.0 - F.normalize(a3, dim=-1) @ F.normalize(b3, dim=-1).transpose(1, 2)
        elif metric == "euclidean":
            cost = torch.cdist(a3, b3)
        else:  # |a|^2 + |b|^2 - 2 a.b: one bmm, then in place (a fresh [B,N,M] tensor per op costs page faults)
            cost = torch.bmm(a3, b3.transpose(1, 2)).mul_(-2.0)
            cost.add_(a3.square().sum(-1)[:, :, None]).add_(b3.square().sum(-1)[:, None, :]).clamp_min_(0.0)
    pair = _pair_mask(a_mask, b_mask, a3.shape[1], b3.shape[1], a3)
    if pair is not None:
        cost = cost.masked_fill(~pair, float("inf"))
    return cost[0] if unbatched else cost
