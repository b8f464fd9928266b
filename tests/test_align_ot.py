"""Sinkhorn OT: marginals, exact-LP limit, a float64 textbook reference, padding and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from chorus.align import sinkhorn
from chorus.errors import DataError


def textbook_sinkhorn(cost: np.ndarray, a: np.ndarray, b: np.ndarray, eps: float, iters: int = 5000) -> np.ndarray:
    """Plain (non-log) Sinkhorn-Knopp scaling in float64: fine for moderate eps."""
    kernel = np.exp(-cost / eps)
    v = np.ones_like(b)
    for _ in range(iters):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    return u[:, None] * kernel * v[None, :]


def random_simplex(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    w = rng.random(shape) + 0.1
    return w / w.sum(-1, keepdims=True)


def test_marginals_are_satisfied_batched() -> None:
    rng = np.random.default_rng(0)
    cost = torch.from_numpy(rng.random((4, 6, 9))).float()
    a = torch.from_numpy(random_simplex(rng, (4, 6))).float()
    b = torch.from_numpy(random_simplex(rng, (4, 9))).float()
    out = sinkhorn(cost, a, b, eps=0.05, tol=1e-6)
    assert (out.plan.sum(2) - a).abs().max() <= 1e-4
    assert (out.plan.sum(1) - b).abs().max() <= 1e-4
    torch.testing.assert_close(out.cost, (out.plan * cost).sum((1, 2)))


def test_matches_float64_textbook_reference() -> None:
    rng = np.random.default_rng(1)
    cost = rng.random((5, 7))
    a, b = random_simplex(rng, (5,)), random_simplex(rng, (7,))
    ref = textbook_sinkhorn(cost, a, b, eps=0.2)
    out = sinkhorn(torch.from_numpy(cost), torch.from_numpy(a), torch.from_numpy(b), eps=0.2, tol=1e-12, max_iter=5000)
    np.testing.assert_allclose(out.plan.numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_small_eps_converges_to_the_optimal_permutation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 6
    cost = rng.random((n, n))
    rows, cols = linear_sum_assignment(cost)
    permutation = np.zeros((n, n))
    permutation[rows, cols] = 1.0 / n
    out = sinkhorn(torch.from_numpy(cost), eps=2e-3, max_iter=20000, tol=1e-9)
    second_best_gap = 1e-3  # the LP optimum is unique with a margin on random costs; check it
    gaps = []
    for i in range(n):
        for j in range(n):
            if j != cols[i]:
                alt = cost.copy()
                alt[i, cols[i]] = np.inf
                r2, c2 = linear_sum_assignment(np.where(np.isinf(alt), 1e9, alt))
                gaps.append(alt[r2, c2].sum() - cost[rows, cols].sum())
    assert min(gaps) > second_best_gap
    np.testing.assert_allclose(out.plan.numpy(), permutation, atol=0.02 / n)
    assert out.cost.item() == pytest.approx(cost[rows, cols].sum() / n, abs=1e-2)


def test_large_eps_tends_to_the_independent_coupling() -> None:
    rng = np.random.default_rng(2)
    a, b = random_simplex(rng, (4,)), random_simplex(rng, (5,))
    out = sinkhorn(torch.from_numpy(rng.random((4, 5))), torch.from_numpy(a), torch.from_numpy(b), eps=1e4)
    np.testing.assert_allclose(out.plan.numpy(), np.outer(a, b), atol=1e-5)


def test_zero_mass_padding_and_infinite_costs_get_no_mass() -> None:
    rng = np.random.default_rng(3)
    cost = torch.from_numpy(rng.random((2, 5, 6)))
    a = torch.tensor([[0.25] * 4 + [0.0], [0.2] * 5], dtype=torch.float64)
    b = torch.tensor([[0.25] * 4 + [0.0, 0.0], [1 / 6] * 6], dtype=torch.float64)
    padded_cost = cost.clone()
    padded_cost[0, 4:, :] = float("inf")  # what cost_matrix puts on padded pairs
    padded_cost[0, :, 4:] = float("inf")
    leaf = padded_cost.clone().requires_grad_()
    out = sinkhorn(leaf, a, b, eps=0.1, tol=1e-10)
    alone = sinkhorn(cost[0, :4, :4], eps=0.1, tol=1e-10)
    np.testing.assert_allclose(out.plan[0, :4, :4].detach().numpy(), alone.plan.numpy(), atol=1e-9)
    assert (out.plan[0, 4:] == 0).all() and (out.plan[0, :, 4:] == 0).all()
    assert torch.isfinite(out.cost).all()
    out.cost.sum().backward()
    assert torch.isfinite(leaf.grad).all()


def test_gradcheck_through_the_iterations() -> None:
    rng = np.random.default_rng(4)
    cost = torch.from_numpy(rng.random((2, 3, 4))).requires_grad_()
    a = torch.from_numpy(random_simplex(rng, (2, 3))).requires_grad_()
    b = torch.from_numpy(random_simplex(rng, (2, 4)))
    # tol=0 fixes the iteration count, so the function is smooth in its inputs
    assert torch.autograd.gradcheck(lambda c, m: sinkhorn(c, m, b, eps=0.5, max_iter=50, tol=0).plan, (cost, a))


def test_bad_marginals_are_data_errors() -> None:
    cost = torch.rand(3, 4)
    with pytest.raises(DataError, match="equal mass"):
        sinkhorn(cost, torch.full((3,), 0.5), torch.full((4,), 0.25))
    with pytest.raises(DataError, match="shape"):
        sinkhorn(cost, torch.full((4,), 0.25))
