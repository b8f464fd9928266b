"""``audio_cnn``: a 1-D convolutional encoder over log-mel frames (TDNN-style).

What: mel bands are the input channels and convolutions slide over time only,
as in time-delay networks / x-vectors (Waibel et al. 1989; Snyder et al. 2018)
and QuartzNet-style speech encoders: blocks of conv → per-frame LayerNorm →
GELU, some with stride 2 to shorten the sequence, then masked mean pooling
over time (x-vector statistics pooling, mean only).

Why: for short clips such as spoken digits, local spectro-temporal patterns
plus order-free pooling capture most of what matters, at a fraction of a
transformer's cost; it is the baseline ``audio_transformer`` must beat and
should itself clearly beat a linear model on time-averaged log-mels. Padding
never changes the output (see :mod:`chorus.encoders.frames`), so results do
not depend on how clips were batched. ``tokens`` are the frames of the last
block ([B, ceil(T / prod(strides)), widths[-1]]) with the downsampled mask.

Input options (all off by default; :data:`chorus.encoders.speaker_robust.SPEECH_TOWER`
turns them on for every speech tower of translation and co-learning): ``top_db``
floors each clip's log-mel that many dB under its peak, ``cmn`` removes each
band's mean over the clip, ``augment`` applies SpecAugment masks in training
mode — see :mod:`chorus.encoders.speaker_robust` for why.
"""

from __future__ import annotations

from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.frames import MaskedConvBlock
from chorus.encoders.inputs import check_sequence
from chorus.encoders.masking import mask_or_all_real, masked_mean
from chorus.encoders.speaker_robust import MelAugment, floor_dynamic_range, utterance_cmn
from chorus.errors import ConfigError, DataError


@ENCODERS.register("audio_cnn")
class AudioCNNEncoder(nn.Module):
    """1-D CNN over time; ``out_dim = widths[-1]``."""

    modality = "audio"
    sizes = {
        "tiny": {"widths": (64, 64), "strides": (1, 2)},
        "small": {"widths": (128, 128, 256), "strides": (1, 2, 2)},
        "base": {"widths": (256, 256, 512, 512), "strides": (1, 2, 2, 1)},
    }

    def __init__(
        self,
        widths: tuple[int, ...],
        strides: tuple[int, ...],
        n_mels: int = 64,
        kernel_size: int = 5,
        top_db: float | None = None,
        cmn: bool = False,
        augment: bool = False,
    ) -> None:
        super().__init__()
        self.top_db, self.cmn = top_db, cmn
        self.augment = MelAugment() if augment else None
        if len(widths) != len(strides):
            raise ConfigError(f"audio_cnn: widths {widths} and strides {strides} need equal length")
        self.n_mels = n_mels
        channels = (n_mels, *widths)
        self.blocks = nn.ModuleList(
            MaskedConvBlock(channels[i], channels[i + 1], kernel_size, strides[i], norm=True)
            for i in range(len(widths))
        )
        self.out_dim = widths[-1]

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        """``x`` [B, n_mels, T] log-mel, ``mask`` [B, T] True = real frame."""
        check_sequence(x, mask, 3, "audio_cnn")
        if x.shape[1] != self.n_mels:
            raise DataError(f"audio_cnn: expected [B, {self.n_mels}, T] log-mel, got {tuple(x.shape)}")
        if self.top_db is not None:
            x = floor_dynamic_range(x, mask, self.top_db)
        if self.cmn:
            x = utterance_cmn(x, mask)
        if self.augment is not None:
            x = self.augment(x, mask)
        for block in self.blocks:
            x, mask = block(x, mask)
        tokens = x.transpose(1, 2)
        return Encoded(pooled=masked_mean(tokens, mask), tokens=tokens, mask=mask_or_all_real(mask, tokens))
