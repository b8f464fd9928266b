"""Implicit alignment by cross-attention: each query softly picks the keys it relates to.

Attention (Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by Jointly
Learning to Align and Translate", ICLR; scaled dot-product and multi-head form
from Vaswani et al. 2017) learns the alignment as a by-product of the task: the
weights ``softmax(q k^T / sqrt(d))`` over keys are a soft alignment of every
query (e.g. a word) to the keys (e.g. audio frames). Unlike DTW it needs no
monotonicity and no local cost, only a training signal; its peaks can be read
out and scored against ground-truth segments (:mod:`chorus.align.metrics`),
where the baseline is a uniform (diagonal) alignment.

The module is written out rather than using ``nn.MultiheadAttention`` (which
requires the query width to equal the model width) or
``scaled_dot_product_attention`` (which does not return the weights), because
the per-head weights are the point here.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from chorus.errors import DataError


class CrossAttention(nn.Module):
    """Multi-head cross-attention from queries [B, Nq, query_dim] to keys [B, Nk, key_dim].

    ``forward`` returns ``(output [B, Nq, dim], weights [B, heads, Nq, Nk])``;
    ``key_mask`` [B, Nk] (True = real key) keeps padding out of every softmax.
    """

    def __init__(self, query_dim: int, key_dim: int, dim: int, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise DataError(f"dim {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.out_dim = dim
        self.to_q = nn.Linear(query_dim, dim)
        self.to_k = nn.Linear(key_dim, dim)
        self.to_v = nn.Linear(key_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, -1).transpose(1, 2)  # [B, H, L, dim / H]

    def forward(self, queries: Tensor, keys: Tensor, key_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if queries.dim() != 3 or keys.dim() != 3 or queries.shape[0] != keys.shape[0]:
            raise DataError(
                f"expected queries [B, Nq, D] and keys [B, Nk, D], got {tuple(queries.shape)} and {tuple(keys.shape)}"
            )
        q, k, v = self._split(self.to_q(queries)), self._split(self.to_k(keys)), self._split(self.to_v(keys))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if key_mask is not None:
            if key_mask.shape != keys.shape[:2]:
                raise DataError(f"key_mask has shape {tuple(key_mask.shape)}, expected {tuple(keys.shape[:2])}")
            if not bool(key_mask.any(dim=1).all()):
                raise DataError("key_mask has an item with no real key: its attention is undefined")
            scores = scores.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1)
        return self.to_out(mixed), weights


def attention_peaks(weights: Tensor, average_heads: bool = True) -> Tensor:
    """Key position each query attends to most: [B, H, Nq, Nk] -> [B, Nq] (or [B, H, Nq]).

    With ``average_heads`` the heads' weights are averaged first, the usual
    read-out of a multi-head alignment; 3-D weights [B, Nq, Nk] are used as is.
    """
    if weights.dim() == 4 and average_heads:
        weights = weights.mean(dim=1)
    return weights.argmax(dim=-1)
