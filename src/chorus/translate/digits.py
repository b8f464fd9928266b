"""MNIST pixels and FSDD log-mels as in-memory tensors, with the disjoint subsets translation needs.

Why in memory: every translation method (retrieval, generators, judges) reads
the same 10,000 MNIST images and 3,000 FSDD recordings many times; decoding
them once (≈ 2 s) and slicing tensors keeps each training step free of PIL
and WAV decoding. Pixels use the same normalisation as
:class:`~chorus.data.ImageTransform`'s eval view at 28 px (``x/255·2 − 1``, in
[−1, 1]) so encoders trained through the experiment pipeline read them
unchanged; log-mels are :class:`~chorus.data.LogMel` with the FSDD defaults.

Disjointness (so that judges are independent of what they judge):

- MNIST: the loader's seeded 8,000 / 2,000 split; the 8,000 train images are
  halved by position parity — even positions train the **generators**, odd
  positions train the **image judge**; the 2,000 test images are only
  evaluated on.
- FSDD has two speech protocols (:data:`PROTOCOLS`, :meth:`DigitData.speech_split`):
  ``speaker`` — the audio tower is bound on the five train speakers and
  evaluated on ``theo``'s 500 recordings (a voice never heard); ``official`` —
  FSDD's own split, bound on takes 5–49 of all six speakers and evaluated on
  takes 0–4 (voices heard, recordings not). Only the speaker protocol trains
  the speech *generator* side: train-speaker recordings with an odd take index
  train the **mel decoder**, even ones the **audio judge**, so neither has
  heard ``theo``. (Under the official protocol the audio judge would have
  heard the test takes 0, 2, 4 of five speakers; speech is only a *source*
  there, judged through generated images by the image judge.)
- Pairs image↔speech come from :class:`~chorus.data.avdigits.AVDigits`
  (level ``clean``), whose records index the same t10k images and FSDD rows:
  for the official protocol, AV-Digits with no held-out speaker, restricted to
  takes 5–49 (every clip paired with a distinct MNIST train image).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from chorus.data.audio import LogMel
from chorus.data.avdigits import AVDigits
from chorus.data.base import check_choice
from chorus.data.fsdd import FSDD
from chorus.data.mnist import MNIST

__all__ = ["DigitData", "load_digit_data", "PROTOCOLS", "TEST_SPEAKERS"]

TEST_SPEAKERS = ("theo",)
PROTOCOLS = ("speaker", "official")
"""Speech protocols: ``theo`` held out (unseen voice), FSDD's official split (unseen takes 0–4 of known voices)."""


@dataclass
class DigitData:
    """Everything translation reads about digits; index tensors select subsets."""

    pixels: Tensor  # float32 [10000, 1, 28, 28] in [-1, 1], all t10k images
    digit_of_image: Tensor  # long [10000]
    mnist_train: Tensor  # long indices into pixels (8,000)
    mnist_test: Tensor  # long indices (2,000)
    mels: list[Tensor]  # 3,000 log-mels [n_mels, T], FSDD metadata order
    digit_of_clip: Tensor  # long [3000]
    speaker_of_clip: list[str]
    repetition_of_clip: Tensor  # long [3000], FSDD's per-speaker take index 0..49
    pairs_train: Tensor  # long [N, 2]: (clip, image) AV-Digits train pairs
    pairs_test: Tensor  # long [M, 2]: AV-Digits test pairs (held-out speaker, MNIST test images)
    official_pairs_train: Tensor  # long [K, 2]: (clip, MNIST train image) pairs of FSDD's official train takes 5-49
    official_test_clip: Tensor  # bool [3000]: FSDD's official test split (takes 0-4 of every speaker)
    logmel: LogMel

    @property
    def generator_images(self) -> Tensor:
        """MNIST train images at even positions: what generators learn from."""
        return self.mnist_train[0::2]

    @property
    def judge_images(self) -> Tensor:
        """MNIST train images at odd positions: what the image judge learns from."""
        return self.mnist_train[1::2]

    def clips(self, *, test: bool, repetition_parity: int | None = None) -> Tensor:
        """Clip indices of the held-out speaker (``test``) or the train speakers, optionally by take parity."""
        held_out = torch.tensor([s in TEST_SPEAKERS for s in self.speaker_of_clip])
        keep = held_out if test else ~held_out
        if repetition_parity is not None:
            keep &= self.repetition_of_clip % 2 == repetition_parity
        return keep.nonzero().flatten()

    def speech_split(self, protocol: str) -> tuple[Tensor, Tensor]:
        """(binding pairs [N, 2] of (clip, image), evaluation clip indices) of a speech protocol (:data:`PROTOCOLS`)."""
        check_choice("speech protocol", protocol, PROTOCOLS)
        if protocol == "speaker":
            return self.pairs_train, self.clips(test=True)
        return self.official_pairs_train, self.official_test_clip.nonzero().flatten()


def load_digit_data(root: str | os.PathLike[str] | None = None, n_mels: int = 40) -> DigitData:
    """Decode MNIST t10k and all of FSDD once; compute log-mels; read the AV-Digits pairing."""
    mnist = MNIST(root, split="all")
    pixels = torch.from_numpy(mnist.images.copy()).float().div(255.0).mul(2.0).sub(1.0).unsqueeze(1)
    digits = torch.zeros(len(pixels), dtype=torch.long)
    digits[torch.tensor(mnist.records, dtype=torch.long)] = torch.tensor(mnist.labels, dtype=torch.long)
    train = torch.tensor(MNIST(root, split="train").records, dtype=torch.long)
    test = torch.tensor(MNIST(root, split="test").records, dtype=torch.long)
    fsdd = FSDD(root, split="all", protocol="speaker", test_speakers=TEST_SPEAKERS)
    logmel = LogMel(sample_rate=fsdd.sample_rate, n_mels=n_mels)
    clips = [fsdd.load(i) for i in range(len(fsdd))]
    mels: list[Tensor] = []
    with torch.no_grad():  # batched: one stft per chunk instead of 3,000 tiny ones; zero padding = LogMel's own
        for start in range(0, len(clips), 256):
            chunk = [c["audio"] for c in clips[start : start + 256]]
            padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)
            features = logmel(padded)
            mels += [f[:, : logmel.num_frames(len(w))].clone() for f, w in zip(features, chunk)]
    speakers = [c["speaker"] for c in clips]
    takes = [int(r["index"]) for r in fsdd.records]

    def pairs(split: str, held_out: tuple[str, ...] = TEST_SPEAKERS) -> Tensor:
        records = AVDigits(root, split=split, level="clean", test_speakers=held_out).records
        return torch.tensor([[r["audio"], r["image_index"]] for r in records], dtype=torch.long)

    official_test = torch.tensor([r["split"] == "test" for r in fsdd.records])
    every_clip = pairs("train", held_out=())

    return DigitData(
        pixels=pixels,
        digit_of_image=digits,
        mnist_train=train,
        mnist_test=test,
        mels=mels,
        digit_of_clip=torch.tensor(fsdd.labels, dtype=torch.long),
        speaker_of_clip=speakers,
        repetition_of_clip=torch.tensor(takes, dtype=torch.long),
        pairs_train=pairs("train"),
        pairs_test=pairs("test"),
        official_pairs_train=every_clip[~official_test[every_clip[:, 0]]],
        official_test_clip=official_test,
        logmel=logmel,
    )
