"""Log-mel spectrogram → waveform: pseudo-inverse of the mel filterbank, then Griffin-Lim phase recovery.

What: :func:`log_mel_to_audio` undoes :class:`~chorus.data.LogMel` —
``exp`` removes the log (minus its offset), the Moore–Penrose pseudo-inverse of
the Slaney filterbank (clamped at 0) maps mel power back to a linear power
spectrogram, and :func:`griffin_lim` finds a phase consistent with that
magnitude.

Why Griffin-Lim works (D. Griffin, J. Lim, *Signal estimation from modified
short-time Fourier transform*, IEEE TASSP 1984): a magnitude plus an arbitrary
phase is generally not the STFT of any signal; alternating "project onto
consistent STFTs" (iSTFT then STFT) with "restore the target magnitude"
monotonically decreases the distance between the two sets. The momentum term
is the "fast Griffin-Lim" of N. Perraudin, P. Balazs, P. Søndergaard
(WASPAA 2013), which converges in far fewer iterations. Everything is torch
(``stft``/``istft``), so it runs on the tensor's device; librosa's
``feature.inverse.mel_to_audio`` (NNLS instead of the pseudo-inverse) is the
test reference.

Baseline: the same magnitude with random phase (no iterations), which the
tests show Griffin-Lim beats in spectral convergence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from chorus.data.audio import LogMel

__all__ = ["griffin_lim", "mel_to_linear", "log_mel_to_audio", "spectral_convergence"]


def griffin_lim(
    magnitude: Tensor,
    n_fft: int,
    hop_length: int,
    n_iter: int = 64,
    momentum: float = 0.99,
    length: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Waveform [..., T] whose STFT magnitude approximates ``magnitude`` [..., n_fft//2+1, frames]."""
    window = torch.hann_window(n_fft, periodic=True, device=magnitude.device)
    shape = magnitude.shape
    mag = magnitude.reshape(-1, *shape[-2:]).float()

    def istft(spec: Tensor) -> Tensor:
        return torch.istft(spec, n_fft, hop_length, window=window, center=True, length=length)

    def stft(wave: Tensor) -> Tensor:
        return torch.stft(wave, n_fft, hop_length, window=window, center=True, pad_mode="constant", return_complex=True)

    phase = torch.rand(mag.shape, generator=generator, device=mag.device)
    angles = torch.polar(torch.ones_like(mag), 2 * torch.pi * phase)
    previous = torch.zeros_like(angles)
    with torch.autocast(device_type=mag.device.type, enabled=False):
        for _ in range(n_iter):
            rebuilt = stft(istft(mag * angles))
            accelerated = rebuilt - (momentum / (1 + momentum)) * previous
            angles = accelerated / accelerated.abs().clamp_min(1e-16)
            previous = rebuilt
        wave = istft(mag * angles)
    return wave.reshape(*shape[:-2], wave.shape[-1])


def mel_to_linear(mel_power: Tensor, filterbank: Tensor) -> Tensor:
    """Mel power [..., n_mels, frames] → linear power [..., n_freqs, frames] via the clamped pseudo-inverse."""
    inverse = torch.linalg.pinv(filterbank.double()).to(mel_power.dtype)
    return (inverse @ mel_power).clamp_min(0.0)


def log_mel_to_audio(
    log_mel: Tensor,
    logmel: LogMel,
    n_iter: int = 64,
    length: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Invert :class:`~chorus.data.LogMel` features [..., n_mels, frames] to a waveform [..., T]."""
    with torch.autocast(device_type=log_mel.device.type, enabled=False):
        mel_power = (log_mel.float().exp() - logmel.log_offset).clamp_min(0.0)
        power = mel_to_linear(mel_power, logmel.fb.to(log_mel.device))
        magnitude = power.pow(1.0 / logmel.power)
    return griffin_lim(magnitude, logmel.n_fft, logmel.hop_length, n_iter, length=length, generator=generator)


def spectral_convergence(estimate: Tensor, target: Tensor) -> Tensor:
    """``‖|S_est| − |S_target|‖_F / ‖|S_target|‖_F`` on magnitudes (lower is better; 0 = identical)."""
    return (estimate - target).norm() / target.norm().clamp_min(1e-12)
