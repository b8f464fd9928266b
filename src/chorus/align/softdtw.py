"""Soft-DTW: a differentiable DTW discrepancy, usable as a loss between sequences.

Soft-DTW (Cuturi & Blondel 2017, "Soft-DTW: a Differentiable Loss Function for
Time-Series", ICML) replaces DTW's ``min`` by the smoothed
``softmin_gamma(a) = -gamma * log(sum(exp(-a / gamma)))``. The value is then a
smooth function of the cost matrix, and its gradient is the *expected*
alignment matrix E (a soft warping path), computed by a backward recursion over
the lattice in O(N M) -- Algorithm 2 of the paper, implemented explicitly here
(with the softmin terms cached in the forward pass) instead of letting autograd
record N M tiny ops. As gamma -> 0 soft-DTW tends to DTW; it beats a
frame-wise (Euclidean, no warping) loss whenever targets are time-shifted.

Soft-DTW can be negative and is not minimised at x == y; the soft-DTW
*divergence* (Blondel, Mensch & Vert 2021, "Differentiable Divergences Between
Time Series", AISTATS) ``sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2`` fixes
both and is offered via ``divergence=True``.

Both passes run batched on the anti-diagonal wavefront (:mod:`chorus.align.lattice`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from chorus.align.lattice import INF, allowed_cells, batch_cost, skew, unskew
from chorus.align.similarity import Metric, cost_matrix
from chorus.errors import DataError


class _SoftDTW(torch.autograd.Function):
    """Soft-DTW value [B] of a (band-masked, +inf outside) cost [B, N, M]; explicit E-matrix backward."""

    @staticmethod
    def forward(ctx: Any, cost: Tensor, x_lengths: Tensor, y_lengths: Tensor, gamma: float) -> Tensor:
        skewed = skew(cost)
        k_total, n, batch = skewed.shape
        # acc[k + 2, i + 1] = R at (i, k - i); soft[k, i] = softmin of its three predecessors.
        acc = cost.new_full((k_total + 2, n + 1, batch), INF)
        acc[0, 0] = 0.0
        soft = cost.new_full((k_total + 2, n + 1, batch), -INF)
        preds = cost.new_empty(3, n, batch)
        above, here = acc[:, :-1].unbind(0), acc[:, 1:].unbind(0)
        soft_here, costs = soft[:, :-1].unbind(0), skewed.unbind(0)
        for k in range(k_total):
            torch.stack([above[k + 1], here[k + 1], above[k]], out=preds)
            torch.logsumexp(preds.mul_(-1.0 / gamma), dim=0, out=soft_here[k])
            soft_here[k].mul_(-gamma)
            torch.add(costs[k], soft_here[k], out=here[k + 2])
        items = torch.arange(batch, device=cost.device)
        ctx.save_for_backward(acc, soft, x_lengths, y_lengths)
        ctx.gamma = gamma
        ctx.m = cost.shape[2]
        return acc[x_lengths + y_lengths, x_lengths, items]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_value: Tensor) -> tuple[Tensor, None, None, None]:
        acc, soft, x_lengths, y_lengths = ctx.saved_tensors
        k_total, n, batch = acc.shape[0] - 2, acc.shape[1] - 1, acc.shape[2]
        # expected[k, i] = dR_end / dR(i, k - i): 1 at each item's end cell, then Algorithm 2 backwards.
        expected = torch.zeros_like(acc)
        expected[x_lengths + y_lengths - 2, x_lengths - 1, torch.arange(batch, device=acc.device)] = 1.0
        share = acc.new_empty(3, n, batch)
        succ = acc.new_empty(3, n, batch)
        total = acc.new_empty(n, batch)
        acc_here = acc[:, 1:].unbind(0)
        soft_up, soft_down = soft[:, :-1].unbind(0), soft[:, 1:].unbind(0)
        exp_up, exp_down = expected[:, :-1].unbind(0), expected[:, 1:].unbind(0)
        for k in range(k_total - 1, -1, -1):
            # successors (i+1, j), (i, j+1), (i+1, j+1): the share of their softmin that came from (i, j)
            torch.stack([soft_down[k + 1], soft_up[k + 1], soft_down[k + 2]], out=share)
            share.sub_(acc_here[k + 2]).mul_(1.0 / ctx.gamma).nan_to_num_(nan=-INF).exp_()  # nan: unreachable
            torch.stack([exp_down[k + 1], exp_up[k + 1], exp_down[k + 2]], out=succ)
            torch.sum(share.mul_(succ), dim=0, out=total)
            exp_up[k].add_(total)
        grad_cost = unskew(expected[:k_total, :n], ctx.m) * grad_value[:, None, None]
        return grad_cost, None, None, None


def soft_dtw_from_cost(
    cost: Tensor,
    gamma: float = 1.0,
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    band: int | None = None,
    slope: bool = False,
) -> Tensor:
    """Soft-DTW value [B] (0-d for an unbatched [N, M] cost) of local costs ``cost`` [B, N, M].

    Differentiable in ``cost``; masks and band as in :func:`chorus.align.dtw.dtw_from_cost`.
    """
    if not gamma > 0:
        raise DataError(f"gamma must be > 0, got {gamma}")
    cost, unbatched, x_lengths, y_lengths = batch_cost(cost, x_mask, y_mask)
    batch, n, m = cost.shape
    with torch.autocast(device_type=cost.device.type, enabled=False):
        cost = cost.to(torch.promote_types(cost.dtype, torch.float32))
        cost = cost.masked_fill(~allowed_cells(n, m, x_lengths, y_lengths, band, slope), INF)
        value = _SoftDTW.apply(cost, x_lengths, y_lengths, float(gamma))
    return value[0] if unbatched else value


def soft_dtw(
    x: Tensor,
    y: Tensor,
    gamma: float = 1.0,
    metric: Metric = "sqeuclidean",
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    band: int | None = None,
    slope: bool = False,
    divergence: bool = False,
) -> Tensor:
    """Soft-DTW [B] between ``x`` [B, N, D] and ``y`` [B, M, D] (or unbatched), differentiable in both.

    With the default squared-euclidean cost this is the quantity tslearn's
    ``soft_dtw`` computes. ``divergence=True`` returns the soft-DTW divergence,
    which is >= 0 and 0 at x == y (a proper loss for fitting a sequence).
    """

    def value(a: Tensor, b: Tensor, a_mask: Tensor | None, b_mask: Tensor | None) -> Tensor:
        return soft_dtw_from_cost(cost_matrix(a, b, metric), gamma, a_mask, b_mask, band, slope)

    result = value(x, y, x_mask, y_mask)
    if divergence:
        result = result - 0.5 * (value(x, x, x_mask, x_mask) + value(y, y, y_mask, y_mask))
    return result
