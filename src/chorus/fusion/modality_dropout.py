"""Modality dropout: randomly mark modalities missing during training.

Training with whole modalities dropped (Ngiam et al. 2011; Neverova et al.,
"ModDrop", TPAMI 2016) teaches a fusion model to cope when a modality is missing
at test time and stops it from leaning on a single dominant modality. A sample
never loses *all* its modalities: if every one would be dropped, one of its
originally present modalities, chosen uniformly, is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from chorus.errors import ConfigError


class ModalityDropout(nn.Module):
    """Produce ``present`` masks [B] per modality; identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ConfigError(f"modality dropout p={p!r}; expected 0 <= p < 1")
        self.p = p

    def forward(self, features: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        names = list(features)
        ref = features[names[0]]
        given = present or {}
        base = torch.stack(
            [given.get(m, torch.ones(ref.shape[0], dtype=torch.bool, device=ref.device)) for m in names], 1
        )
        if not self.training or self.p == 0.0:
            return {m: base[:, i] for i, m in enumerate(names)}
        kept = base & (torch.rand(base.shape, device=base.device) >= self.p)
        lost_all = ~kept.any(1, keepdim=True)
        # Random scores restricted to originally present modalities; the argmax is a uniform choice among them.
        scores = torch.rand(base.shape, device=base.device).masked_fill(~base, -1.0)
        rescued = torch.zeros_like(base).scatter_(1, scores.argmax(1, keepdim=True), True)
        kept = kept | (lost_all & rescued)
        return {m: kept[:, i] for i, m in enumerate(names)}
