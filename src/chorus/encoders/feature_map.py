"""Turn a CNN's final feature map into an :class:`Encoded`.

Both CNN encoders end the same way: global average pooling gives the pooled
vector (the standard CNN head since Lin et al. 2014, "Network in Network"),
and each spatial cell of the map becomes a token so attention-based fusion and
alignment can look at image regions.
"""

from __future__ import annotations

from torch import Tensor

from chorus.encoders.base import Encoded
from chorus.encoders.masking import mask_or_all_real


def encode_feature_map(fmap: Tensor) -> Encoded:
    """``fmap`` [B, D, H, W] → pooled [B, D], tokens [B, H*W, D] (row-major), all-True mask."""
    tokens = fmap.flatten(2).transpose(1, 2)
    return Encoded(pooled=fmap.mean(dim=(2, 3)), tokens=tokens, mask=mask_or_all_real(None, tokens))
