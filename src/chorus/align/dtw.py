"""Dynamic time warping (DTW): the cheapest monotone alignment of two sequences.

DTW (Sakoe & Chiba 1978, "Dynamic programming algorithm optimization for spoken
word recognition") finds the warping path -- a chain of cells (i, j) from (0, 0)
to (n-1, m-1) moving by (1, 0), (0, 1) or (1, 1) -- that minimises the summed
local cost, by the recursion R[i, j] = C[i, j] + min(R[i-1, j], R[i, j-1],
R[i-1, j-1]). It beats the baseline of linear resampling (stretching one
sequence uniformly onto the other) whenever the speaking / playing rate varies
inside a sequence, and is the standard reference that soft-DTW and learned
aligners are compared with.

Here the recursion runs batched on the anti-diagonal wavefront (see
:mod:`chorus.align.lattice`), so one call aligns a whole padded batch on CPU or
GPU; the optional Sakoe-Chiba band limits how far the path may stray from the
diagonal (faster to think about, and it stops pathological warps). Backtracking
runs in numpy, vectorised over the batch. Hard DTW is not differentiable in a
useful way; use :mod:`chorus.align.softdtw` for a training loss.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from chorus.align.lattice import INF, allowed_cells, batch_cost, skew
from chorus.align.similarity import Metric, cost_matrix


class DTWResult(NamedTuple):
    """DTW distances [B] and, when asked for, one warping path per item.

    Each path is an int64 array [L, 2] of (i, j) cells from (0, 0) to
    (n-1, m-1). Unbatched inputs give a 0-d distance and a one-item path list.
    """

    distance: Tensor
    paths: list[np.ndarray] | None


def _accumulate(skewed: Tensor) -> Tensor:
    """Accumulated cost on the wavefront: [K, N, B] skewed costs -> [K + 2, N + 1, B].

    ``acc[k + 2, i + 1]`` holds R at cell (i, k - i); rows 0-1 and column 0 are
    the +inf border, except the virtual start cell (-1, -1) = 0. All
    per-diagonal views are made up front (``unbind``) so the loop is three
    kernel calls per anti-diagonal.
    """
    k_total, n, batch = skewed.shape
    acc = skewed.new_full((k_total + 2, n + 1, batch), INF)
    acc[0, 0] = 0.0
    best = skewed.new_empty(n, batch)
    above, here, costs = acc[:, :-1].unbind(0), acc[:, 1:].unbind(0), skewed.unbind(0)
    for k in range(k_total):
        torch.minimum(above[k + 1], here[k + 1], out=best)  # from (i-1, j) and (i, j-1)
        torch.minimum(best, above[k], out=best)  # from (i-1, j-1)
        torch.add(costs[k], best, out=here[k + 2])
    return acc


def _backtrack(acc: np.ndarray, x_lengths: np.ndarray, y_lengths: np.ndarray) -> list[np.ndarray]:
    """Walk every item's path back from its end cell, all items in lock-step."""
    batch = acc.shape[2]
    items = np.arange(batch)
    i = x_lengths - 1
    j = y_lengths - 1
    steps = [np.stack([i, j], axis=1)]
    for _ in range(int((x_lengths + y_lengths).max()) - 2):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        k = i + j  # candidates, in tie-break order: diagonal, from above, from the left
        candidates = np.stack([acc[k, i, items], acc[k + 1, i, items], acc[k + 1, i + 1, items]], axis=1)
        choice = np.argmin(candidates, axis=1)
        di = np.where(choice < 2, 1, 0) * active
        dj = np.where(choice != 1, 1, 0) * active
        i, j = i - di, j - dj
        steps.append(np.stack([i, j], axis=1))
    walked = np.stack(steps[::-1], axis=1)  # [B, S, 2], start cell repeated at the front for short paths
    paths = []
    for path in walked:
        first = int(np.flatnonzero((path[:, 0] == 0) & (path[:, 1] == 0))[-1])
        paths.append(path[first:].astype(np.int64))
    return paths


def dtw_from_cost(
    cost: Tensor,
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    band: int | None = None,
    slope: bool = False,
    return_path: bool = False,
) -> DTWResult:
    """DTW over precomputed local costs ``cost`` [B, N, M] (or [N, M]).

    ``x_mask`` [B, N] / ``y_mask`` [B, M] mark real elements of right-padded
    sequences; each item is aligned end to end within its own lengths.
    ``band``: Sakoe-Chiba radius in cells (None = unconstrained); ``slope``
    centres it on the line from corner to corner (see
    :func:`chorus.align.lattice.allowed_cells`). Returns the summed cost of the
    best path (no normalisation) and, if ``return_path``, the paths.
    """
    cost, unbatched, x_lengths, y_lengths = batch_cost(cost, x_mask, y_mask)
    batch, n, m = cost.shape
    with torch.no_grad():
        cost = cost.detach().to(torch.promote_types(cost.dtype, torch.float32))
        if band is not None:  # cells past an item's lengths cannot reach its end cell: no need to mask them
            cost = cost.masked_fill(~allowed_cells(n, m, x_lengths, y_lengths, band, slope), INF)
        acc = _accumulate(skew(cost))
    rows = torch.arange(batch, device=cost.device)
    distance = acc[x_lengths + y_lengths, x_lengths, rows]  # cell (n_b - 1, m_b - 1)
    paths = None
    if return_path:
        paths = _backtrack(acc.cpu().numpy(), x_lengths.cpu().numpy(), y_lengths.cpu().numpy())
    return DTWResult(distance[0] if unbatched else distance, paths)


def dtw(
    x: Tensor,
    y: Tensor,
    metric: Metric = "sqeuclidean",
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    band: int | None = None,
    slope: bool = False,
    return_path: bool = False,
) -> DTWResult:
    """DTW between feature sequences ``x`` [B, N, D] and ``y`` [B, M, D] (or unbatched [N, D], [M, D]).

    The local cost is :func:`chorus.align.similarity.cost_matrix` with ``metric``;
    the default squared-euclidean cost makes ``sqrt(distance)`` equal the
    ``dtaidistance`` / ``tslearn`` DTW distance.
    """
    cost = cost_matrix(x, y, metric)
    return dtw_from_cost(cost, x_mask, y_mask, band, slope, return_path)
