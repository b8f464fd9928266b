"""Gated Multimodal Unit (GMU): per-unit, input-dependent gates choose between modalities.

Arevalo, Solorio, Montes-y-Gómez & González, "Gated Multimodal Units for
Information Fusion", ICLR workshop 2017. Bimodal GMU: h_m = tanh(W_m x_m),
z = σ(W_z [x_1; x_2]), h = z ⊙ h_1 + (1 − z) ⊙ h_2. N-modal generalisation used
here: gates g = W_z [x_1; …; x_N] give N logits per hidden unit and
z = softmax over modalities, h = Σ_m z_m ⊙ h_m. For N = 2 this is exactly the
bimodal GMU with z = σ(g_1 − g_2).

Why it works: the gate looks at all modalities and decides, per sample and per
hidden unit, which modality to trust — a multiplicative interaction that a
concatenation MLP has to learn the hard way. Missing modalities get gate logit
−∞ (their weight is renormalised onto the present ones); the gate's input is
the (zeroed-when-missing) features plus the presence indicators, so with three
or more modalities the gate also knows which ones it is choosing among.

Output: logits from an MLP head on h. Baseline to beat: early (concatenation)
fusion and the best unimodal model.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import mlp


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """N-modal GMU followed by an MLP classification head."""

    def __init__(self, dims: Mapping[str, int], out_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, out_dim)
        self.hidden = hidden
        self.values = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in self.dims.items()})
        self.gate = nn.Linear(sum(self.dims.values()) + len(self.dims), hidden * len(self.dims))
        self.head = mlp(hidden, hidden, out_dim, dropout)

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        xs, ps = self.prepare(features, present)
        values = torch.stack([torch.tanh(self.values[m](xs[m])) for m in self.modalities], 1)  # [B, M, H]
        mask = torch.stack([ps[m] for m in self.modalities], 1)
        gate_in = torch.cat([xs[m] for m in self.modalities] + [mask.to(values.dtype)], -1)
        gate_logits = self.gate(gate_in).view(-1, len(self.modalities), self.hidden)
        mask = mask.unsqueeze(-1)
        gates = torch.softmax(gate_logits.float().masked_fill(~mask, float("-inf")), dim=1)
        return self.head((gates.to(values.dtype) * values).sum(1))
