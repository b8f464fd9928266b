"""Cross-modal transformer fusion in the style of MulT.

Tsai, Bai, Liang, Kolter, Morency & Salakhutdinov, "Multimodal Transformer for
Unaligned Multimodal Language Sequences", ACL 2019. For every target modality
α and every other (source) modality β, a stack of cross-modal attention blocks
lets α's tokens query β's tokens (Q from α, K/V from β); the outputs for all
sources are concatenated per α, refined by a self-attention block, pooled
(masked mean over α's real tokens) and all targets are concatenated into an MLP
head giving logits.

Why it works: attention aligns the sequences softly, so modalities need not be
synchronised (no word-level alignment), and each modality is repeatedly
re-expressed in terms of the others — latent cross-modal adaptation.

Inputs are token sequences [B, T_m, d_m] with optional key-padding masks
``masks[m]`` [B, T_m] (True = real token); pooled [B, d_m] features are treated
as length-1 sequences. Attention is ``torch.nn.functional.scaled_dot_product_attention``
with a boolean key mask. A missing (or fully padded) source contributes nothing
(its attention output is zeroed, the residual passes through); a missing target
is replaced by a learned vector after pooling.

Baseline to beat: early fusion of pooled features and late fusion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.errors import ConfigError, DataError
from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import masked_mean, mlp, sinusoidal_positions


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: (cross- or self-) attention then a feed-forward layer."""

    def __init__(self, dim: int, heads: int, dropout: float, cross: bool) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor, key_mask: Tensor, context: Tensor | None = None) -> Tensor:
        """``x`` [B, Tq, D] attends to ``context`` [B, Tk, D] (or itself) where ``key_mask`` [B, Tk] is True.

        Rows of ``key_mask`` without any True get no attention update.
        """
        q_in = self.norm_q(x)
        kv_in = q_in if self.norm_kv is None else self.norm_kv(context)
        has_keys = key_mask.any(1)
        # A fully masked row would give softmax over nothing (NaN); let it attend anywhere, then zero it.
        safe_mask = key_mask | ~has_keys.unsqueeze(1)
        q = self._split(self.query(q_in))
        k, v = (self._split(t) for t in self.key_value(kv_in).chunk(2, -1))
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=safe_mask[:, None, None, :], dropout_p=self.dropout if self.training else 0.0
        )
        attended = self.out(attended.transpose(1, 2).flatten(2))
        x = x + torch.where(has_keys[:, None, None], attended, 0.0)
        return x + self.ff(self.norm_ff(x))

    def _split(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)


@FUSIONS.register("cross_transformer")
class CrossModalTransformer(Fusion):
    """MulT-style fusion of token sequences; returns logits [B, out_dim]."""

    accepts_tokens = True

    def __init__(
        self,
        dims: Mapping[str, int],
        out_dim: int,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 1,
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims, out_dim)
        if len(self.dims) < 2:
            raise ConfigError("cross_transformer needs at least two modalities in `dims`")
        if d_model % heads or d_model % 2:
            raise ConfigError(f"d_model={d_model} must be even and divisible by heads={heads}")
        self.d_model = d_model
        self.embed = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in self.dims.items()})
        self.cross = nn.ModuleDict(
            {
                f"{target}_from_{source}": nn.ModuleList(
                    AttentionBlock(d_model, heads, dropout, cross=True) for _ in range(layers)
                )
                for target in self.modalities
                for source in self.modalities
                if source != target
            }
        )
        branch_dim = d_model * (len(self.dims) - 1)
        self.self_attention = nn.ModuleDict(
            {m: AttentionBlock(branch_dim, heads, dropout, cross=False) for m in self.modalities}
        )
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(branch_dim)) for m in self.modalities})
        self.head = mlp(branch_dim * len(self.dims), hidden, out_dim, dropout)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor] | None = None,
        masks: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        xs, ps = self.prepare(features, present)
        unknown = sorted(set(masks or {}) - set(self.dims))
        if unknown:
            raise DataError(f"masks for unknown modalities {unknown}; fusion expects {list(self.dims)}")
        valid = {m: self._token_mask(m, xs[m], (masks or {}).get(m)) & ps[m].unsqueeze(1) for m in self.modalities}
        tokens = {}
        for m in self.modalities:
            h = self.embed[m](xs[m])
            tokens[m] = h + sinusoidal_positions(h.shape[1], self.d_model, h)
        pooled = []
        for target in self.modalities:
            branches = []
            for source in self.modalities:
                if source == target:
                    continue
                h = tokens[target]
                for block in cast(nn.ModuleList, self.cross[f"{target}_from_{source}"]):
                    h = block(h, valid[source], tokens[source])
                branches.append(h)
            h = self.self_attention[target](torch.cat(branches, -1), valid[target])
            has_tokens = valid[target].any(1, keepdim=True)
            pooled.append(torch.where(has_tokens, masked_mean(h, valid[target]), self.missing[target].to(h.dtype)))
        return self.head(torch.cat(pooled, -1))

    def _token_mask(self, m: str, x: Tensor, mask: Tensor | None) -> Tensor:
        if mask is None:
            return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(x.shape[:2]):
            raise DataError(
                f"masks[{m!r}] has dtype {mask.dtype} and shape {tuple(mask.shape)}; expected bool {tuple(x.shape[:2])}"
            )
        return mask
