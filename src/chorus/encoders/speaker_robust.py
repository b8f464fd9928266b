"""Speaker-robust log-mel input: per-clip noise floor and mean normalisation, training-time augmentation.

Why: FSDD has six speakers, each recorded in one session, so an audio tower
trained on five of them learns their voices and microphones as much as their
words, and recognises a new speaker's digits far less often than a new take
of a known speaker. Three standard remedies act on the log-mel input, so they
live in front of the encoder and every ``audio_cnn`` of translation and
co-learning (classifier, bound tower, judge) gets them through one set of
options, :data:`SPEECH_TOWER`:

- :func:`floor_dynamic_range` — every value more than ``top_db`` below the
  clip's peak is raised to that floor (``librosa.power_to_db``'s ``top_db``,
  per clip). ``log(power + 1e-6)`` features reach ~60 dB below the peak, and
  what lies far below it is the session's background noise and breath, not
  the word — and on FSDD a large, speaker-dependent share of the
  time–frequency bins sits there (``docs/benchmarks/translate.md``).
- :func:`utterance_cmn` — cepstral mean normalisation per clip (Atal 1974;
  Viikki & Laurila 1998) on log-mel bands: a fixed filter (microphone, room,
  part of the vocal-tract colouring) and the loudness are a per-band offset in
  the log domain, and subtracting each band's mean over the clip removes it.
  Dividing by the std as well (CMVN) was worse on validation speakers.
- :class:`MelAugment` — training mode only: SpecAugment time and frequency
  masks (Park et al., Interspeech 2019), which make the tower spread its
  evidence over the whole word instead of one speaker's most telling bands.
  Random warping of the mel axis (vocal-tract-length perturbation, Jaitly &
  Hinton 2013: a longer or shorter vocal tract scales formant frequencies, a
  shift on a log-frequency axis) is available (``warp``) but off: on top of
  the masks it lowered validation accuracy.

Statistics are over real frames only (the mask), so padding never changes the
result. Each choice was measured on validation speakers, never on ``theo``:
``benchmarks/speech_tower_ablation.py`` and ``docs/benchmarks/translate.md``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from chorus.errors import ConfigError

__all__ = ["SPEECH_TOWER", "MelAugment", "floor_dynamic_range", "utterance_cmn", "warp_mel_axis"]

SPEECH_TOWER = {"top_db": 40.0, "cmn": True, "augment": True}
"""``audio_cnn`` options of every speech tower of translation and co-learning (bound tower, classifier, judge).

Chosen on validation speakers (``docs/benchmarks/translate.md``, "speaker-robust speech tower"), never on ``theo``.
"""


def floor_dynamic_range(x: Tensor, mask: Tensor | None, top_db: float) -> Tensor:
    """``x`` [B, n_mels, T] natural-log power, raised to at least each clip's maximum minus ``top_db`` decibels.

    As ``librosa.power_to_db(top_db=...)`` but per clip over real frames only: the faint background below
    the floor is recording noise (microphone, room), a property of the speaker's session rather than the word.
    """
    real = torch.ones_like(x[:, :1], dtype=torch.bool) if mask is None else mask.unsqueeze(1)
    peak = x.masked_fill(~real, float("-inf")).amax(dim=(1, 2), keepdim=True)
    return torch.maximum(x, peak - top_db * math.log(10) / 10)


def utterance_cmn(x: Tensor, mask: Tensor | None) -> Tensor:
    """``x`` [B, n_mels, T] minus each band's mean over the clip's real frames (``mask`` [B, T]); padding → 0."""
    weights = torch.ones_like(x[:, :1]) if mask is None else mask.unsqueeze(1).to(x.dtype)
    mean = (x * weights).sum(-1, keepdim=True) / weights.sum(-1, keepdim=True).clamp_min(1.0)
    return (x - mean) * weights


def warp_mel_axis(x: Tensor, factor: Tensor) -> Tensor:
    """Resample the mel axis of ``x`` [B, n_mels, T]: band ``f`` reads band ``f * factor[b]`` (linear interpolation).

    ``factor`` > 1 moves spectral features to lower bands (as a longer vocal tract does); reads past the top
    band repeat it.
    """
    n_mels = x.shape[1]
    src = (torch.arange(n_mels, device=x.device, dtype=x.dtype)[None, :] * factor[:, None]).clamp(0, n_mels - 1)
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=n_mels - 1)
    frac = (src - lo.to(x.dtype)).unsqueeze(-1)
    gather = lambda idx: x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # noqa: E731
    return gather(lo) * (1 - frac) + gather(hi) * frac


class MelAugment(nn.Module):
    """Training-time log-mel augmentation: mel-axis warp, then SpecAugment masks; identity in eval mode.

    ``warp``: factors drawn uniformly from [1 − warp, 1 + warp] per clip; ``freq_masks`` bands of width up to
    ``freq_width`` and ``time_masks`` spans of up to ``time_fraction`` of the clip's real length are set to the
    clip's mean (0 after CMN), so masking adds no artificial edge.
    """

    def __init__(
        self,
        warp: float = 0.0,
        freq_masks: int = 2,
        freq_width: int = 6,
        time_masks: int = 2,
        time_fraction: float = 0.1,
    ) -> None:
        super().__init__()
        if not 0 <= warp < 1 or freq_masks < 0 or freq_width < 0 or time_masks < 0 or not 0 <= time_fraction < 1:
            raise ConfigError(
                f"MelAugment: bad settings warp={warp}, freq_masks={freq_masks}, freq_width={freq_width}, "
                f"time_masks={time_masks}, time_fraction={time_fraction}"
            )
        self.warp, self.freq_masks, self.freq_width = warp, freq_masks, freq_width
        self.time_masks, self.time_fraction = time_masks, time_fraction

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if not self.training:
            return x
        b, n_mels, t = x.shape
        dev = x.device
        if self.warp > 0:
            x = warp_mel_axis(x, 1 + (torch.rand(b, device=dev) * 2 - 1) * self.warp)
        lengths = torch.full((b,), t, device=dev) if mask is None else mask.sum(-1)
        real = torch.ones(b, 1, t, device=dev, dtype=torch.bool) if mask is None else mask[:, None]
        fill = (x * real).sum(dim=(1, 2), keepdim=True) / (real.sum(dim=(1, 2), keepdim=True) * n_mels).clamp_min(1)
        bands = torch.arange(n_mels, device=dev)[None, :]
        frames = torch.arange(t, device=dev)[None, :]
        for _ in range(self.freq_masks):
            width = torch.randint(0, self.freq_width + 1, (b, 1), device=dev)
            start = (torch.rand(b, 1, device=dev) * (n_mels - width + 1)).long()
            hit = (bands >= start) & (bands < start + width)
            x = torch.where(hit[:, :, None] & real, fill, x)  # padding keeps its values
        for _ in range(self.time_masks):
            width = (torch.rand(b, 1, device=dev) * self.time_fraction * lengths[:, None]).long()
            start = (torch.rand(b, 1, device=dev) * (lengths[:, None] - width + 1)).long()
            hit = (frames >= start) & (frames < start + width)
            x = torch.where(hit[:, None, :], fill, x)
        return x
