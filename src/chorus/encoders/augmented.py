"""An image encoder whose first layer is a batched augmentation (:class:`chorus.data.augment.BatchAugment`)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from chorus.data.augment import BatchAugment
from chorus.encoders.base import Encoded, out_dim
from chorus.encoders.factory import build_encoder

__all__ = ["AugmentedEncoder", "augmented_image_encoder"]


class AugmentedEncoder(nn.Module):
    """``encoder(augment(x))``: an image encoder whose first layer is :class:`BatchAugment`."""

    def __init__(self, encoder: nn.Module, augment: BatchAugment) -> None:
        super().__init__()
        self.augment, self.encoder = augment, encoder
        self.out_dim = out_dim(encoder)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        return self.encoder(self.augment(x), mask)


def augmented_image_encoder(
    name: str, size: str, image_size: int, augment: BatchAugment, **options: Any
) -> AugmentedEncoder:
    """A from-scratch ``chorus.encoders`` image encoder behind its augmentation layer."""
    return AugmentedEncoder(build_encoder(name, size, image_size=image_size, **options), augment)
