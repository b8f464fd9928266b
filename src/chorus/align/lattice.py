"""The alignment lattice shared by DTW and soft-DTW: lengths, bands, wavefront layout.

Both recursions fill a cost lattice where cell (i, j) depends on (i-1, j),
(i, j-1) and (i-1, j-1). All cells on one anti-diagonal ``k = i + j`` are then
independent, so one vectorised torch step per anti-diagonal computes a whole
"wavefront" for the whole batch: N + M - 1 steps instead of N * M scalar ones.
To make each wavefront a contiguous slice, the [B, N, M] cost matrix is
*skewed* to [K, N, B] with ``skewed[i + j, i, b] = cost[b, i, j]`` (cells off the
matrix hold +inf), a strided view of a padded copy; batch-last keeps every
per-diagonal slice contiguous, which matters because the loop is bound by
per-kernel overhead and memory traffic, not arithmetic.

Global constraints (Sakoe & Chiba 1978, "Dynamic programming algorithm
optimization for spoken word recognition") restrict the lattice to a band
around the diagonal; :func:`allowed_cells` builds that band per batch item.
"""

from __future__ import annotations

import torch
from torch import Tensor

from chorus.errors import DataError

INF = float("inf")


def lengths_from_mask(mask: Tensor | None, size: int, batch: int, device: torch.device, name: str) -> Tensor:
    """Lengths [B] (int64) of right-padded sequences from a [B, size] mask (True = real).

    Alignment needs every sequence to start at index 0, so the mask must be a
    prefix of Trues; anything else is a :class:`DataError` naming ``name``.
    """
    if mask is None:
        return torch.full((batch,), size, dtype=torch.long, device=device)
    if mask.shape != (batch, size):
        raise DataError(f"{name} has shape {tuple(mask.shape)}, expected {(batch, size)}")
    mask = mask.bool()
    lengths = mask.sum(1)
    prefix = torch.arange(size, device=device)[None, :] < lengths[:, None]
    if not torch.equal(prefix, mask):
        raise DataError(f"{name} must be True on a prefix of each row (right padding only)")
    if bool((lengths == 0).any()):
        raise DataError(f"{name} has an empty sequence (a row with no True)")
    return lengths


def batch_cost(cost: Tensor, x_mask: Tensor | None, y_mask: Tensor | None) -> tuple[Tensor, bool, Tensor, Tensor]:
    """``cost`` as [B, N, M] (an [N, M] cost gets a batch of one), whether it was unbatched, and the lengths."""
    unbatched = cost.dim() == 2
    if unbatched:
        cost = cost.unsqueeze(0)
    if cost.dim() != 3:
        raise DataError(f"cost must be [B, N, M] or [N, M], got shape {tuple(cost.shape)}")
    batch, n, m = cost.shape
    x_lengths = lengths_from_mask(x_mask, n, batch, cost.device, "x_mask")
    y_lengths = lengths_from_mask(y_mask, m, batch, cost.device, "y_mask")
    return cost, unbatched, x_lengths, y_lengths


def allowed_cells(n: int, m: int, x_lengths: Tensor, y_lengths: Tensor, band: int | None, slope: bool) -> Tensor:
    """[B, n, m] bool: cells inside both sequences' lengths and inside the band.

    ``slope=False``: Sakoe-Chiba band ``|i - j| <= band``, widened by the length
    difference towards the end corner (so the end cell is always reachable; the
    same cells as dtaidistance's ``window = band + 1``).
    ``slope=True``: cells within ``band`` steps (counted along the longer axis)
    of the straight line from (0, 0) to (n-1, m-1), the natural band for sequences
    of different rates. The radius is raised to half the slope when smaller, the
    narrowest width whose rows still connect, so a warping path always exists.
    """
    device = x_lengths.device
    i = torch.arange(n, device=device)[None, :, None]
    j = torch.arange(m, device=device)[None, None, :]
    nb = x_lengths[:, None, None]
    mb = y_lengths[:, None, None]
    inside = (i < nb) & (j < mb)
    if band is None:
        return inside
    if band < 0:
        raise DataError(f"band must be a non-negative number of cells, got {band}")
    if not slope:
        upper = band + (mb - nb).clamp_min(0)
        lower = band + (nb - mb).clamp_min(0)
        return inside & (j - i <= upper) & (i - j <= lower)
    # |j (n-1) - i (m-1)| <= r * min(n-1, m-1) with r = max(band, slope / 2), doubled to stay in integers.
    lo = torch.minimum(nb - 1, mb - 1)
    hi = torch.maximum(nb - 1, mb - 1)
    offset = 2 * (j * (nb - 1) - i * (mb - 1))
    radius = torch.maximum(2 * band * lo, hi)
    return inside & ((offset.abs() <= radius) | (lo == 0))


def skew(cost: Tensor) -> Tensor:
    """[B, N, M] -> [N + M - 1, N, B] view with ``out[i + j, i, b] = cost[b, i, j]``, +inf off the matrix.

    Batch-last, so each anti-diagonal ``out[k]`` is one contiguous block and
    shifting it by one cell along ``i`` is a contiguous slice too. In the
    row-major [N, M + N, B] padded copy, cell (i, k - i) starts at
    ``(i * (M + N - 1) + k) * B``, so the wavefront layout is a strided view.
    """
    batch, n, m = cost.shape
    padded = cost.new_full((n, m + n, batch), INF)
    padded[:, :m] = cost.permute(1, 2, 0)
    return padded.as_strided((n + m - 1, n, batch), (batch, (m + n - 1) * batch, 1))


def unskew(skewed: Tensor, m: int) -> Tensor:
    """Inverse of :func:`skew`: [N + M - 1, N, B] -> [B, N, M] (a copy)."""
    skewed = skewed.contiguous()
    _, n, batch = skewed.shape
    return skewed.as_strided((batch, n, m), (1, (n + 1) * batch, n * batch)).clone()
