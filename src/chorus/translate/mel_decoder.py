"""Image → speech: regress the log-mel spectrogram of the spoken digit, and its duration, from a shared embedding.

What: an MLP maps the condition ``c`` (the shared embedding of an MNIST image)
to a *time-normalised* log-mel [n_mels, frames] — every recording resampled to
the same number of frames — plus the recording's log-duration. Both are
regressed (L1 on the spectrogram, squared error on log-duration) against the
recordings paired with images of the same digit (train speakers only). To
generate, the spectrogram is stretched back to the predicted duration
(:meth:`MelDecoder.generate`) and turned into a waveform with
:func:`~chorus.translate.griffinlim.log_mel_to_audio`.

Why time-normalised: given only the digit identity carried by ``c``, the
L1-optimal prediction is the per-bin *median* over that digit's recordings.
Speakers say a word at different speeds, so medians of left-aligned frames
smear each formant trajectory over the others and padding frames drag the
tail to silence; on FSDD the audio judge recognised time-normalised median
templates far more often than left-aligned ones (``docs/translate.md``).
Predicting the duration separately
is the same split of "what" and "how long" that parametric speech synthesis
makes (duration models in HMM/DNN TTS; FastSpeech, Ren et al. 2019) — here
reduced to one word per utterance. Spectrogram regression with an L1 loss
inverted by Griffin-Lim is Tacotron's recipe (Wang et al., Interspeech 2017).

Baseline: the decoder fed a shuffled condition (judge agreement at chance,
10 %); the ceiling is the judge's accuracy on real recordings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from chorus.encoders.speaker_robust import floor_dynamic_range, utterance_cmn
from chorus.errors import DataError

__all__ = ["MelDecoder", "SpeechTargets", "speaker_normalise", "time_normalise"]


def _resample(mel: Tensor, frames: int) -> Tensor:
    """Linear interpolation of a log-mel [n_mels, T] along time to ``frames`` frames."""
    return F.interpolate(mel[None].float(), size=frames, mode="linear", align_corners=True)[0]


def time_normalise(mels: Sequence[Tensor], frames: int) -> tuple[Tensor, Tensor]:
    """Log-mels [n_mels, T_i] → (resampled to ``frames`` [N, n_mels, frames], log of each T_i [N])."""
    if not mels or any(m.ndim != 2 or m.shape[-1] < 2 for m in mels):
        raise DataError("time_normalise needs log-mels [n_mels, T] with T >= 2")
    lengths = torch.tensor([float(m.shape[-1]) for m in mels])
    return torch.stack([_resample(m, frames) for m in mels]), lengths.log()


def speaker_normalise(mels: Sequence[Tensor], top_db: float = 40.0) -> list[Tensor]:
    """Log-mels [n_mels, T_i] floored ``top_db`` under each clip's peak, each band's clip mean replaced by the
    median over ``mels`` of that band's clip means.

    Why: the targets are five speakers' recordings, each with its own microphone colouring (a per-band offset
    in the log domain) and background level; the per-bin median of raw log-mels mixes those offsets and blurs
    the word. Removing them first — the same floor and CMN as the speech towers'
    (:mod:`chorus.encoders.speaker_robust`) — and restoring one common level (so the inversion has a
    plausible absolute spectrum) leaves a template of the word alone. Measured on validation seeds
    (``benchmarks/translate_validation.py``, 2,000 decoder steps): judge agreement 90.6 → 96.0 % and
    88.0 → 96.6 %.
    """
    floored = [floor_dynamic_range(m[None].float(), None, top_db)[0] for m in mels]
    level = torch.stack([m.mean(-1) for m in floored]).median(0).values[:, None]
    return [utterance_cmn(m[None], None)[0] + level for m in floored]


class SpeechTargets(Dataset):
    """Training items ``{"target", "log_frames", "cond"}``: recordings' time-normalised log-mels with conditions.

    ``mels`` are log-mels [n_mels, T_i]; ``cond`` [N, D] the condition of each
    (e.g. the shared embedding of the image paired with the recording).
    """

    def __init__(self, mels: Sequence[Tensor], cond: Tensor, frames: int = 48) -> None:
        if len(mels) != len(cond):
            raise DataError(f"SpeechTargets: {len(mels)} recordings but {len(cond)} conditions")
        self.targets, self.log_frames = time_normalise(mels, frames)
        self.cond = cond

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"target": self.targets[i], "log_frames": self.log_frames[i], "cond": self.cond[i]}


class MelDecoder(nn.Module):
    """``cond`` [B, cond_dim] → time-normalised log-mel [B, n_mels, frames] and log-duration [B].

    The network predicts the *deviation* from a fixed template — by default
    the per-bin median spectrogram and median log-duration of the training
    targets (:meth:`from_targets`) — so training starts at the
    condition-independent L1 optimum and only has to learn what the digit
    changes. Without it, an L1-trained MLP spends most of its steps moving its
    outputs from 0 to log-mel levels around −9 (measured: 300 steps left it
    ~1 nat per bin from the digit medians, and the judge heard one digit for all ten).

    ``forward(batch)`` reads ``"cond"``, ``"target"`` (time-normalised) and
    ``"log_frames"`` and returns ``{"loss", "mel_l1", "duration_mse"}``.
    """

    def __init__(
        self,
        cond_dim: int,
        n_mels: int = 40,
        frames: int = 48,
        hidden: int = 512,
        template: Tensor | None = None,
        log_frames: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_mels, self.frames = n_mels, frames
        self.net = nn.Sequential(
            nn.Linear(cond_dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, n_mels * frames + 1),
        )
        offset = torch.zeros(n_mels * frames + 1)
        if template is not None:
            offset[:-1] = template.reshape(-1)
        offset[-1] = log_frames
        self.register_buffer("offset", offset)

    @classmethod
    def from_targets(cls, data: SpeechTargets, hidden: int = 512) -> MelDecoder:
        """A decoder for ``data`` whose template is the median of its spectrograms and log-durations."""
        return cls(
            data.cond.shape[1],
            data.targets.shape[1],
            data.targets.shape[2],
            hidden,
            data.targets.median(0).values,
            float(data.log_frames.median()),
        )

    def predict(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(cond).float() + self.offset
        return out[:, :-1].view(len(cond), self.n_mels, self.frames), out[:, -1]

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        mel, log_frames = self.predict(batch["cond"])
        mel_l1 = F.l1_loss(mel, batch["target"].float())
        duration_mse = F.mse_loss(log_frames, batch["log_frames"].float())
        return {"loss": mel_l1 + duration_mse, "mel_l1": mel_l1.detach(), "duration_mse": duration_mse.detach()}

    @torch.no_grad()
    def generate(self, cond: Tensor) -> list[Tensor]:
        """One log-mel [n_mels, T_i] per condition row, stretched to its predicted duration (≥ 2 frames)."""
        mel, log_frames = self.predict(cond)
        lengths = log_frames.exp().round().clamp_min(2).long().tolist()
        return [_resample(m, n) for m, n in zip(mel, lengths)]
