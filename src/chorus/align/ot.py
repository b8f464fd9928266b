"""Entropic optimal transport (Sinkhorn): a soft, many-to-many alignment between two sets.

Optimal transport moves mass ``a`` [N] onto mass ``b`` [M] at least total cost
sum_ij P_ij C_ij; unlike DTW it needs no order, so it aligns e.g. image regions
with words. Entropic regularisation (Cuturi 2013, "Sinkhorn Distances:
Lightspeed Computation of Optimal Transport", NeurIPS) adds ``-eps * H(P)``,
which makes the problem strictly convex and solvable by alternately rescaling
rows and columns (Sinkhorn-Knopp), differentiably. As eps -> 0 the plan tends
to the exact (LP) optimum; for eps large it tends to the independent coupling
``a b^T`` -- the no-alignment baseline it is meant to beat.

The iterations run on the dual potentials in the log domain (Peyre & Cuturi
2019, "Computational Optimal Transport", Sec. 4.4), so small eps does not
underflow the kernel exp(-C / eps). Batched; gradients flow by unrolling.
Zero-mass elements (``a_i = 0``, e.g. padding) and +inf costs get no mass.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from chorus.errors import DataError


class Transport(NamedTuple):
    """Transport plan [B, N, M] (rows sum to a, columns to b) and its cost sum(P * C) [B]."""

    plan: Tensor
    cost: Tensor


def _marginal(mass: Tensor | None, batch: int, size: int, like: Tensor, name: str) -> Tensor:
    """The masses [B, size] in the cost's dtype, uniform when not given; checks shape and sign."""
    if mass is None:
        return torch.full((batch, size), 1.0 / size, dtype=like.dtype, device=like.device)
    mass = mass.to(like.dtype)
    if mass.shape != (batch, size):
        raise DataError(f"{name} has shape {tuple(mass.shape)}, expected {(batch, size)}")
    if bool((mass < 0).any()):
        raise DataError(f"{name} has negative mass")
    return mass


def sinkhorn(
    cost: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    eps: float = 0.1,
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
) -> Transport:
    """Entropic OT between marginals ``a`` [B, N] and ``b`` [B, M] (default uniform) under ``cost`` [B, N, M].

    ``a`` and ``b`` must have equal totals per item (checked). Iterates until
    the row sums are within ``tol`` of ``a`` (max abs error; column sums are
    exact after each update) or ``max_iter``. Unbatched [N, M] costs with [N], [M] marginals
    give unbatched results. ``eps`` is in the units of ``cost``: about 1e-2 of
    its range is close to the exact plan, larger is smoother and faster.
    """
    if not eps > 0:
        raise DataError(f"eps must be > 0, got {eps}")
    unbatched = cost.dim() == 2
    if unbatched:
        cost = cost.unsqueeze(0)
        a = None if a is None else a.unsqueeze(0)
        b = None if b is None else b.unsqueeze(0)
    if cost.dim() != 3:
        raise DataError(f"cost must be [B, N, M] or [N, M], got shape {tuple(cost.shape)}")
    with torch.autocast(device_type=cost.device.type, enabled=False):
        cost = cost.to(torch.promote_types(cost.dtype, torch.float32))
        batch, n, m = cost.shape
        a = _marginal(a, batch, n, cost, "a")
        b = _marginal(b, batch, m, cost, "b")
        total_a, total_b = a.sum(1), b.sum(1)
        if not torch.allclose(total_a, total_b, rtol=1e-4, atol=1e-6):
            raise DataError(f"marginals must have equal mass per item, got {total_a.tolist()} and {total_b.tolist()}")
        usable = (a > 0)[:, :, None] & (b > 0)[:, None, :] & torch.isfinite(cost)
        finite_cost = torch.where(usable, cost, torch.zeros_like(cost))
        # Unusable cells get a very negative (but finite, so gradients stay finite) log-kernel.
        floor = torch.finfo(cost.dtype).min / 4
        log_kernel = torch.where(usable, -finite_cost / eps, torch.full_like(cost, floor))
        tiny = torch.finfo(cost.dtype).tiny
        log_a, log_b = a.clamp_min(tiny).log(), b.clamp_min(tiny).log()
        # Zero-mass elements keep the floor as potential: they never send or receive mass.
        floor_a, floor_b = torch.full_like(a, floor), torch.full_like(b, floor)
        f = torch.zeros_like(a)  # potentials divided by eps
        g = torch.zeros_like(b)
        for step in range(1, max_iter + 1):
            f = torch.where(a > 0, log_a - torch.logsumexp(log_kernel + g[:, None, :], dim=2), floor_a)
            g = torch.where(b > 0, log_b - torch.logsumexp(log_kernel + f[:, :, None], dim=1), floor_b)
            if step % check_every == 0:
                with torch.no_grad():  # after the g update columns are exact: check the rows
                    rows = torch.logsumexp(log_kernel + f[:, :, None] + g[:, None, :], dim=2).exp()
                    if float((rows - a).abs().max()) < tol:
                        break
        plan = torch.where(usable, (log_kernel + f[:, :, None] + g[:, None, :]).exp(), torch.zeros_like(cost))
        transport_cost = (plan * finite_cost).sum(dim=(1, 2))
    if unbatched:
        return Transport(plan[0], transport_cost[0])
    return Transport(plan, transport_cost)
