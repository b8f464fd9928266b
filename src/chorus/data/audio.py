"""Audio front end: file loading, resampling and a torch log-mel spectrogram.

``LogMel`` computes ``log(mel_power + log_offset)`` with ``torch.stft`` (periodic
Hann window, ``center=True`` with zero padding) and a **Slaney-style** mel
filterbank (Slaney mel scale, linear below 1 kHz and logarithmic above, with
Slaney area normalisation so every filter has unit area) — the same definition
as librosa's default (``htk=False, norm="slaney"``), so features match
``log(librosa.feature.melspectrogram(...) + log_offset)``; a test checks this on
a real FSDD clip. Computing it in torch (not as a preprocessing step) lets it
run on the GPU inside a model and keeps it differentiable. Reference: S. Stevens,
J. Volkmann, E. Newman (1937) for the mel scale; M. Slaney, *Auditory Toolbox*
(1998) for the filterbank shape.

The defaults suit 8 kHz speech (FSDD): 32 ms windows (256 samples), 10 ms hop
(80 samples), 40 bands up to Nyquist. ``cmvn`` and ``mfcc`` are the per-utterance
normalised features that frame-level models and DTW compare.
"""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import torch
from scipy.signal import resample_poly
from torch import Tensor, nn

from chorus.data.decode import decode_audio, read_bytes
from chorus.errors import ConfigError, DataError


def load_audio(path: str | os.PathLike[str], expected_sr: int | None = None) -> tuple[Tensor, int]:
    """Read an audio file with soundfile → (mono float32 [T] in [-1, 1], sample rate)."""
    return decode_audio(read_bytes(path), str(path), expected_sr)


def resample(wave: Tensor, orig_sr: int, new_sr: int) -> Tensor:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser-windowed FIR) along the last axis.

    Polyphase filtering is exact for rational ratios and avoids the wrap-around
    artefacts of FFT resampling on short clips. Returns a tensor on the input's
    device and dtype, of length ``ceil(T * new_sr / orig_sr)``.
    """
    if orig_sr <= 0 or new_sr <= 0:
        raise ConfigError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    if orig_sr == new_sr:
        return wave
    ratio = Fraction(new_sr, orig_sr)
    out = resample_poly(wave.detach().cpu().double().numpy(), ratio.numerator, ratio.denominator, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(out)).to(device=wave.device, dtype=wave.dtype)


def speed_perturb(wave: Tensor, factor: float) -> Tensor:
    """The waveform played ``factor`` times faster, at the same sample rate: length ``ceil(T / factor)``.

    Kaldi's speed perturbation (Ko et al. 2015, "Audio augmentation for speech recognition", Interspeech):
    resampling changes tempo and pitch together, as a shorter or longer vocal tract speaking faster or slower
    would, so a few factors around 1 (0.9, 1.0, 1.1) turn each training voice into three. ``factor`` is taken
    as a fraction with denominator at most 100 (polyphase resampling, :func:`resample`).
    """
    if not 0.5 <= factor <= 2.0:
        raise ConfigError(f"speed factor must be within [0.5, 2], got {factor}")
    ratio = Fraction(factor).limit_denominator(100)
    return resample(wave, ratio.numerator, ratio.denominator)


def vtlp_warp(freqs: np.ndarray, alpha: float, sample_rate: int, boundary: float = 0.8) -> np.ndarray:
    """Vocal tract length perturbation's frequency warp (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation
    (VTLP) improves speech recognition", ICML workshop): ``f · alpha`` up to ``boundary`` of the Nyquist
    frequency (scaled by ``min(alpha, 1) / alpha``), then the straight line that maps Nyquist onto itself, so
    no energy leaves the band. Scaling the frequency axis is what a longer (``alpha`` < 1) or shorter vocal
    tract does to the formants.
    """
    nyquist = sample_rate / 2
    knee = boundary * nyquist * min(alpha, 1.0) / alpha
    upper = nyquist - (nyquist - boundary * nyquist * min(alpha, 1.0)) / (nyquist - knee) * (nyquist - freqs)
    return np.where(freqs <= knee, freqs * alpha, upper)


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None, warp: float = 1.0
) -> Tensor:
    """Slaney-normalised triangular mel filters, float32 [n_mels, n_fft // 2 + 1].

    ``warp`` ≠ 1 evaluates the filters at the VTLP-warped frequency of each FFT bin (:func:`vtlp_warp`), so
    the features are those of the same speech from a vocal tract ``1 / warp`` times as long."""
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigError(
            f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}, sr={sample_rate}"
        )
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    if warp != 1.0:
        fft_freqs = vtlp_warp(fft_freqs, warp, sample_rate)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    slopes = edges[:, None] - fft_freqs[None, :]
    lower = -slopes[:-2] / widths[:-1, None]
    upper = slopes[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # unit area per filter
    return torch.from_numpy(weights.astype(np.float32))


class LogMel(nn.Module):
    """Waveform [T] or [B, T] → log-mel [n_mels, frames] or [B, n_mels, frames] (float32).

    Always computed in float32 with autocast disabled: ``torch.stft`` has no
    bf16 kernel and the log of tiny powers needs the range.
    """

    window: Tensor
    fb: Tensor

    def __init__(
        self,
        sample_rate: int = 8000,
        n_fft: int = 256,
        hop_length: int = 80,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        power: float = 2.0,
        log_offset: float = 1e-6,
        warp: float = 1.0,
    ) -> None:
        super().__init__()
        if hop_length <= 0 or n_fft <= 0 or n_mels <= 0:
            raise ConfigError(f"n_fft, hop_length, n_mels must be positive, got {n_fft}, {hop_length}, {n_mels}")
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.power, self.log_offset = power, log_offset
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        self.register_buffer("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, warp), persistent=False)

    def num_frames(self, num_samples: Tensor | int) -> Tensor | int:
        """Frames produced for a clip of ``num_samples`` (``center=True``): ``1 + T // hop``.

        Use it to turn waveform lengths into a frame mask after padding.
        """
        return 1 + num_samples // self.hop_length

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() not in (1, 2):
            raise DataError(f"LogMel expects a waveform [T] or [B, T], got shape {tuple(wave.shape)}")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = torch.stft(
                wave.float(),
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            mel = torch.matmul(self.fb, spec.abs().pow(self.power))
            return torch.log(mel + self.log_offset)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, n_mels={self.n_mels}"


def cmvn(features: Tensor) -> Tensor:
    """Per-utterance cepstral mean/variance normalisation of [bands, T] features (per band).

    Removes channel and speaker level offsets and puts silence (log of the noise floor) and speech on one
    scale, so small models train in few steps and frame distances compare speakers fairly.
    """
    return (features - features.mean(1, keepdim=True)) / features.std(1, keepdim=True).clamp_min(1e-5)


def mfcc(logmel: Tensor, n_mfcc: int = 13) -> Tensor:
    """MFCC [T, n_mfcc] of a log-mel [n_mels, T]: orthonormal DCT-II over the bands (Davis & Mermelstein 1980),
    then per-utterance mean/variance normalisation of each coefficient."""
    import scipy.fft

    coeffs = torch.from_numpy(scipy.fft.dct(logmel.numpy(), type=2, norm="ortho", axis=0)[:n_mfcc].T.copy())
    return (coeffs - coeffs.mean(0)) / coeffs.std(0).clamp_min(1e-5)
