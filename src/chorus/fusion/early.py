"""Early fusion: concatenate the modalities' features, then one MLP classifies.

Why it works: the MLP sees all modalities jointly, so it can model any
cross-modal interaction (e.g. a label that depends on A *and* B), which late
fusion cannot. Missing modalities are replaced by a learned "missing" vector,
so the network learns what to do without them instead of mistaking zeros for data.

Reference: Snoek, Worring & Smeulders, "Early versus late fusion in semantic
video analysis", ACM MM 2005; taxonomy in Baltrušaitis, Ahuja & Morency,
"Multimodal Machine Learning: A Survey and Taxonomy", TPAMI 2019.
Baseline to beat: the best unimodal model (early fusion itself with a single
modality in ``dims``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import mlp


class MissingTokens(nn.Module):
    """One learned vector per modality that stands in for that modality when it is missing."""

    def __init__(self, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.tokens = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in dims.items()})

    def forward(self, xs: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: torch.where(present[m].unsqueeze(-1), x, self.tokens[m].to(x.dtype)) for m, x in xs.items()}


@FUSIONS.register("early")
class EarlyFusion(Fusion):
    """Concatenation of (present or missing-token) features followed by an MLP head."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, out_dim)
        self.missing = MissingTokens(self.dims)
        self.head = mlp(sum(self.dims.values()), hidden, out_dim, dropout)

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        xs, ps = self.prepare(features, present)
        filled = self.missing(xs, ps)
        return self.head(torch.cat([filled[m] for m in self.modalities], dim=-1))
