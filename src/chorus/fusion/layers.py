"""Small building blocks the neural fusions share: an MLP, masked pooling, positions.

Kept in one place so every fusion's head and pooling behave the same way, which
keeps comparisons between fusion families about the fusion, not the plumbing.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Two-layer perceptron: the standard nonlinear head on top of a fused vector."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


def masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``tokens`` [B, T, D] over positions where ``mask`` [B, T] is True.

    Rows with no True position return zeros (the caller decides what "nothing"
    means); the count is clamped so no division by zero can create NaNs.
    """
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def sinusoidal_positions(length: int, dim: int, like: Tensor) -> Tensor:
    """Fixed sinusoidal position codes [length, dim] (Vaswani et al. 2017), on ``like``'s device/dtype.

    Fixed rather than learned so sequences longer than any seen in training
    still get meaningful positions.
    """
    position = torch.arange(length, device=like.device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=like.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=like.device, dtype=torch.float32)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return codes.to(like.dtype)
