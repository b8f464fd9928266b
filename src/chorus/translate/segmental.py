"""Segment-then-classify digit-string recognition: the baselines a segmentation-free recogniser is measured by.

A pipeline recogniser cuts the utterance into words and names each with the isolated-digit classifier
(the speaker-robust ``audio_cnn`` of :func:`chorus.translate.judges.train_judge`, trained on trimmed FSDD
clips). Two ways to cut:

- **oracle segments** — the true word spans of the composed utterance: only the classifier can err, so
  this is the upper bound a recogniser that must also find the words should approach;
- **energy-VAD segments** — :func:`chorus.align.segments.energy_segments` on the utterance's own per-frame
  log-energy, as a pipeline would do without labels; words split at stop closures or merged across
  short pauses become insertions and deletions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from chorus.align.segments import energy_segments
from chorus.classifier import Classifier
from chorus.data.audio import LogMel
from chorus.data.sequences import DigitStrings
from chorus.translate.judges import judge_predictions, train_judge

__all__ = ["classify_segments", "isolated_clips", "oracle_segments", "train_isolated_classifier", "vad_segments"]


def isolated_clips(strings: DigitStrings, logmel: LogMel, split: str = "train") -> tuple[list[Tensor], Tensor]:
    """Log-mels of every trimmed FSDD clip by the ``split`` speakers of ``strings`` (the words strings are made
    of), and their digits."""
    speakers = set(strings.speakers[split])
    mels, labels = [], []
    for index, row in enumerate(strings.fsdd.records):
        if row["speaker"] in speakers:
            wave, _ = strings.trimmed(index)
            with torch.no_grad():
                mels.append(logmel(torch.from_numpy(wave).float()))
            labels.append(strings.fsdd.labels[index])
    return mels, torch.tensor(labels)


def train_isolated_classifier(mels: list[Tensor], labels: Tensor, steps: int, run_dir: str, seed: int) -> Classifier:
    """The speaker-robust isolated-digit classifier (the translation benchmark's audio judge)."""
    return train_judge("audio", mels, labels, steps, run_dir, seed=seed)


def oracle_segments(bounds: np.ndarray, frames: int) -> np.ndarray:
    """True word spans in fractional frames [L, 2] → integer frame spans (each at least one frame)."""
    starts = np.clip(np.floor(bounds[:, 0]), 0, frames - 1).astype(np.int64)
    ends = np.clip(np.ceil(bounds[:, 1]), starts + 1, frames).astype(np.int64)
    return np.stack([starts, ends], axis=1)


def vad_segments(mel: Tensor) -> np.ndarray:
    """Energy-VAD word spans [S, 2] of a log-mel [n_mels, T] (log-energy = log-sum-exp over bands)."""
    return energy_segments(torch.logsumexp(mel.float(), dim=0).numpy())


def classify_segments(
    classifier: Classifier, mels: Sequence[Tensor], segments: Sequence[np.ndarray]
) -> list[list[int]]:
    """The digit sequence of each utterance: one classifier prediction per segment, in order."""
    pieces = [mel[:, s:e] for mel, spans in zip(mels, segments) for s, e in spans]
    predicted = judge_predictions(classifier, pieces).tolist() if pieces else []
    out, cursor = [], 0
    for spans in segments:
        out.append(predicted[cursor : cursor + len(spans)])
        cursor += len(spans)
    return out
