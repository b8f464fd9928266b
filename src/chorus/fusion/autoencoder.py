"""Multimodal autoencoder: a joint code that reconstructs every modality, even from one.

Ngiam, Khosla, Kim, Nam, Lee & Ng, "Multimodal Deep Learning", ICML 2011
(bimodal deep autoencoder). Each modality has an encoder; the encodings (a
learned missing token for absent modalities) are concatenated and mapped to a
joint code; one decoder per modality reconstructs that modality from the code.
Training adds, besides reconstruction from all present inputs, *cross-modal*
reconstruction: the code computed from one modality alone must reconstruct all
the others (Ngiam et al. zero out one modality for part of the training data).

Why it works: to reconstruct A from B the code has to capture what the
modalities share, which makes it a good representation to classify from and
keeps it usable when a modality is missing at test time.

Convention: ``forward`` returns logits of a classifier on the joint code;
``losses(features, present)`` returns the reconstruction terms; ``loss(features,
label, present)`` adds them to the classification cross-entropy.
Baseline to beat: early fusion trained on classification alone, and the best
unimodal model (especially with a modality missing at test time).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from chorus.fusion.base import FUSIONS, Fusion
from chorus.fusion.layers import mlp


def masked_mse(prediction: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error averaged over features, then over samples where ``weight`` [B] is True."""
    per_sample = (prediction.float() - target.float()).pow(2).mean(-1)
    w = weight.float()
    return (per_sample * w).sum() / w.sum().clamp_min(1.0)


@FUSIONS.register("autoencoder")
class MultimodalAutoencoder(Fusion):
    """Per-modality encoders → joint code → per-modality decoders, plus a classifier on the code."""

    def __init__(
        self, dims: Mapping[str, int], out_dim: int, hidden: int = 64, code_dim: int = 32, dropout: float = 0.1
    ) -> None:
        super().__init__(dims, out_dim)
        self.encoders = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU()) for m, d in self.dims.items()})
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(hidden)) for m in self.dims})
        self.joint = nn.Sequential(nn.Linear(hidden * len(self.dims), code_dim), nn.ReLU())
        self.decoders = nn.ModuleDict({m: mlp(code_dim, hidden, d, 0.0) for m, d in self.dims.items()})
        self.classifier = mlp(code_dim, hidden, out_dim, dropout)

    def encode(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        """The joint code [B, code_dim] of the present modalities."""
        return self._code(*self.prepare(features, present))

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> Tensor:
        return self.classifier(self.encode(features, present))

    def loss(  # type: ignore[override]  # pooled fusion: no extra forward inputs
        self, features: Mapping[str, Tensor], label: Tensor, present: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        ce = super().loss(features, label, present)["loss"]
        recon = self.losses(features, present)
        return {
            "loss": ce + recon["loss"],
            "ce": ce.detach(),
            "recon": recon["recon"].detach(),
            "cross_recon": recon["cross_recon"].detach(),
        }

    def losses(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Reconstruction losses: ``recon`` (all present inputs → each present modality),
        ``cross_recon`` (each modality alone → every *other* present modality) and their sum ``loss``.
        """
        xs, ps = self.prepare(features, present)
        code = self._code(xs, ps)
        recon = torch.stack([masked_mse(self.decoders[m](code), xs[m], ps[m]) for m in self.modalities]).mean()
        cross_terms = []
        for source in self.modalities:
            alone = {m: ps[m] if m == source else torch.zeros_like(ps[m]) for m in self.modalities}
            code_alone = self._code(xs, alone)
            cross_terms += [
                masked_mse(self.decoders[t](code_alone), xs[t], ps[source] & ps[t])
                for t in self.modalities
                if t != source
            ]
        cross_recon = torch.stack(cross_terms).mean() if cross_terms else recon.new_zeros(())
        return {"recon": recon, "cross_recon": cross_recon, "loss": recon + cross_recon}

    def _code(self, xs: Mapping[str, Tensor], ps: Mapping[str, Tensor]) -> Tensor:
        parts = []
        for m in self.modalities:
            h = self.encoders[m](xs[m])
            parts.append(torch.where(ps[m].unsqueeze(-1), h, self.missing[m].to(h.dtype)))
        return self.joint(torch.cat(parts, -1))
