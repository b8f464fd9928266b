"""End-to-end fusion classifier: one encoder per modality, any registered pooled fusion, one label.

What ``chorus train`` runs for ``model.task: fusion`` — a user's rows joining several modalities
(image + audio + label, from a folder or manifest dataset) or a bundled paired set such as AV-Digits.
Why a separate model from the benchmark's fusion heads: there the encoders are trained and frozen
first and only the fusion is compared; here the encoders and the fusion learn together from raw
inputs, which is what a user with a few hundred joined rows wants. The fusion supplies the
classification head and its own training objective (:meth:`chorus.fusion.base.Fusion.loss`), so every
pooled family (``early``, ``late_*``, ``tensor``, ``low_rank``, ``gated``, …) trains the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from chorus.encoders.base import out_dim
from chorus.errors import ConfigError, DataError
from chorus.fusion.base import FUSIONS, Fusion, build_fusion

__all__ = ["FusionClassifier"]


class FusionClassifier(nn.Module):
    """``encoders[m]`` → pooled features per modality → ``fusion`` → class logits.

    ``forward(batch)`` reads each modality the batch has (and its ``<m>_mask``) and returns ``{"logits"}``,
    plus the fusion's ``{"loss", ...}`` and ``"acc"`` when the batch has a ``"label"``. A modality absent from
    the batch is missing for every sample, which each fusion family handles (a photo alone still gets a label).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: Fusion) -> None:
        super().__init__()
        if set(encoders) != set(fusion.dims):
            raise ConfigError(f"fusion modalities {sorted(fusion.dims)} differ from the encoders {sorted(encoders)}")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion

    @classmethod
    def build(
        cls, encoders: Mapping[str, nn.Module], fusion: str, num_classes: int, **hyper: object
    ) -> FusionClassifier:
        """The fusion named ``fusion`` over the encoders' pooled widths (token fusions are refused)."""
        if getattr(FUSIONS.get(fusion), "accepts_tokens", False):
            raise ConfigError(f"model.fusion {fusion!r} fuses token sequences; task 'fusion' takes a pooled fusion")
        dims = {name: out_dim(encoder) for name, encoder in encoders.items()}
        return cls(encoders, build_fusion(fusion, dims, num_classes, **hyper))

    def features(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Pooled features of every modality the batch has (DataError if it has none of them)."""
        given = [m for m in self.encoders if m in batch]
        if not given:
            raise DataError(f"batch has none of the modalities {sorted(self.encoders)}; keys: {sorted(batch)}")
        return {m: self.encoders[m](batch[m], mask=batch.get(f"{m}_mask")).pooled for m in given}

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        features = self.features(batch)
        logits = self.fusion(features)
        out = {"logits": logits}
        label = batch.get("label")
        if isinstance(label, Tensor):
            out |= self.fusion.loss(features, label)
            out["acc"] = (logits.argmax(-1) == label).float().mean()
        return out
