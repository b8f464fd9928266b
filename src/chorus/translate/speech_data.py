"""Connected digit strings as in-memory log-mel items for speech ↔ text, and the batch both directions read.

Why in memory: a recogniser or synthesiser trains for hundreds of steps over a few hundred utterances;
composing each utterance (:class:`~chorus.data.sequences.DigitStrings`) and its log-mel once, then
batching tensors, keeps every step free of WAV decoding. An item holds the raw log-mel (the speaker-robust
front end lives in the encoder, :mod:`chorus.encoders.speaker_robust`, so the same item serves the
synthesiser, whose targets are absolute log-mels), the transcript as digit ids and text, and the exact word
boundaries in frames that composition gives (used only for scoring and for the oracle baseline, never by
the recognisers' training).

Folds: :data:`SPEAKER_FOLDS` — every FSDD speaker held out once (leave-one-speaker-out); ``theo`` is the
project's default held-out voice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from chorus.data.audio import LogMel
from chorus.data.collate import pad_time
from chorus.data.fsdd import SPEAKERS
from chorus.data.sequences import DigitStrings
from chorus.errors import DataError

__all__ = ["SPEAKER_FOLDS", "SpeechItem", "featurize", "load_strings", "speech_batch"]

SPEAKER_FOLDS = tuple(sorted(SPEAKERS))
HOP = 80  # samples per log-mel frame at 8 kHz (10 ms), LogMel's default


@dataclass
class SpeechItem:
    """One utterance: ``mel`` float32 [n_mels, T] (raw log-mel), ``digits`` long [L], ``text``, ``bounds`` [L, 2]
    word spans in fractional frames (sample / hop, end exclusive), ``frame_labels`` long [T] (0 silence,
    digit + 1 inside a word), ``speaker`` and ``audio`` (float32 [samples], kept for the signal baselines)."""

    mel: Tensor
    digits: Tensor
    text: str
    bounds: np.ndarray
    frame_labels: Tensor
    speaker: str
    audio: Tensor


def featurize(sample: dict[str, Any], logmel: LogMel) -> SpeechItem:
    """A :class:`~chorus.data.sequences.DigitStrings` sample → :class:`SpeechItem`.

    Frame ``i`` is centred on sample ``i * hop``; it belongs to word ``k`` when that centre lies in the word's
    sample span.
    """
    with torch.no_grad():
        mel = logmel(sample["audio"])
    bounds = np.asarray(sample["boundary_samples"], dtype=np.float64).reshape(-1, 2)
    centres = np.arange(mel.shape[1]) * logmel.hop_length
    labels = np.zeros(mel.shape[1], dtype=np.int64)
    for digit, (start, end) in zip(sample["digits"], bounds):
        labels[(centres >= start) & (centres < end)] = digit + 1
    return SpeechItem(
        mel,
        torch.tensor(sample["digits"], dtype=torch.long),
        sample["text"],
        bounds / logmel.hop_length,
        torch.from_numpy(labels),
        sample["speaker"],
        sample["audio"],
    )


def load_strings(strings: DigitStrings, logmel: LogMel) -> list[SpeechItem]:
    """Every utterance of a digit-string set, featurised (a set that skips bad items is refused: the
    utterances would no longer line up with their plan)."""
    items = []
    for i in range(len(strings)):
        sample = strings[i]
        if sample is None:
            raise DataError(f"{strings.name}: item {i} was skipped; load digit strings with on_error='raise'")
        items.append(featurize(sample, logmel))
    return items


def speech_batch(items: Sequence[SpeechItem]) -> dict[str, Tensor]:
    """Padded batch: ``audio`` [B, n_mels, T] + ``audio_mask``, ``targets`` [B, L] digit ids + ``target_mask``,
    ``frame_labels`` [B, T] (padding -100, the cross-entropy's ignore index), ``speakers`` [B] (index in
    :data:`SPEAKER_FOLDS`, -1 for a voice outside it, e.g. synthesised speech)."""
    audio, mask = pad_time([it.mel for it in items], "audio")
    targets, target_mask = pad_time([it.digits for it in items], "digits")
    labels, _ = pad_time([it.frame_labels for it in items], "frame_labels")
    return {
        "audio": audio,
        "audio_mask": mask,
        "targets": targets,
        "target_mask": target_mask,
        "frame_labels": labels.masked_fill(~mask, -100),
        "speakers": torch.tensor(
            [SPEAKER_FOLDS.index(it.speaker) if it.speaker in SPEAKER_FOLDS else -1 for it in items], dtype=torch.long
        ),
    }
