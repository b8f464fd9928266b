"""Paired digit data for co-learning: AV-Digits (MNIST image + FSDD recording of the same digit) as tensors.

Every co-learning experiment needs the same three things — audio–image pairs
whose audio is speaker-held-out, the image scaling the image–text model was
trained with, and a few labelled examples per class drawn reproducibly — so
they live here once. Pairs come from :class:`chorus.data.avdigits.AVDigits`
(level ``clean``), which pairs by label without reusing an image and holds out
FSDD speaker ``theo`` for the test split; log-mels are computed once and cached
(``cache=True``), so models sweeping over the data pay for decoding only once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from chorus.data.audio import LogMel
from chorus.data.avdigits import AVDigits
from chorus.data.base import Sample
from chorus.errors import ConfigError

__all__ = ["N_MELS", "Relabelled", "few_labels", "normalise_image", "paired_digits"]

N_MELS = 40
"""Log-mel bands used throughout co-learning (the FSDD baseline config's value)."""


def normalise_image(sample: Sample) -> Sample:
    """Map AV-Digits images from [0, 1] to [-1, 1], the scaling of ``ImageTransform`` (mean = std = 0.5).

    Image towers trained on ``mnist`` through ``ImageTransform`` see this range,
    so a frozen tower applied to AV-Digits images must see it too.
    """
    return {**sample, "image": sample["image"] * 2.0 - 1.0}


def paired_digits(
    root: str | os.PathLike[str] | None, split: str, level: str = "clean", per_class: int | None = None, seed: int = 0
) -> AVDigits:
    """AV-Digits ``split`` with log-mel audio [n_mels, frames] and normalised images, cached in memory.

    ``per_class`` keeps a seeded stratified subset of that many pairs per digit
    (only those are decoded), for smoke runs and tests.
    """
    indices = None
    if per_class is not None:
        indices = few_labels(AVDigits(root, split=split, level=level).labels, per_class, seed)[0]
    return AVDigits(
        root,
        split=split,
        level=level,
        features=LogMel(sample_rate=8000, n_mels=N_MELS),
        cache=True,
        transform=normalise_image,
        indices=indices,
    )


def few_labels(labels: Sequence[int], per_class: int, seed: int) -> tuple[list[int], list[int]]:
    """(labelled, unlabelled) indices: ``per_class`` seeded picks of every class, and the rest.

    Stratified so that every class is represented exactly ``per_class`` times,
    which is the "k labels per class" protocol of semi-supervised benchmarks.
    """
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for c in np.unique(labels_arr):
        members = np.flatnonzero(labels_arr == c)
        if len(members) < per_class:
            raise ConfigError(f"few_labels: class {c} has {len(members)} items, fewer than per_class={per_class}")
        picked += rng.choice(members, per_class, replace=False).tolist()
    chosen = set(picked)
    return sorted(picked), [i for i in range(len(labels_arr)) if i not in chosen]


class Relabelled(Dataset):
    """Items ``indices`` of ``base`` with their ``"label"`` replaced by ``labels`` (e.g. pseudo-labels).

    Pseudo-labelling methods train on the other view's guesses; wrapping keeps
    the underlying (cached) dataset untouched and shared between views.
    """

    def __init__(self, base: Dataset, indices: Sequence[int], labels: Sequence[int] | Tensor) -> None:
        if len(indices) != len(labels):
            raise ConfigError(f"Relabelled: {len(indices)} indices but {len(labels)} labels")
        self.base = base
        self.indices = [int(i) for i in indices]
        self.labels = [int(y) for y in (labels.tolist() if isinstance(labels, Tensor) else labels)]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Sample:
        return {**self.base[self.indices[i]], "label": self.labels[i]}
