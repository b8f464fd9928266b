"""DTW, soft-DTW and cost matrices against dtaidistance, tslearn and brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from dtaidistance import dtw as dtai_dtw
from dtaidistance import dtw_ndim
from tslearn.metrics import SoftDTW
from tslearn.metrics import soft_dtw as tslearn_soft_dtw

from chorus.align import cosine_similarity_matrix, cost_matrix, dtw, dtw_from_cost, soft_dtw, soft_dtw_from_cost
from chorus.errors import DataError


def numpy_dtw(cost: np.ndarray, allowed: np.ndarray | None = None) -> float:
    """Textbook O(NM) DTW, the independent reference for banded cases."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(n):
        for j in range(m):
            if allowed is None or allowed[i, j]:
                acc[i + 1, j + 1] = cost[i, j] + min(acc[i, j + 1], acc[i + 1, j], acc[i, j])
    return float(acc[n, m])


def check_path(path: np.ndarray, n: int, m: int) -> None:
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = np.diff(path, axis=0)
    assert {tuple(s) for s in steps} <= {(1, 0), (0, 1), (1, 1)}


def test_cost_matrices_match_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(3, 5, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 7, 4, generator=g, dtype=torch.float64),
    )
    diff = a[:, :, None, :] - b[:, None, :, :]
    torch.testing.assert_close(cost_matrix(a, b, "sqeuclidean"), diff.square().sum(-1))
    torch.testing.assert_close(cost_matrix(a, b, "euclidean"), diff.square().sum(-1).sqrt())
    cos = F.cosine_similarity(a[:, :, None, :], b[:, None, :, :], dim=-1)
    torch.testing.assert_close(cosine_similarity_matrix(a, b), cos)
    torch.testing.assert_close(cost_matrix(a, b, "cosine"), 1 - cos)
    torch.testing.assert_close(cost_matrix(a[0], b[0]), diff[0].square().sum(-1))  # unbatched
    b_mask = torch.ones(3, 7, dtype=torch.bool)
    b_mask[1, 4:] = False
    masked = cost_matrix(a, b, "cosine", b_mask=b_mask)
    assert torch.isinf(masked[1, :, 4:]).all() and torch.isfinite(masked[1, :, :4]).all()
    assert (cosine_similarity_matrix(a, b, b_mask=b_mask)[1, :, 4:] == float("-inf")).all()
    with pytest.raises(DataError, match="metric"):
        cost_matrix(a, b, "manhattan")  # type: ignore[arg-type]


@pytest.mark.parametrize("n,m", [(12, 12), (9, 15), (17, 6)])
def test_dtw_matches_dtaidistance_1d_with_and_without_window(n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    x, y = rng.normal(size=(8, n)), rng.normal(size=(8, m))
    xt, yt = torch.from_numpy(x)[..., None], torch.from_numpy(y)[..., None]
    for window in (None, 1, 2, 4):
        ours = dtw(xt, yt, band=None if window is None else window - 1).distance.numpy()
        kwargs = {} if window is None else {"window": window}
        ref = np.array([dtai_dtw.distance(x[b], y[b], **kwargs) for b in range(8)]) ** 2  # dtaidistance takes a sqrt
        np.testing.assert_allclose(ours, ref, rtol=1e-10)


def test_dtw_matches_dtaidistance_ndim_batched_float32() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 30, 13)), rng.normal(size=(16, 25, 13))
    ours = dtw(torch.from_numpy(x).float(), torch.from_numpy(y).float()).distance.numpy()
    ref = np.array([dtw_ndim.distance(x[b], y[b]) for b in range(16)]) ** 2
    np.testing.assert_allclose(ours, ref, rtol=1e-4)
    ours_band = dtw(torch.from_numpy(x), torch.from_numpy(y), band=3).distance.numpy()
    ref_band = np.array([dtw_ndim.distance(x[b], y[b], window=4) for b in range(16)]) ** 2
    np.testing.assert_allclose(ours_band, ref_band, rtol=1e-10)


def test_dtw_paths_are_valid_optimal_and_inside_the_band() -> None:
    g = torch.Generator().manual_seed(2)
    cost = torch.rand(6, 11, 14, generator=g, dtype=torch.float64)
    for band in (None, 0, 2):
        result = dtw_from_cost(cost, band=band, return_path=True)
        assert result.paths is not None
        for b, path in enumerate(result.paths):
            check_path(path, 11, 14)
            assert cost[b, path[:, 0], path[:, 1]].sum().item() == pytest.approx(result.distance[b].item(), rel=1e-12)
            if band is not None:  # widened toward the end corner by the length difference (3)
                assert ((path[:, 1] - path[:, 0] <= band + 3) & (path[:, 0] - path[:, 1] <= band)).all()


def test_slope_band_matches_its_definition_and_is_always_feasible() -> None:
    rng = np.random.default_rng(3)
    for n, m, band in [(8, 20, 0), (8, 20, 3), (20, 7, 1), (10, 10, 2), (5, 31, 2)]:
        cost = rng.random((n, m))
        lo, hi = min(n, m) - 1, max(n, m) - 1
        radius = max(band, hi / lo / 2)
        i, j = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
        along = np.abs(j - i * (m - 1) / (n - 1)) if m >= n else np.abs(i - j * (n - 1) / (m - 1))
        allowed = along <= radius + 1e-9
        ours = dtw_from_cost(torch.from_numpy(cost), band=band, slope=True, return_path=True)
        assert np.isfinite(ours.distance.item())
        assert ours.distance.item() == pytest.approx(numpy_dtw(cost, allowed), rel=1e-12)
        assert allowed[ours.paths[0][:, 0], ours.paths[0][:, 1]].all()


def test_masks_align_each_item_within_its_own_lengths() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(3, 10, 2, generator=g), torch.randn(3, 12, 2, generator=g)
    x_len, y_len = [10, 6, 3], [12, 5, 9]
    x_mask = torch.arange(10)[None] < torch.tensor(x_len)[:, None]
    y_mask = torch.arange(12)[None] < torch.tensor(y_len)[:, None]
    x_pad = x.masked_fill(~x_mask[..., None], float("nan"))  # padding content must never matter
    batched = dtw(x_pad, y, x_mask=x_mask, y_mask=y_mask, band=2, return_path=True)
    soft = soft_dtw(x_pad.nan_to_num(1e3), y, 0.5, x_mask=x_mask, y_mask=y_mask)
    for b in range(3):
        single = dtw(x[b, : x_len[b]], y[b, : y_len[b]], band=2, return_path=True)
        assert batched.distance[b].item() == pytest.approx(single.distance.item(), rel=1e-5)
        np.testing.assert_array_equal(batched.paths[b], single.paths[0])
        one = soft_dtw(x[b, : x_len[b]], y[b, : y_len[b]], 0.5)
        assert soft[b].item() == pytest.approx(one.item(), rel=1e-5)
    bad = x_mask.clone()
    bad[0, 2] = False  # a hole in the middle is not right padding
    with pytest.raises(DataError, match="x_mask"):
        dtw(x, y, x_mask=bad)


def test_dtw_recovers_a_known_time_stretch() -> None:
    g = torch.Generator().manual_seed(5)
    y = torch.randn(15, 3, generator=g)
    repeats = torch.randint(1, 4, (15,), generator=g)
    x = y.repeat_interleave(repeats, dim=0)  # each y element held for 1-3 frames
    result = dtw(x, y, return_path=True)
    assert result.distance.item() == pytest.approx(0.0, abs=1e-5)  # float32 cdist round-off
    truth = torch.arange(15).repeat_interleave(repeats).numpy()
    path = result.paths[0]
    np.testing.assert_array_equal(path[:, 1], truth)


@pytest.mark.parametrize("gamma", [0.01, 0.1, 1.0, 10.0])
def test_soft_dtw_matches_tslearn(gamma: float) -> None:
    rng = np.random.default_rng(int(gamma * 100))
    x, y = rng.normal(size=(4, 9, 3)), rng.normal(size=(4, 13, 3))
    ours = soft_dtw(torch.from_numpy(x), torch.from_numpy(y), gamma).numpy()
    ref = np.array([tslearn_soft_dtw(x[b], y[b], gamma=gamma) for b in range(4)])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)


def test_soft_dtw_gradient_equals_tslearn_expected_alignment() -> None:
    rng = np.random.default_rng(6)
    cost = rng.random((8, 11))
    ref = SoftDTW(cost, gamma=0.3)
    value = ref.compute()
    expected = ref.grad()
    ours = torch.from_numpy(cost).requires_grad_()
    out = soft_dtw_from_cost(ours, 0.3)
    out.backward()
    assert out.item() == pytest.approx(value, rel=1e-10)
    np.testing.assert_allclose(ours.grad.numpy(), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("band,slope,masked", [(None, False, False), (1, False, True), (1, True, False)])
def test_soft_dtw_gradcheck(band: int | None, slope: bool, masked: bool) -> None:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 7, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y_mask = None
    if masked:
        y_mask = torch.ones(3, 7, dtype=torch.bool)
        y_mask[1, 5:] = False
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.7, band=band, slope=slope, y_mask=y_mask), (x, y))


def test_soft_dtw_tends_to_dtw_and_its_gradient_to_the_path() -> None:
    g = torch.Generator().manual_seed(8)
    cost = torch.rand(2, 10, 12, generator=g, dtype=torch.float64)
    hard = dtw_from_cost(cost, return_path=True)
    n_steps = 10 + 12 - 1
    previous_gap = None
    for gamma in (1.0, 0.1, 1e-3):
        soft = soft_dtw_from_cost(cost, gamma)
        gap = (hard.distance - soft).max().item()
        assert 0 <= gap <= gamma * np.log(3) * n_steps  # softmin lies within gamma*log(3) below min per step
        assert previous_gap is None or gap < previous_gap
        previous_gap = gap
    leaf = cost.clone().requires_grad_()
    soft_dtw_from_cost(leaf, 1e-3).sum().backward()
    path_matrix = torch.zeros_like(cost)
    for b, path in enumerate(hard.paths):
        path_matrix[b, path[:, 0], path[:, 1]] = 1.0
    torch.testing.assert_close(leaf.grad, path_matrix, atol=1e-6, rtol=0)


def test_soft_dtw_divergence() -> None:
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(3, 8, 2)), rng.normal(size=(3, 10, 2))
    ours = soft_dtw(torch.from_numpy(x), torch.from_numpy(y), 0.5, divergence=True).numpy()
    ref = np.array(
        [
            tslearn_soft_dtw(x[b], y[b], gamma=0.5)
            - 0.5 * (tslearn_soft_dtw(x[b], x[b], gamma=0.5) + tslearn_soft_dtw(y[b], y[b], gamma=0.5))
            for b in range(3)
        ]
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-9)
    assert (ours > 0).all()
    same = soft_dtw(torch.from_numpy(x), torch.from_numpy(x), 0.5, divergence=True)
    torch.testing.assert_close(same, torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)


def test_alignment_runs_under_bf16_autocast() -> None:
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, 20, 8, generator=g, requires_grad=True)
    y = torch.randn(2, 16, 8, generator=g)
    reference = dtw(x, y).distance
    reference_soft = soft_dtw(x, y, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hard = dtw(x, y).distance
        soft = soft_dtw(x, y, 0.1)
    assert hard.dtype == torch.float32 and soft.dtype == torch.float32
    torch.testing.assert_close(hard, reference)
    torch.testing.assert_close(soft, reference_soft)
    soft.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
