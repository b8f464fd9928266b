"""The output type every encoder returns."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


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
