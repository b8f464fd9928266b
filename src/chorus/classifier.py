"""A supervised single-modality classifier: one encoder + a linear head.

It is the baseline every multimodal method in Chorus is compared with (the
unimodal model of fusion, the supervised student of co-learning), so it lives
at the top of the package rather than inside any one method's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from chorus.encoders.base import out_dim
from chorus.errors import DataError


class Classifier(nn.Module):
    """``encoder`` → pooled features → dropout → linear → logits over ``num_classes``.

    ``forward(batch)`` reads ``batch[modality]`` (and its mask) and returns
    ``{"loss", "acc", "logits"}`` when ``batch`` has a ``"label"``, else
    ``{"logits"}``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, modality: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.modality = modality
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(out_dim(encoder), num_classes)

    def logits(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.head(self.dropout(self.encoder(x, mask=mask).pooled))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        if self.modality not in batch:
            raise DataError(f"batch has no {self.modality!r} entry; keys: {sorted(batch)}")
        logits = self.logits(batch[self.modality], batch.get(f"{self.modality}_mask"))
        out = {"logits": logits}
        if "label" in batch:
            label = batch["label"]
            out["loss"] = F.cross_entropy(logits.float(), label)
            out["acc"] = (logits.argmax(-1) == label).float().mean()
        return out
