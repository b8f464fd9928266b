"""Tensor fusion (TFN) and its low-rank factorisation (LMF).

Tensor Fusion Network (Zadeh et al., "Tensor Fusion Network for Multimodal
Sentiment Analysis", EMNLP 2017): each modality is projected to h_m, extended
with a constant 1, and the outer product ⊗_m [h_m; 1] is classified by an MLP.
Why it works: the product contains every unimodal, bimodal, ..., M-modal
multiplicative interaction explicitly (the appended 1 keeps the lower-order
terms), so even a linear layer on it models cross-modal interactions.
A missing modality gets h_m = 0: every term involving it vanishes and the
tensor reduces exactly to the fusion of the remaining modalities.

Low-rank Multimodal Fusion (Liu et al., "Efficient Low-rank Multimodal Fusion
with Modality-Specific Factors", ACL 2018): the weight W acting on that tensor
is constrained to rank r, W = Σ_r λ_r ⊗_m W_m^(r), so
W·vec(⊗_m z_m) = Σ_r λ_r Π_m (W_m^(r) z_m) is computed without ever forming the
tensor — linear instead of exponential cost in M. All factors W_m, the fusion
weights λ and the bias are ``nn.Parameter``s (a popular implementation leaves
some as plain tensors, so they silently never train). LMF's output is the
class logits directly, as in the paper.

Baseline to beat: early (concatenation) fusion and the best unimodal model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import mlp


def outer_product(vectors: Sequence[Tensor]) -> Tensor:
    """Flattened batched outer product [B, Π_m d_m] of vectors [B, d_m] (first index slowest)."""
    out = vectors[0]
    for v in vectors[1:]:
        out = torch.einsum("bi,bj->bij", out, v).flatten(1)
    return out


class AugmentedProjections(nn.Module):
    """Per-modality subnetworks giving z_m = [h_m; 1], with h_m = 0 when m is missing."""

    def __init__(self, dims: Mapping[str, int], factor_dim: int, dropout: float) -> None:
        super().__init__()
        self.nets = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(d, factor_dim), nn.ReLU(), nn.Dropout(dropout)) for m, d in dims.items()}
        )

    def forward(self, xs: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> list[Tensor]:
        zs = []
        for m, net in self.nets.items():
            h = torch.where(present[m].unsqueeze(-1), net(xs[m]), 0.0)
            zs.append(torch.cat([h, h.new_ones(h.shape[0], 1)], -1))
        return zs


@FUSIONS.register("tensor")
class TensorFusion(Fusion):
    """TFN: outer product of [h_m; 1] vectors, then an MLP head."""

    def __init__(
        self, dims: Mapping[str, int], out_dim: int, factor_dim: int = 8, hidden: int = 64, dropout: float = 0.1
    ) -> None:
        super().__init__(dims, out_dim)
        self.project = AugmentedProjections(self.dims, factor_dim, dropout)
        self.head = mlp((factor_dim + 1) ** len(self.dims), hidden, out_dim, dropout)

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        xs, ps = self.prepare(features, present)
        return self.head(outer_product(self.project(xs, ps)))


@FUSIONS.register("low_rank_tensor")
class LowRankTensorFusion(Fusion):
    """LMF: rank-``rank`` modality-specific factors applied to [h_m; 1], giving logits."""

    def __init__(
        self, dims: Mapping[str, int], out_dim: int, rank: int = 4, factor_dim: int = 16, dropout: float = 0.1
    ) -> None:
        super().__init__(dims, out_dim)
        self.project = AugmentedProjections(self.dims, factor_dim, dropout)
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.empty(rank, factor_dim + 1, out_dim)) for m in self.dims}
        )
        self.fusion_weights = nn.Parameter(torch.empty(rank))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        for factor in self.factors.values():
            # Each rank-r product of M factors should have O(1) scale; std per factor ~ (1/fan_in)^(1/2).
            nn.init.normal_(factor, std=1.0 / math.sqrt(factor_dim + 1))
        nn.init.normal_(self.fusion_weights, std=1.0 / math.sqrt(rank))

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        xs, ps = self.prepare(features, present)
        product = None
        for z, factor in zip(self.project(xs, ps), self.factors.values(), strict=True):
            term = torch.einsum("bi,rio->bro", z, factor.to(z.dtype))
            product = term if product is None else product * term
        assert product is not None  # Fusion refuses empty dims, so the loop ran
        return torch.einsum("r,bro->bo", self.fusion_weights.to(product.dtype), product) + self.bias.to(product.dtype)

    def full_weight(self) -> Tensor:
        """The equivalent dense TFN weight [Π_m (factor_dim+1), out_dim] = Σ_r λ_r ⊗_m W_m^(r).

        Its rows follow ``outer_product``'s index order, so
        ``outer_product(zs) @ full_weight() + bias`` equals ``forward`` (without dropout).
        """
        factors = list(self.factors.values())
        weight = factors[0]
        for factor in factors[1:]:
            weight = torch.einsum("rao,rjo->rajo", weight, factor).flatten(1, 2)
        return torch.einsum("r,rao->ao", self.fusion_weights, weight)
