"""Spoken digit strings and MNIST "videos" built from real clips, with exact alignment ground truth.

What it is: alignment benchmarks (DTW, CTC, attention, OT) need sequences
whose true correspondence is known. Recorded continuous speech has no exact
word boundaries, so these datasets *compose* them from real data:

- :class:`DigitStrings` (``digit_strings``): utterances of 3–7 digits (any
  range from 1 up) made by concatenating real FSDD clips of **one** speaker,
  separated by random pauses of near-silence (a tiny Gaussian noise floor,
  default std 1e-4 ≈ −80 dBFS, so log-features stay finite). The word
  boundaries are known to the sample. Optional level changes between words
  (``gain_db``) and white background noise at a stated SNR (``snr_db``) make
  the connected-digit recognition task (TIDIGITS in miniature); each sample
  carries its transcript as text (``"four two seven"``) and as digit ids.
  :meth:`DigitStrings.pair` gives the same digit string spoken by two
  different speakers — the unsupervised DTW alignment case, scored against
  both boundary lists.
- :class:`AVSequences` (``av_sequences``): a slide-show "video" of MNIST
  digits at a nominal 25 fps, each digit held for a random 3–12 frames, paired
  with the spoken string of the same digits; per-frame ground truth and audio
  boundaries give the recipe ↔ video alignment case with known truth.

Why boundaries are exact: each FSDD clip first has its leading and trailing
silence trimmed by an energy threshold (:func:`trim_silence`), and the trimmed
clip is copied *unchanged* into the utterance; the boundary of digit k is the
sample range it was copied to (``audio[start:end]`` equals the trimmed clip
bit for bit, times its gain when ``gain_db`` > 0). The threshold is librosa's ``effects.trim`` rule: a frame is
speech if its RMS is within ``top_db`` dB of the loudest frame's.

Determinism: item ``i`` is drawn from a generator seeded with
``(seed, split, i)``, so samples do not depend on dataset size, subsetting or
worker sharding. Gains and noise have streams of their own, so the same item
with and without them has the same clips and pauses: a noisy test condition is
the clean one plus noise. Splits hold speakers out (FSDD ``"speaker"`` protocol) and
take MNIST images from the MNIST loader's disjoint train/test splits;
``split="all"`` is the train items followed by the test items, unchanged.

A baseline for the alignment methods scored on these sets is the *uniform*
(linear) alignment, which maps time proportionally; a useful aligner must beat it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from chorus.data.audio import speed_perturb
from chorus.data.base import ChorusDataset, OnError, Sample, check_choice
from chorus.data.fsdd import FSDD
from chorus.data.mnist import MNIST
from chorus.data.registry import DATASETS
from chorus.data.root import data_root
from chorus.errors import ConfigError, DataError

SPLIT_CODES = {"train": 0, "test": 1}
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AMIN = 1e-5  # amplitude floor before taking dB, as in librosa.amplitude_to_db


def trim_silence(wave: Tensor, top_db: float = 40.0, frame_length: int = 256, hop_length: int = 64) -> tuple[int, int]:
    """``(start, end)`` of the non-silent part of a waveform [T]: ``wave[start:end]`` is the trimmed clip.

    Frames (centred, zero-padded, ``frame_length`` samples every ``hop_length``)
    whose RMS is within ``top_db`` dB of the loudest frame are speech; the span
    runs from the first speech frame's centre to one hop past the last one's
    (librosa ``effects.trim`` semantics). Raises DataError if nothing is speech.
    """
    y = wave.detach().cpu().double().numpy()
    padded = np.pad(y, frame_length // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length]
    rms = np.sqrt(np.mean(frames**2, axis=1))
    db = 20.0 * np.log10(np.maximum(rms, AMIN)) - 20.0 * np.log10(max(rms.max(), AMIN))
    speech = np.flatnonzero(db > -top_db)
    if speech.size == 0 or rms.max() == 0.0:
        raise DataError(f"trim_silence: clip of {y.size} samples is all silence")
    return int(speech[0] * hop_length), int(min(y.size, (speech[-1] + 1) * hop_length))


def digits_to_text(digits: Sequence[int]) -> str:
    """Digit ids → the transcript as words: ``[4, 2, 7]`` → ``"four two seven"``."""
    return " ".join(DIGIT_WORDS[int(d)] for d in digits)


def text_to_digits(text: str) -> list[int]:
    """A transcript of digit words (case and extra spaces ignored) → digit ids; DataError names an unknown word."""
    words = text.lower().split()
    unknown = sorted({w for w in words if w not in DIGIT_WORDS})
    if unknown:
        raise DataError(f"not digit words: {', '.join(unknown)} (expected words among {', '.join(DIGIT_WORDS)})")
    return [DIGIT_WORDS.index(w) for w in words]


def add_noise(
    wave: np.ndarray, speech: Sequence[tuple[int, int]], snr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """``wave`` plus white Gaussian noise whose power is the speech power over ``speech`` spans divided by 10^(snr/10).

    The SNR is measured against the words only (not the pauses), the convention of noisy-digit
    sets such as Aurora-2 (Hirsch & Pearce 2000).
    """
    power = float(np.mean(np.concatenate([wave[s:e] for s, e in speech]) ** 2))
    return wave + np.sqrt(power / 10.0 ** (snr_db / 10.0)) * rng.standard_normal(wave.size)


def seconds(boundaries: Sequence[tuple[int, int]], sample_rate: int) -> list[tuple[float, float]]:
    return [(s / sample_rate, e / sample_rate) for s, e in boundaries]


class DigitStrings(ChorusDataset):
    """Yields ``{"audio": float32 [T], "sample_rate": int, "digits": list[int], "text": str, "boundaries":
    list[(s0, s1)] seconds, "boundary_samples": list[(i0, i1)] (end exclusive), "speaker": str, "clip_paths": list[str]}``.

    ``size`` utterances per split; ``pause_s`` bounds each pause (before,
    between and after the digits) in seconds; each word's level is scaled by a
    gain drawn uniformly from ±``gain_db`` dB; ``snr_db`` (None: none) adds
    white noise at that SNR (:func:`add_noise`); ``speed`` ≠ 1 plays every
    word that many times faster (:func:`~chorus.data.audio.speed_perturb`, before gains and noise, pauses
    unchanged; the boundaries are those of the perturbed words). There is no class label:
    ``classes`` is empty and ``labels`` holds item numbers (as in COCOCaptions).
    """

    name = "digit_strings"
    modalities = ("audio",)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        test_speakers: Sequence[str] = ("theo",),
        size: int = 500,
        num_digits: tuple[int, int] = (3, 7),
        pause_s: tuple[float, float] = (0.05, 0.4),
        noise_floor: float = 1e-4,
        top_db: float = 40.0,
        gain_db: float = 0.0,
        snr_db: float | None = None,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        speed: float = 1.0,
    ) -> None:
        check_choice(f"{self.name} split", split, ("train", "test", "all"))
        if gain_db < 0:
            raise ConfigError(f"{self.name} gain_db must be >= 0, got {gain_db}")
        if not 1 <= num_digits[0] <= num_digits[1]:
            raise ConfigError(f"{self.name} num_digits must satisfy 1 <= min <= max, got {num_digits}")
        if not 0.0 <= pause_s[0] <= pause_s[1]:
            raise ConfigError(f"{self.name} pause_s must satisfy 0 <= min <= max, got {pause_s}")
        if size < 0 or noise_floor < 0:
            raise ConfigError(f"{self.name} size and noise_floor must be >= 0, got {size}, {noise_floor}")
        self.root = data_root(root)
        self.seed, self.pause_s, self.noise_floor, self.top_db = seed, pause_s, noise_floor, top_db
        self.gain_db, self.snr_db, self.speed = gain_db, snr_db, speed
        if speed != 1.0:
            speed_perturb(torch.zeros(1), speed)  # a factor out of range fails here, not at the first item
        self._trimmed: dict[int, tuple[np.ndarray, str]] = {}  # FSDD index → (trimmed clip, path)
        self.fsdd = FSDD(self.root, split="all", protocol="speaker", test_speakers=tuple(test_speakers))
        self.sample_rate = self.fsdd.sample_rate
        self.clips: dict[tuple[str, int], list[int]] = defaultdict(list)  # (speaker, digit) → FSDD indices
        for i, row in enumerate(self.fsdd.records):
            self.clips[(row["speaker"], self.fsdd.labels[i])].append(i)
        everyone = {row["speaker"] for row in self.fsdd.records}
        self.speakers = {"train": sorted(everyone - set(test_speakers)), "test": sorted(test_speakers)}
        records = []
        for part in tuple(SPLIT_CODES) if split == "all" else (split,):
            if not self.speakers[part]:
                raise ConfigError(f"{self.name} {part}: no FSDD speakers left (test_speakers={list(test_speakers)})")
            for item in range(size):
                rng = self.item_rng(part, item, 0)
                speaker = self.speakers[part][rng.integers(len(self.speakers[part]))]
                digits = rng.integers(0, 10, size=rng.integers(num_digits[0], num_digits[1] + 1)).tolist()
                records.append({"split": part, "item": item, "speaker": speaker, "digits": digits})
        super().__init__(records, list(range(len(records))), [], transform, on_error, indices)

    def item_rng(self, split: str, item: int, stream: int) -> np.random.Generator:
        """Generator for draw ``stream`` of item ``item`` of ``split``: 0 plan, 1 audio, 2 pair partner, 3 video,
        4 noise, 5 gains."""
        return np.random.default_rng([self.seed, SPLIT_CODES[split], item, stream])

    def trimmed(self, index: int) -> tuple[np.ndarray, str]:
        """FSDD clip ``index`` with its silence trimmed (float64), speed-perturbed by ``speed``, and its path;
        decoded once and cached."""
        if index not in self._trimmed:
            clip = self.fsdd.load(index)
            start, end = trim_silence(clip["audio"], self.top_db)
            word = clip["audio"][start:end].double()
            if self.speed != 1.0:
                word = speed_perturb(word, self.speed)
            self._trimmed[index] = (word.numpy(), clip["path"])
        return self._trimmed[index]

    def utterance(
        self,
        digits: Sequence[int],
        speaker: str,
        rng: np.random.Generator,
        effects_rng: tuple[np.random.Generator, np.random.Generator] | None = None,
    ) -> Sample:
        """Speak ``digits`` with ``speaker``'s trimmed clips (chosen with ``rng``) separated by random pauses.

        ``effects_rng`` (gains, noise) draws the level changes and the noise; by default both come from ``rng``.
        """
        gain_rng, noise_rng = effects_rng or (rng, rng)
        pieces: list[np.ndarray] = []
        bounds: list[tuple[int, int]] = []
        paths: list[str] = []
        cursor = 0

        def silence() -> None:
            nonlocal cursor
            gap = self.noise_floor * rng.standard_normal(round(rng.uniform(*self.pause_s) * self.sample_rate))
            pieces.append(gap)
            cursor += gap.size

        silence()
        for digit in digits:
            choices = self.clips.get((speaker, int(digit)))
            if not choices:
                raise ConfigError(
                    f"{self.name}: speaker {speaker!r} has no clip of digit {digit} (speakers: {sorted({k[0] for k in self.clips})})"
                )
            word, path = self.trimmed(int(choices[rng.integers(len(choices))]))
            if self.gain_db > 0:
                word = word * 10.0 ** (gain_rng.uniform(-self.gain_db, self.gain_db) / 20.0)
            pieces.append(word)
            bounds.append((cursor, cursor + word.size))
            paths.append(path)
            cursor += word.size
            silence()
        audio = np.concatenate(pieces)
        if self.snr_db is not None:
            audio = add_noise(audio, bounds, self.snr_db, noise_rng)
        return {
            "audio": torch.from_numpy(audio).float(),
            "sample_rate": self.sample_rate,
            "digits": [int(d) for d in digits],
            "text": digits_to_text(digits),
            "boundaries": seconds(bounds, self.sample_rate),
            "boundary_samples": bounds,
            "speaker": speaker,
            "clip_paths": paths,
        }

    def render(self, record: dict) -> Sample:
        """The utterance of one plan record (``records[i]``): its digits, its speaker, its audio stream."""
        split, item = record["split"], record["item"]
        effects = (self.item_rng(split, item, 5), self.item_rng(split, item, 4))
        return self.utterance(record["digits"], record["speaker"], self.item_rng(split, item, 1), effects)

    def load(self, index: int) -> Sample:
        return self.render(self.records[index])

    def pair(self, index: int) -> tuple[Sample, Sample]:
        """Item ``index`` and the same digit string spoken by another speaker of the split (seeded).

        Needs at least two speakers in the split (for ``test``, hold out two or more).
        """
        first = self[index]
        assert first is not None, f"{self.name}: item {index} was skipped (on_error='skip'); it has no pair"
        rec = self.records[index]
        others = [s for s in self.speakers[rec["split"]] if s != rec["speaker"]]
        if not others:
            raise ConfigError(
                f"{self.name} {rec['split']}: pair needs >= 2 speakers, split has {self.speakers[rec['split']]}"
            )
        rng = self.item_rng(rec["split"], rec["item"], 2)
        second = self.utterance(rec["digits"], others[rng.integers(len(others))], rng)
        return first, self.transform(second) if self.transform is not None else second

    def stats(self) -> dict[str, float]:
        lengths = [len(r["digits"]) for r in self.records]
        return {
            "digits_min": float(min(lengths, default=0)),
            "digits_mean": float(np.mean(lengths)) if lengths else 0.0,
            "digits_max": float(max(lengths, default=0)),
            "speakers": float(len({r["speaker"] for r in self.records})),
        }


class AVSequences(ChorusDataset):
    """A :class:`DigitStrings` utterance plus a slide-show video of the same digits.

    Adds ``{"frames": float32 [F, 1, 28, 28] in [0, 1], "fps": float,
    "frame_digits": int64 [F] (digit shown), "frame_position": int64 [F]
    (index into ``digits``), "frame_segments": list[(f0, f1)] (end exclusive),
    "image_indices": list[int] (MNIST t10k indices)}``. Each digit shows a
    random MNIST image of that digit from the split, shown for ``frames_per_digit`` (inclusive range) frames.
    Keywords not listed here go to :class:`DigitStrings`.
    """

    name = "av_sequences"
    modalities = ("image", "audio")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        frames_per_digit: tuple[int, int] = (3, 12),
        fps: float = 25.0,
        indices: Sequence[int] | None = None,
        **strings_kw: object,
    ) -> None:
        if not 1 <= frames_per_digit[0] <= frames_per_digit[1]:
            raise ConfigError(f"{self.name} frames_per_digit must satisfy 1 <= min <= max, got {frames_per_digit}")
        self.strings = DigitStrings(root, split, **strings_kw)  # type: ignore[arg-type]
        self.frames_per_digit, self.fps = frames_per_digit, fps
        self.images_of: dict[tuple[str, int], np.ndarray] = {}  # (split, digit) → MNIST t10k indices
        for part in SPLIT_CODES:
            mnist = MNIST(self.strings.root, split=part)
            for d in range(10):
                self.images_of[(part, d)] = np.asarray(mnist.records)[np.asarray(mnist.labels) == d]
        self.images = mnist.images  # the full 10,000-image t10k array, the same for every split
        super().__init__(self.strings.records, self.strings.labels, [], transform, on_error, indices)

    def load(self, index: int) -> Sample:
        rec = self.records[index]
        sample = self.strings.render(rec)
        rng = self.strings.item_rng(rec["split"], rec["item"], 3)
        frames, segments, image_indices = [], [], []
        positions: list[int] = []
        for k, digit in enumerate(rec["digits"]):
            pool = self.images_of[(rec["split"], digit)]
            image_index = int(pool[rng.integers(len(pool))])
            count = int(rng.integers(self.frames_per_digit[0], self.frames_per_digit[1] + 1))
            image = torch.from_numpy(self.images[image_index].astype(np.float32) / 255.0)
            frames.append(image[None, None].expand(count, 1, 28, 28))
            segments.append((len(positions), len(positions) + count))
            positions += [k] * count
            image_indices.append(image_index)
        position = torch.tensor(positions, dtype=torch.long)
        sample.update(
            frames=torch.cat(frames).contiguous(),
            fps=self.fps,
            frame_digits=torch.tensor(rec["digits"], dtype=torch.long)[position],
            frame_position=position,
            frame_segments=segments,
            image_indices=image_indices,
        )
        return sample

    def stats(self) -> dict[str, float]:
        return self.strings.stats()


DATASETS.register("digit_strings")(DigitStrings)
DATASETS.register("av_sequences")(AVSequences)
