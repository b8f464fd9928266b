"""Hybrid fusion: an early (concatenation) branch and per-modality late experts, combined.

Why it works: the fused branch captures cross-modal interactions, the unimodal
experts keep working when other modalities are missing or noisy; a learned,
per-sample renormalised mixture (weights softmaxed over the fused branch plus
the present experts) lets training decide how much to trust each. Each expert
is also trained on its own modality's cross-entropy, so the experts stay real
unimodal classifiers instead of being crowded out by the fused branch.

Reference: the hybrid/intermediate family in Baltrušaitis et al., TPAMI 2019;
Snoek et al., ACM MM 2005. Baseline to beat: early fusion and the best late fusion.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.early import MissingTokens
from chorus.fusion.late import expert_cross_entropy, mixture_log_probs
from chorus.fusion.layers import mlp


@FUSIONS.register("hybrid")
class HybridFusion(Fusion):
    """Mixture of an early-fusion classifier and unimodal classifiers (log-probability output)."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, out_dim)
        self.missing = MissingTokens(self.dims)
        self.fused = mlp(sum(self.dims.values()), hidden, out_dim, dropout)
        self.experts = nn.ModuleDict({m: mlp(d, hidden, out_dim, dropout) for m, d in self.dims.items()})
        self.weight_logits = nn.Parameter(torch.zeros(len(self.dims) + 1))

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        return mixture_log_probs(*self._branches(features, present), self.weight_logits)

    def loss(  # type: ignore[override]  # pooled fusion: no extra forward inputs
        self, features: Mapping[str, Tensor], label: Tensor, present: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        log_probs, mask = self._branches(features, present)
        ce = F.cross_entropy(mixture_log_probs(log_probs, mask, self.weight_logits), label)
        expert_ce = expert_cross_entropy(log_probs[:, 1:], mask[:, 1:], label)
        return {"loss": ce + expert_ce, "ce": ce.detach(), "expert_ce": expert_ce.detach()}

    def _branches(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None) -> tuple[Tensor, Tensor]:
        """Log-posteriors [B, 1 + M, K] of the fused branch and each expert, and which are present."""
        xs, ps = self.prepare(features, present)
        filled = self.missing(xs, ps)
        fused = self.fused(torch.cat([filled[m] for m in self.modalities], -1))
        branches = [fused] + [self.experts[m](xs[m]) for m in self.modalities]
        log_probs = torch.stack([F.log_softmax(b.float(), -1) for b in branches], 1)
        mask = torch.stack([torch.ones_like(ps[self.modalities[0]])] + [ps[m] for m in self.modalities], 1)
        return log_probs, mask
