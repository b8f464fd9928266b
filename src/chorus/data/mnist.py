"""MNIST test set (10,000 handwritten 28×28 digits), split into seeded train/test halves.

Only the official ``t10k`` files are used (see the data folder's SOURCE.md), so
this loader carves its own split: a label-stratified 8,000 train / 2,000 test
split with the fixed seed :data:`SPLIT_SEED` (``split="all"`` gives all
10,000). Stratification keeps every digit at its natural frequency in both
halves. ``classes`` are ``"0"``..``"9"``; images are PIL mode ``"L"``.

Layout: ``mnist_test/t10k-images-idx3-ubyte.gz`` and
``mnist_test/t10k-labels-idx1-ubyte.gz`` (IDX format: big-endian header,
then uint8 data). Source: Y. LeCun, C. Cortes, C. Burges, *The MNIST database*
(CC BY-SA 3.0).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from chorus.data.base import ChorusDataset, OnError, Sample, require_file, split_indices
from chorus.data.fetch import fetch
from chorus.data.root import data_root
from chorus.errors import DataError

FOLDER = "mnist_test"
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FILES = {  # name → md5 of the official files
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
SPLIT_SEED = 0
TEST_SIZE = 2000
CLASSES = [str(d) for d in range(10)]


def read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    """Parse a gzip'd IDX file: ``magic`` (2051 images / 2049 labels), ``dims`` int32 sizes, uint8 data."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a readable gzip file ({err})") from err
    header = 4 * (1 + dims)
    if len(raw) < header or struct.unpack(">i", raw[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file with magic {magic}")
    shape = struct.unpack(f">{dims}i", raw[4:header])
    data = np.frombuffer(raw, np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


class MNIST(ChorusDataset):
    """Yields ``{"image": PIL "L" 28×28, "label": int}``."""

    name = "mnist"
    modalities = ("image",)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        indices: Sequence[int] | None = None,
    ) -> None:
        self.root = data_root(root)
        folder = self.root / FOLDER
        images = read_idx(require_file(folder / "t10k-images-idx3-ubyte.gz", self.name, self.root), 2051, 3)
        labels = read_idx(require_file(folder / "t10k-labels-idx1-ubyte.gz", self.name, self.root), 2049, 1)
        if len(images) != len(labels):
            raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
        keep = split_indices(labels.tolist(), split, TEST_SIZE, SPLIT_SEED)
        self.images = images
        super().__init__(keep, labels[keep].tolist(), list(CLASSES), transform, on_error, indices)

    def load(self, index: int) -> Sample:
        return {"image": Image.fromarray(self.images[self.records[index]]), "label": self.labels[index]}

    def stats(self) -> dict[str, float]:
        return {"height": float(self.images.shape[1]), "width": float(self.images.shape[2])}


def download_mnist(root: str | os.PathLike[str] | None = None, mirror: str = MIRROR) -> Path:
    """Fetch the two t10k files (md5-checked) into ``<root>/mnist_test``."""
    folder = data_root(root) / FOLDER
    for name, md5 in FILES.items():
        fetch(mirror + name, folder / name, md5=md5)
    return folder
