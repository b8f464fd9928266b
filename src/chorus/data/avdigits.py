"""AV-Digits: real MNIST images paired with real FSDD recordings of the same digit, with graded degradations.

What it is: a two-modality classification set in the spirit of AV-MNIST
(Vielzeuf et al., *CentralNet: a Multilayer Approach for Multimodal Fusion*,
ECCV-W 2018), which paired MNIST with spoken digits and made each modality
hard on its own (PCA energy removal on images, added noise on audio) so that
fusion has something to gain. The baseline a fusion model should beat is the
better of the two unimodal models trained on the same level; on ``clean`` both
are near ceiling, so fusion gains are only measurable on degraded levels.

Why it is honest:

- **Speaker held out**: audio uses FSDD's ``"speaker"`` protocol, so test
  recordings come from speakers never heard in training (default speaker set
  in ``configs/avdigits.yaml``).
- ``split="all"`` is the train items followed by the test items, each exactly
  as in its own split.
- **Disjoint images**: train items draw from the MNIST loader's train split,
  test items from its test split (seeded stratified 8,000 / 2,000 split of the
  official t10k set), so no image is in both.
- **Seeded pairing**: per digit, the MNIST images of the split are shuffled
  with the seed and dealt to that digit's recordings, so each image is used at
  most once per split and the pairing is identical across runs.
- **Deterministic degradations**: noise for item ``i`` comes from a generator
  seeded with ``(seed, split, i)``, so a sample is identical however the
  dataset is indexed, subset or sharded across workers.

Degradations (a :class:`Degradation`, usually a named level from the YAML):

- image **PCA energy removal**: a PCA is fitted on the MNIST train-split images;
  each image is projected on the fewest leading components whose explained
  variance reaches ``image_pca_variance`` and reconstructed — the fine strokes
  carried by low-variance components are lost (scikit-learn ``PCA`` with a
  fractional ``n_components``);
- image **Gaussian noise** of std ``image_noise_std``; the result is clipped to [0, 1];
- audio **noise at an SNR**: white or pink (1/f power) noise scaled so that
  ``10 log10(P_signal / P_noise) = audio_snr_db`` with powers averaged over the
  whole clip. The mix is not clipped (clipping would change the SNR).

``features=LogMel()`` turns the waveform into a log-mel [n_mels, frames] after
degradation and ``cache=True`` computes every sample once at construction and
serves them from memory — the fast path for benchmarks sweeping many models.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import Tensor

from chorus.config import CONFIG_DIR, load_config
from chorus.data.audio import LogMel
from chorus.data.base import ChorusDataset, OnError, Sample, check_choice
from chorus.data.fsdd import FSDD
from chorus.data.mnist import MNIST
from chorus.data.registry import DATASETS
from chorus.data.root import data_root
from chorus.errors import ConfigError, DataError

DEFAULT_CONFIG = CONFIG_DIR / "avdigits.yaml"
SPLIT_CODES = {"train": 0, "test": 1}
CLASSES = [str(d) for d in range(10)]
NoiseKind = Literal["white", "pink"]


@dataclass(frozen=True)
class Degradation:
    """How much to damage each modality; the defaults leave both clean."""

    image_pca_variance: float | None = None  # keep leading PCs explaining this fraction (0 < f < 1); None = all
    image_noise_std: float = 0.0
    audio_snr_db: float | None = None  # None = no added noise
    audio_noise: NoiseKind = "white"

    def __post_init__(self) -> None:
        if self.image_pca_variance is not None and not 0.0 < self.image_pca_variance < 1.0:
            raise ConfigError(f"image_pca_variance must be in (0, 1) or null, got {self.image_pca_variance}")
        if self.image_noise_std < 0:
            raise ConfigError(f"image_noise_std must be >= 0, got {self.image_noise_std}")
        if self.audio_noise not in ("white", "pink"):
            raise ConfigError(f"audio_noise must be 'white' or 'pink', got {self.audio_noise!r}")


@dataclass(frozen=True)
class AVDigitsConfig:
    """Contents of ``configs/avdigits.yaml``: the held-out speakers, the pairing seed and named levels."""

    test_speakers: tuple[str, ...] = ("theo",)
    seed: int = 0
    levels: dict[str, Degradation] = field(default_factory=dict)


def load_avdigits_config(path: str | os.PathLike[str] | None = None) -> AVDigitsConfig:
    """Read an AV-Digits YAML (default: the repository's ``configs/avdigits.yaml``)."""
    return load_config(AVDigitsConfig, DEFAULT_CONFIG if path is None else path)


def noise(num_samples: int, kind: NoiseKind, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean noise, float64 [num_samples]: white, or pink (power ∝ 1/f) by spectral shaping of white noise."""
    white = rng.standard_normal(num_samples)
    if kind == "white":
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(num_samples)
    spectrum[0] = 0.0
    spectrum[1:] /= np.sqrt(freqs[1:])  # amplitude ∝ f^-1/2 ⇒ power ∝ 1/f
    return np.fft.irfft(spectrum, num_samples)


def mix_at_snr(signal: Tensor, snr_db: float, rng: np.random.Generator, kind: NoiseKind = "white") -> Tensor:
    """``signal + noise`` with the noise scaled to ``snr_db`` over the whole clip (float32, same device)."""
    s = signal.detach().cpu().double().numpy()
    p_signal = float(np.mean(s**2))
    if p_signal == 0.0:
        raise DataError(f"cannot mix noise at {snr_db} dB SNR into an all-zero clip of {s.size} samples")
    n = noise(s.size, kind, rng)
    n *= np.sqrt(p_signal / (np.mean(n**2) * 10.0 ** (snr_db / 10.0)))
    return torch.from_numpy(s + n).to(device=signal.device, dtype=torch.float32)


@lru_cache(maxsize=8)
def _fitted_pca(root: str, fraction: float) -> PCA:
    """PCA of the MNIST train-split images in [0, 1], keeping components up to ``fraction`` of the variance."""
    train = MNIST(root, split="train")
    pixels = train.images[train.records].reshape(len(train), -1).astype(np.float64) / 255.0
    # eigh of the 784×784 covariance: ~20× faster than an SVD of the 8,000×784 data, same components
    return PCA(n_components=fraction, svd_solver="covariance_eigh").fit(pixels)


def pca_energy_removal(images: np.ndarray, root: str | os.PathLike[str], fraction: float) -> np.ndarray:
    """Project images [N, 28, 28] in [0, 1] on the train PCA's leading components and reconstruct (float64)."""
    pca = _fitted_pca(str(data_root(root)), fraction)
    flat = images.reshape(len(images), -1)
    return pca.inverse_transform(pca.transform(flat)).reshape(images.shape)


class AVDigits(ChorusDataset):
    """Yields ``{"image": float32 [1, 28, 28] in [0, 1], "audio": float32 [T] (or log-mel), "sample_rate": 8000,
    "label": int, "speaker": str, "image_index": int, "audio_path": str}``.

    ``level`` is a level name from ``config`` (default ``configs/avdigits.yaml``)
    or a :class:`Degradation`; ``test_speakers`` / ``seed`` default to the config's.
    ``image_index`` indexes the 10,000 official MNIST t10k images.
    """

    name = "avdigits"
    modalities = ("image", "audio")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        level: str | Degradation = "clean",
        config: str | os.PathLike[str] | None = None,
        test_speakers: Sequence[str] | None = None,
        seed: int | None = None,
        features: LogMel | None = None,
        cache: bool = False,
        indices: Sequence[int] | None = None,
    ) -> None:
        check_choice("avdigits split", split, ("train", "test", "all"))
        needs_config = isinstance(level, str) or test_speakers is None or seed is None
        cfg = load_avdigits_config(config) if needs_config else AVDigitsConfig()
        if isinstance(level, str):
            if level not in cfg.levels:
                raise ConfigError(
                    f"avdigits level {level!r} not in {sorted(cfg.levels)} (from {config or DEFAULT_CONFIG})"
                )
            level = cfg.levels[level]
        self.degradation = level
        self.seed = cfg.seed if seed is None else seed
        self.test_speakers = tuple(cfg.test_speakers if test_speakers is None else test_speakers)
        self.root = data_root(root)
        self.features = features
        self.audio = FSDD(self.root, split="all", protocol="speaker", test_speakers=self.test_speakers)
        splits = tuple(SPLIT_CODES) if split == "all" else (split,)
        records = [r for s in splits for r in self._pair(s)]
        self.images = MNIST(self.root, split="all").images  # all 10,000; records hold t10k indices
        super().__init__(records, [r["label"] for r in records], list(CLASSES), transform, on_error, indices)
        self._cache: list[Sample] | None = None
        if cache:
            self._cache = [self.load(i) for i in range(len(self))]

    def _pair(self, split: str) -> list[dict[str, Any]]:
        """Deal each digit's shuffled MNIST images of ``split`` to its recordings (seeded, no reuse)."""
        rng = np.random.default_rng([self.seed, SPLIT_CODES[split]])
        mnist = MNIST(self.root, split=split)
        images, image_labels = np.asarray(mnist.records), np.asarray(mnist.labels)
        in_split = np.asarray([(r["speaker"] in self.test_speakers) == (split == "test") for r in self.audio.records])
        audio_labels = np.asarray(self.audio.labels)
        records: list[dict[str, Any]] = []
        for digit in range(10):
            clips = np.flatnonzero(in_split & (audio_labels == digit))
            pool = rng.permutation(images[image_labels == digit])
            if len(pool) < len(clips):
                raise DataError(
                    f"avdigits {split}: {len(clips)} recordings of {digit} but only {len(pool)} MNIST images"
                )
            records += [{"audio": int(c), "image_index": int(im), "label": digit} for c, im in zip(clips, pool)]
        records.sort(key=lambda r: r["audio"])
        return [{**r, "split": split, "item": i} for i, r in enumerate(records)]

    def _rng(self, record: dict[str, Any], stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_CODES[record["split"]], record["item"], stream])

    def load(self, index: int) -> Sample:
        if self._cache is not None:
            return self._cache[index]
        rec = self.records[index]
        deg = self.degradation
        image = self.images[rec["image_index"]].astype(np.float64)[None] / 255.0
        if deg.image_pca_variance is not None:
            image = pca_energy_removal(image, self.root, deg.image_pca_variance)
        if deg.image_noise_std > 0:
            image = image + deg.image_noise_std * self._rng(rec, 0).standard_normal(image.shape)
        clip = self.audio.load(rec["audio"])
        wave = clip["audio"]
        if deg.audio_snr_db is not None:
            wave = mix_at_snr(wave, deg.audio_snr_db, self._rng(rec, 1), deg.audio_noise)
        if self.features is not None:
            with torch.no_grad():
                wave = self.features(wave)
        return {
            "image": torch.from_numpy(np.clip(image, 0.0, 1.0)).float(),
            "audio": wave,
            "sample_rate": clip["sample_rate"],
            "label": rec["label"],
            "speaker": clip["speaker"],
            "image_index": rec["image_index"],
            "audio_path": clip["path"],
        }

    def stats(self) -> dict[str, float]:
        seconds = [int(self.audio.records[r["audio"]]["num_samples"]) / self.audio.sample_rate for r in self.records]
        return {
            "duration_s_min": min(seconds),
            "duration_s_mean": float(np.mean(seconds)),
            "duration_s_max": max(seconds),
            "height": 28.0,
            "width": 28.0,
        }


DATASETS.register("avdigits")(AVDigits)
