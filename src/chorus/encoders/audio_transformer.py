"""``audio_transformer``: a Transformer over log-mel frames with masked mean pooling.

What: the Whisper encoder layout (Radford et al. 2022, "Robust Speech
Recognition via Large-Scale Weak Supervision"): two 3-wide 1-D convs with GELU
embed the frames (the second with stride ``subsample`` to halve the
sequence), fixed sinusoidal positions (Vaswani et al. 2017) are added, then the
shared pre-LN :class:`~chorus.encoders.transformer.Transformer` with padded
frames excluded as attention keys, a final ``ln_post``, and masked mean pooling
over real frames.

Why: self-attention relates distant frames (a word's onset and coda) in one
step, which should beat ``audio_cnn`` once there is enough data; sinusoidal
positions have no maximum length, so clips of any duration work. Padding never
changes the output: the conv stem zeroes padded frames (see
:mod:`chorus.encoders.frames`), attention masks them as keys and pooling skips
them. ``tokens`` [B, ceil(T / subsample), width] come with the downsampled mask.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.frames import MaskedConvBlock
from chorus.encoders.inputs import check_sequence
from chorus.encoders.masking import mask_or_all_real, masked_mean
from chorus.encoders.transformer import Activation, Transformer
from chorus.errors import ConfigError, DataError


def sinusoidal_positions(length: int, width: int, device: torch.device) -> Tensor:
    """[length, width]: ``sin`` in the first half, ``cos`` in the second, wavelengths 1 … 10^4 (Whisper)."""
    if width % 2:
        raise ConfigError(f"sinusoidal positions need an even width, got {width}")
    half = width // 2
    inv_freq = torch.exp(-math.log(10_000) / max(half - 1, 1) * torch.arange(half, device=device))
    angles = torch.arange(length, device=device, dtype=torch.float32)[:, None] * inv_freq[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


@ENCODERS.register("audio_transformer")
class AudioTransformer(nn.Module):
    """Conv stem + Transformer over time; ``out_dim = width``."""

    modality = "audio"
    sizes = {
        "tiny": {"width": 64, "layers": 2, "heads": 2},
        "small": {"width": 192, "layers": 4, "heads": 4},
        "base": {"width": 384, "layers": 6, "heads": 6},
    }

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        n_mels: int = 64,
        subsample: int = 2,
        mlp_ratio: float = 4.0,
        act: Activation = "gelu",
        ln_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.n_mels = n_mels
        self.stem = nn.ModuleList(
            [
                MaskedConvBlock(n_mels, width, 3, 1, norm=False),
                MaskedConvBlock(width, width, 3, subsample, norm=False),
            ]
        )
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, ln_eps, causal=False)
        self.ln_post = nn.LayerNorm(width, eps=ln_eps)
        self.out_dim = width

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        """``x`` [B, n_mels, T] log-mel, ``mask`` [B, T] True = real frame."""
        check_sequence(x, mask, 3, "audio_transformer")
        if x.shape[1] != self.n_mels:
            raise DataError(f"audio_transformer: expected [B, {self.n_mels}, T] log-mel, got {tuple(x.shape)}")
        for block in self.stem:
            x, mask = block(x, mask)
        h = x.transpose(1, 2)
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device).to(h.dtype)
        tokens = self.ln_post(self.transformer(h, mask))
        return Encoded(pooled=masked_mean(tokens, mask), tokens=tokens, mask=mask_or_all_real(mask, tokens))
