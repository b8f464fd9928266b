"""scikit-learn's 8×8 handwritten digits: an embedded dataset needing no files or network.

1,797 images (UCI "Optical Recognition of Handwritten Digits", E. Alpaydin &
C. Kaynak, 1998) shipped inside scikit-learn, so smoke tests, examples and CI
always have real data. Pixel values 0–16 are scaled to 0–255 (``round(v*255/16)``)
and returned as PIL mode ``"L"`` 8×8 images, so the same ``ImageTransform`` as
MNIST applies. Split: label-stratified, ``test_size`` (default 0.2 → 1,437 /
360) with the fixed seed :data:`SPLIT_SEED`. ``classes`` are ``"0"``..``"9"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from chorus.data.base import ChorusDataset, OnError, Sample, split_indices

SPLIT_SEED = 0
CLASSES = [str(d) for d in range(10)]


class Digits(ChorusDataset):
    """Yields ``{"image": PIL "L" 8×8, "label": int}``. ``root`` is accepted for a uniform API and ignored."""

    name = "digits"
    modalities = ("image",)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        test_size: float = 0.2,
        indices: Sequence[int] | None = None,
    ) -> None:
        bunch = load_digits()
        self.images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        keep = split_indices(bunch.target.tolist(), split, test_size, SPLIT_SEED)
        super().__init__(keep, bunch.target[keep].tolist(), list(CLASSES), transform, on_error, indices)

    def load(self, index: int) -> Sample:
        return {"image": Image.fromarray(self.images[self.records[index]]), "label": self.labels[index]}

    def stats(self) -> dict[str, float]:
        return {"height": 8.0, "width": 8.0}
