"""Common machinery of every Chorus dataset: the bad-data policy and split helpers.

Policy (``on_error``):

- ``"raise"`` (default): a corrupt or malformed item raises
  :class:`~chorus.errors.DataError` naming the file and the problem — right for
  evaluation, where silently dropping items changes the metric.
- ``"skip"``: the error is logged as a warning on the ``chorus.data`` logger,
  ``dataset.skipped`` is incremented and ``__getitem__`` returns ``None``;
  :class:`~chorus.data.collate.Collate` drops the ``None`` (and counts it in
  ``collate.dropped``), so a long training run survives a few bad files.
  With DataLoader workers each worker holds its own copy of ``skipped``; the
  collate counter (also per worker) or the log is the reliable tally there.

Only ``DataError`` is caught: anything else is a bug and propagates.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from sklearn.model_selection import train_test_split
from torch.utils.data import Dataset

from chorus.errors import ConfigError, DataError, DataNotFoundError

logger = logging.getLogger("chorus.data")

OnError = Literal["raise", "skip"]
Sample = dict[str, Any]


class ChorusDataset(Dataset):
    """Map-style dataset over a list of cheap item records; subclasses implement ``load``.

    Subclasses set ``name``, ``modalities``, ``classes`` (human-readable class
    names) and ``labels`` (one int per item, known without decoding anything).
    """

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        records: Sequence[Any],
        labels: Sequence[int],
        classes: list[str],
        transform: Callable[[Sample], Sample] | None,
        on_error: OnError,
        indices: Sequence[int] | None = None,
    ) -> None:
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if indices is not None:
            bad = [i for i in indices if not 0 <= i < len(records)]
            if bad:
                raise ConfigError(f"{self.name}: indices out of range 0..{len(records) - 1}: {bad[:5]}")
            records = [records[i] for i in indices]
            labels = [labels[i] for i in indices]
        self.records = list(records)
        self.labels: list[int] = [int(x) for x in labels]
        self.classes = classes
        self.transform = transform
        self.on_error = on_error
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> Sample:
        """Decode item ``index`` into a raw sample dict (may raise DataError)."""
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Cheap metadata statistics (image size, clip durations) for ``dataset_info``."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> Sample | None:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} items")
        try:
            sample = self.load(index)
            return self.transform(sample) if self.transform is not None else sample
        except DataError as err:
            if self.on_error == "raise":
                raise
            self.skipped += 1
            logger.warning("%s: skipping item %d: %s", self.name, index, err)
            return None


def split_indices(labels: Sequence[int], split: str, test_size: int | float, seed: int) -> list[int]:
    """Indices of a seeded, label-stratified train/test split (``split="all"`` → everything).

    Stratification keeps class proportions equal in both halves, so accuracy on
    the test half is comparable across seeds and chance level is unchanged.
    """
    everything = np.arange(len(labels))
    if split == "all":
        return everything.tolist()
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train', 'test' or 'all', got {split!r}")
    train, test = train_test_split(everything, test_size=test_size, random_state=seed, stratify=np.asarray(labels))
    return sorted((train if split == "train" else test).tolist())


def check_choice(what: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise ConfigError(f"{what} must be one of {list(valid)}, got {value!r}")


def require_file(path: Path, dataset: str, root: Path) -> Path:
    """Return ``path`` or raise DataNotFoundError saying how to get the dataset."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{dataset}: file {path.relative_to(root) if path.is_relative_to(root) else path} is missing under "
            f"data root {root}. Get it with `chorus data download {dataset} --data-root {root}` "
            f"or in Python `chorus.data.download({dataset!r}, root={str(root)!r})`."
        )
    return path


def read_csv(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    """Read a metadata CSV, checking its header has the ``required`` columns."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing columns {missing} (has {reader.fieldnames})")
        return list(reader)
