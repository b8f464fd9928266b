"""The output type every encoder returns, and the width it promises."""

from __future__ import annotations

from typing import NamedTuple, cast

from torch import Tensor, nn


class Encoded(NamedTuple):
    """What an encoder makes of one batch of one modality.

    ``pooled`` [B, D] serves contrastive learning and most fusion; ``tokens``
    [B, T, D] with ``mask`` [B, T] (True = real token, False = padding) serve
    alignment, attention fusion and translation. Encoders without a sequence
    (e.g. a global-pooled CNN) may return ``tokens=None, mask=None``.
    """

    pooled: Tensor
    tokens: Tensor | None = None
    mask: Tensor | None = None


def out_dim(encoder: nn.Module) -> int:
    """The width of ``encoder``'s pooled output (every Chorus encoder sets ``out_dim``).

    Why a function: ``build_encoder`` returns a plain ``nn.Module``, whose attributes type-check as
    tensors or modules; this names the one attribute the encoder contract promises.
    """
    return int(cast(int, encoder.out_dim))
