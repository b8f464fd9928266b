"""ContrastiveLoss and SigmoidLoss in one process: values vs numpy, gradients vs finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import log_expit, logsumexp

from chorus.contrastive import ContrastiveLoss, SigmoidLoss


def features(n: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    b = F.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)
    return a, b


def numpy_infonce(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    logits = scale * a @ b.T
    idx = np.arange(len(a))
    row = logsumexp(logits, axis=1) - logits[idx, idx]
    col = logsumexp(logits, axis=0) - logits[idx, idx]
    return float((row.mean() + col.mean()) / 2)


def numpy_siglip(a: np.ndarray, b: np.ndarray, scale: float, bias: float) -> float:
    logits = scale * a @ b.T + bias
    signs = 2 * np.eye(len(a)) - 1
    return float(-log_expit(signs * logits).sum() / len(a))


@pytest.mark.parametrize("scale", [1.0, 1 / 0.07, 100.0])
def test_infonce_matches_numpy(scale: float) -> None:
    a, b = features(12, 5, seed=0)
    got = ContrastiveLoss()(a, b, torch.tensor(scale, dtype=torch.float64))
    assert got.item() == pytest.approx(numpy_infonce(a.numpy(), b.numpy(), scale), rel=1e-10)


def test_infonce_is_low_for_matched_and_chance_for_unrelated_features() -> None:
    n = 64
    a, b = features(n, 32, seed=1)
    loss = ContrastiveLoss()
    assert loss(a, a, torch.tensor(100.0, dtype=torch.float64)).item() < 1e-3
    # unrelated features at scale 1: logits ≈ 0, so each row is a uniform guess among n
    assert loss(a, b, torch.tensor(1.0, dtype=torch.float64)).item() == pytest.approx(math.log(n), abs=0.2)


@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (3.0, 0.5)])
def test_sigmoid_matches_numpy(scale: float, bias: float) -> None:
    a, b = features(9, 4, seed=2)
    got = SigmoidLoss()(a, b, torch.tensor(scale, dtype=torch.float64), torch.tensor(bias, dtype=torch.float64))
    assert got.item() == pytest.approx(numpy_siglip(a.numpy(), b.numpy(), scale, bias), rel=1e-10)


def test_gradients_match_finite_differences() -> None:
    a, b = features(6, 3, seed=3)
    a.requires_grad_(True)
    b.requires_grad_(True)
    scale = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ContrastiveLoss(), (a, b, scale))
    assert torch.autograd.gradcheck(SigmoidLoss(), (a, b, scale, bias))


def test_bf16_autocast_computes_the_logits_in_float32() -> None:
    a, b = features(16, 8, seed=4, dtype=torch.float32)
    a16, b16 = a.bfloat16(), b.bfloat16()
    scale, bias = torch.tensor(100.0), torch.tensor(-10.0)
    for loss, args in ((ContrastiveLoss(), (scale,)), (SigmoidLoss(), (scale, bias))):
        reference = loss(a16.float(), b16.float(), *args)  # same inputs, float32 arithmetic
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = loss(a16, b16, *args)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(reference.item(), rel=1e-5)
