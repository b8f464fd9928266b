"""Dataset names → classes and downloaders, plus ``dataset_info`` for ``chorus data info NAME``.

Configs and the CLI refer to datasets by name; this module is the one place
that maps names to loaders (``DATASETS``) and to their download functions
(``DOWNLOADS``), so ``build_dataset`` and ``download`` give the same error
listing valid names for a typo.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image
from torch import Tensor

from chorus.data.base import ChorusDataset, OnError, Sample
from chorus.data.caltech101 import Caltech101, download_caltech101
from chorus.data.coco_captions import COCOCaptions, download_coco_captions
from chorus.data.digits import Digits
from chorus.data.fsdd import FSDD, download_fsdd
from chorus.data.mnist import MNIST, download_mnist
from chorus.data.root import data_root
from chorus.errors import ConfigError
from chorus.registry import Registry

DATASETS: Registry[ChorusDataset] = Registry("dataset")
DOWNLOADS: Registry[Path] = Registry("dataset download")

for _name, _cls in (("fsdd", FSDD), ("mnist", MNIST), ("caltech101", Caltech101), ("coco_captions", COCOCaptions), ("digits", Digits)):
    DATASETS.register(_name)(_cls)
for _name, _fn in (("fsdd", download_fsdd), ("mnist", download_mnist), ("caltech101", download_caltech101), ("coco_captions", download_coco_captions)):
    DOWNLOADS.register(_name)(_fn)


def build_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    transform: Callable[[Sample], Sample] | None = None,
    on_error: OnError = "raise",
    **kw: Any,
) -> ChorusDataset:
    """Build a registered dataset; extra keywords go to its class (e.g. ``protocol=``, ``mode=``)."""
    return DATASETS.build(name, root=root, split=split, transform=transform, on_error=on_error, **kw)


def download(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Download and prepare dataset ``name`` under the data root (``digits`` needs nothing)."""
    DATASETS.get(name)  # a typo raises ConfigError listing the valid names
    if name not in DOWNLOADS:  # embedded datasets (digits) have nothing to fetch
        return data_root(root)
    return DOWNLOADS.build(name, root=root)


def _describe(sample: Sample) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if isinstance(value, Image.Image):
            out[key] = {"size": list(value.size), "mode": value.mode}
        elif isinstance(value, Tensor):
            out[key] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        elif isinstance(value, list):
            out[key] = {"length": len(value)}
        else:
            out[key] = type(value).__name__
    return out


def dataset_info(name: str, root: str | os.PathLike[str] | None = None, **kw: Any) -> dict[str, Any]:
    """Counts per split, classes, modalities, metadata stats and the first sample's fields (cheap)."""
    full = build_dataset(name, root=root, split="all", **kw)
    counts = {}
    for split in ("train", "test", "all"):
        try:
            counts[split] = len(build_dataset(name, root=root, split=split, **kw))
        except ConfigError:
            continue
    per_class = [full.labels.count(i) for i in range(len(full.classes))]
    return {
        "name": name,
        "modalities": list(full.modalities),
        "splits": counts,
        "num_classes": len(full.classes),
        "classes": full.classes,
        "items_per_class": {"min": min(per_class), "max": max(per_class)} if per_class else None,
        "stats": full.stats(),
        "sample": _describe(full[0]) if len(full) else None,
    }
