"""Mask-preserving 1-D convolution over time for the audio encoders.

Padding must not change an example's output. A convolution mixes each frame
with its neighbours, so a real frame next to the padding would read whatever
the padding holds (and, after a layer, whatever the bias made of it). Zeroing
padded frames before every convolution makes them indistinguishable from the
convolution's own zero padding, so a padded and an unpadded example give the
same real frames. Normalisation is per frame (LayerNorm over channels, as in
ConvNeXt, Liu et al. 2022) rather than BatchNorm, whose batch statistics would
include padding in training mode.
"""

from __future__ import annotations

from torch import Tensor, nn

from chorus.errors import ConfigError


def zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` [B, C, T] with its padded frames (``mask`` [B, T] False) set to zero."""
    return x if mask is None else x * mask.unsqueeze(1).to(x.dtype)


class MaskedConvBlock(nn.Module):
    """Conv1d (odd ``kernel``, "same" padding) → [per-frame LayerNorm] → GELU; padding stays zero.

    The output mask keeps frame ``j`` when its centre input ``j * stride`` was
    real, so output lengths match ``ceil(T / stride)`` for any padding.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: bool) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ConfigError(f"kernel size must be odd for 'same' padding, got {kernel}")
        self.stride = stride
        self.conv = nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
        self.norm = nn.LayerNorm(c_out) if norm else None
        self.act = nn.GELU()

    def forward(self, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        x = self.conv(zero_padding(x, mask))
        if self.norm is not None:
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        if mask is not None:
            mask = mask[:, :: self.stride]
        return zero_padding(self.act(x), mask), mask
