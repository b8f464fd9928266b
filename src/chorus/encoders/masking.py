"""Mask helpers: mask-aware pooling and the all-real mask of unpadded outputs.

Padding must never change an example's pooled vector (batching should not alter
results), so every pool here reads only the positions the mask marks as real.
Encoders always return a mask with their tokens (all True when nothing is
padded) so downstream code never has to special-case ``None``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(tokens: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``tokens`` [B, T, D] over the real positions of ``mask`` [B, T] (all when None).

    This is sentence-transformers' mean pooling (the denominator is clamped at
    1e-9 so an all-padding row gives zeros rather than NaN).
    """
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def last_real_index(mask: Tensor | None, length: int, batch: int, device: torch.device) -> Tensor:
    """Index [B] of the last real position of each row of ``mask`` [B, L] (``L - 1`` when None).

    With right padding and the end-of-text token last, this is CLIP's
    ``argmax(ids)`` end-of-text position without assuming EOT has the largest id.
    """
    if mask is None:
        return torch.full((batch,), length - 1, dtype=torch.long, device=device)
    return length - 1 - mask.flip(1).int().argmax(dim=1)


def mask_or_all_real(mask: Tensor | None, tokens: Tensor) -> Tensor:
    """``mask`` itself, or an all-True [B, T] mask for ``tokens`` [B, T, D] when there is none."""
    if mask is not None:
        return mask
    return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
