"""Pair a labelled dataset with another modality: a same-label partner dataset, or class-name captions.

``LabelPairs`` joins two labelled datasets with different modalities item-by-item on the label (FSDD
audio × MNIST image of the same digit, AV-MNIST style); ``ClassCaptions`` adds a caption made from the
class name ("the spoken digit seven", "a photo of a car side"). :func:`build_pairing` builds either by
dataset name; ``chorus data pack --pair`` writes the result as shards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from chorus.data.base import ChorusDataset, OnError, Sample
from chorus.data.captions import class_words, fill_template
from chorus.data.registry import build_dataset
from chorus.errors import ConfigError

__all__ = ["ClassCaptions", "LabelPairs", "TEXT_TEMPLATES", "build_pairing"]

# Caption templates for pairing="text"; {} is the class name (digits spelled out).
TEXT_TEMPLATES = {
    "fsdd": "the spoken digit {}",
    "mnist": "a handwritten digit {}",
    "digits": "a handwritten digit {}",
    "caltech101": "a photo of a {}",
}


class LabelPairs(ChorusDataset):
    """Item ``i`` of ``first`` joined with an item of ``second`` that has the same label.

    For each label, the matching ``second`` items are permuted with ``seed`` and
    handed out in turn (cycling when ``first`` has more items of that label), so
    partners are spread over the whole class rather than always the first one.
    Fields of ``second`` that ``first`` also has (other than ``label``) are
    prefixed ``{second.name}_``; ``{second.name}_index`` records the partner.
    """

    def __init__(
        self,
        first: ChorusDataset,
        second: ChorusDataset,
        seed: int = 0,
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
    ) -> None:
        shared = set(first.modalities) & set(second.modalities)
        if shared:
            raise ConfigError(f"pairing {first.name}+{second.name}: both datasets have modality {sorted(shared)}")
        self.name = f"{first.name}+{second.name}"  # type: ignore[misc]  # per-instance name
        self.modalities = (*first.modalities, *second.modalities)  # type: ignore[misc]
        self.first, self.second = first, second
        rng = np.random.default_rng(seed)
        pools: dict[int, list[int]] = {}
        for j, label in enumerate(second.labels):
            pools.setdefault(label, []).append(j)
        missing = sorted(set(first.labels) - set(pools))
        if missing:
            raise ConfigError(f"pairing {self.name}: labels {missing[:10]} of {first.name} have no {second.name} item")
        pools = {label: rng.permutation(js).tolist() for label, js in sorted(pools.items())}
        taken: dict[int, int] = {}
        partners = []
        for label in first.labels:
            n = taken.get(label, 0)
            partners.append(pools[label][n % len(pools[label])])
            taken[label] = n + 1
        super().__init__(list(zip(range(len(first)), partners)), first.labels, first.classes, transform, on_error)

    def load(self, index: int) -> Sample:
        i, j = self.records[index]
        sample = self.first.load(i)
        prefix = f"{self.second.name}_"
        for key, value in self.second.load(j).items():
            if key == "label":
                continue
            sample[prefix + key if key in sample else key] = value
        sample[f"{prefix}index"] = j
        return sample

    def stats(self) -> dict[str, float]:
        return {**self.first.stats(), **{f"{self.second.name}_{k}": v for k, v in self.second.stats().items()}}


class ClassCaptions(ChorusDataset):
    """``dataset`` with ``"text"`` set to ``template`` filled with the class name (digit names spelled out)."""

    def __init__(
        self,
        dataset: ChorusDataset,
        template: str,
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
    ) -> None:
        if not dataset.classes:
            raise ConfigError(f"{dataset.name} has no class names to caption")
        self.name = f"{dataset.name}+text"  # type: ignore[misc]  # per-instance name
        self.modalities = tuple(dict.fromkeys((*dataset.modalities, "text")))  # type: ignore[misc]
        self.dataset = dataset
        self.captions = [fill_template(template, n) for n in class_words(dataset.classes)]
        super().__init__(list(range(len(dataset))), dataset.labels, dataset.classes, transform, on_error)

    def load(self, index: int) -> Sample:
        sample = self.dataset.load(index)
        sample["text"] = self.captions[self.labels[index]]
        return sample

    def stats(self) -> dict[str, float]:
        return self.dataset.stats()


def build_pairing(
    name: str,
    partner: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    seed: int = 0,
    **dataset_kw: Any,
) -> ChorusDataset:
    """Dataset ``name`` paired with dataset ``partner`` by label, or with class-name captions (``partner="text"``).

    ``dataset_kw`` (e.g. ``indices=``, ``protocol=``) go to ``name`` only; the
    partner uses the same ``split`` and its defaults.
    """
    if partner == "text" and name not in TEXT_TEMPLATES:
        raise ConfigError(f"no caption template for {name!r}; pairing 'text' supports {sorted(TEXT_TEMPLATES)}")
    first = build_dataset(name, root=root, split=split, **dataset_kw)
    if partner == "text":
        return ClassCaptions(first, TEXT_TEMPLATES[name])
    return LabelPairs(first, build_dataset(partner, root=root, split=split), seed=seed)
