"""Dataset names → classes and downloaders, plus ``dataset_info`` for ``chorus data info NAME``.

Configs and the CLI refer to datasets by name; this module is the one place
that maps names to loaders (``DATASETS``) and to their download functions
(``DOWNLOADS``), so ``build_dataset`` and ``download`` give the same error
listing valid names for a typo.

A user's own files are named by a *dataset spec*: ``folder:PATH`` or
``manifest:PATH`` (see :mod:`chorus.data.userdata`), or just ``PATH`` — a
directory is a ``folder``, a ``.csv``/``.jsonl`` file a ``manifest``.
:func:`parse_spec` is the one parser, so every command that takes a dataset
name (``data info``, ``zeroshot``, ``retrieve``, ``index build``, ``data pack``)
takes a path the same way.
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

for _name, _cls in (
    ("fsdd", FSDD),
    ("mnist", MNIST),
    ("caltech101", Caltech101),
    ("coco_captions", COCOCaptions),
    ("digits", Digits),
):
    DATASETS.register(_name)(_cls)
for _name, _fn in (
    ("fsdd", download_fsdd),
    ("mnist", download_mnist),
    ("caltech101", download_caltech101),
    ("coco_captions", download_coco_captions),
):
    DOWNLOADS.register(_name)(_fn)


USER_DATASETS = ("folder", "manifest")
MANIFEST_SUFFIXES = (".csv", ".jsonl")


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"fsdd"`` → ("fsdd", {}); ``"folder:PATH"``, ``"manifest:PATH"`` or an existing ``PATH`` → (kind, {"path": …})."""
    if spec in DATASETS:
        return spec, {}
    kind, sep, rest = spec.partition(":")
    if sep and kind in USER_DATASETS:
        return kind, {"path": rest}
    path = Path(spec).expanduser()
    if path.is_dir():
        return "folder", {"path": spec}
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return "manifest", {"path": spec}
    if os.sep in spec or path.suffix:
        raise ConfigError(f"dataset {spec!r}: no such folder or .csv/.jsonl manifest")
    try:
        DATASETS.get(spec)
    except ConfigError as err:  # an unknown name: list the valid ones, and say a path would do
        raise ConfigError(f"{err}; or a folder / .csv / .jsonl path (no such path: {spec!r})") from None
    return spec, {}


def canonical_spec(spec: str) -> str:
    """One spelling per dataset: a registered name, or ``kind:/absolute/path``."""
    name, kw = parse_spec(spec)
    return f"{name}:{Path(kw['path']).expanduser().resolve()}" if "path" in kw else name


def build_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
    transform: Callable[[Sample], Sample] | None = None,
    on_error: OnError = "raise",
    **kw: Any,
) -> ChorusDataset:
    """Build a registered dataset, or a user's folder/manifest from a spec (see :func:`parse_spec`);
    extra keywords go to its class (e.g. ``protocol=``, ``mode=``, ``columns=``)."""
    name, implied = parse_spec(name)
    return DATASETS.build(name, root=root, split=split, transform=transform, on_error=on_error, **(implied | kw))


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
    """Counts per split, classes, modalities, metadata stats and the first sample's fields (cheap).

    A user's folder/manifest is read with ``on_error="skip"`` (unless ``on_error`` is given), so the record
    lists its bad rows instead of stopping at the first; it also carries the class counts, formats and split rule.
    """
    kind, _ = parse_spec(name)
    user = kind in USER_DATASETS
    if user:
        kw.setdefault("on_error", "skip")
    full: Any = build_dataset(name, root=root, split="all", **kw)  # a user's files add split_record, describe()
    if user:
        counts = dict(full.split_record["counts"]) | {"all": len(full.all_items)}
    else:
        counts = {}
        for split in ("train", "test", "all"):
            try:
                counts[split] = len(build_dataset(name, root=root, split=split, **kw))
            except ConfigError:
                continue
    per_class = [full.labels.count(i) for i in range(len(full.classes))]
    by_size = sorted(range(len(per_class)), key=lambda i: -per_class[i])  # stable: ties keep class order
    first = next((s for s in (full[i] for i in range(min(len(full), 10))) if s is not None), None)
    return {
        "name": canonical_spec(name) if user else name,
        "modalities": list(full.modalities),
        "splits": counts,
        "num_classes": len(full.classes),
        "classes": full.classes,
        "items_per_class": {"min": min(per_class), "max": max(per_class)} if per_class else None,
        "class_counts": {full.classes[i]: per_class[i] for i in by_size},
        "stats": full.stats(),
        "sample": _describe(first) if first is not None else None,
    } | (full.describe() if user else {})


def _range(stats: dict[str, float], key: str, fmt: str = "{:g}") -> str:
    low, high = stats[f"{key}_min"], stats[f"{key}_max"]
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


def format_info(info: dict[str, Any], top: int = 10) -> str:
    """A short human summary of a :func:`dataset_info` record (what ``chorus data info`` prints)."""
    stats = info.get("stats") or {}
    lines = [info["name"], f"  modalities   {', '.join(info['modalities'])}"]
    splits = {k: v for k, v in info["splits"].items() if k != "all"}
    items = f"  items        {info['splits'].get('all', sum(splits.values()))}"
    if splits:
        items += " (" + ", ".join(f"{k} {v}" for k, v in splits.items()) + ")"
    rule = info.get("split_rule")
    if rule:
        items += (
            "; seeded split by item, seed {seed}, test fraction {test_fraction:g}".format(**rule)
            if rule["source"] == "seeded"
            else f"; split from the {rule['source']}"
        )
    lines.append(items)
    counts = info["class_counts"]
    if counts:
        shown = [f"{c} ({n})" for c, n in list(counts.items())[:top]]
        more = f", … {len(counts) - top} more" if len(counts) > top else ""
        lines.append(f"  classes      {len(counts)}: {', '.join(shown)}{more}")
    else:
        lines.append("  classes      none")
    if "captions_per_item_min" in stats:
        lines.append(
            f"  captions     {_range(stats, 'captions_per_item')} per item (mean {stats['captions_per_item_mean']:.1f})"
        )
    if "width_min" in stats:
        modes = f"; modes {', '.join(info['image_modes'])}" if info.get("image_modes") else ""
        lines.append(f"  images       width {_range(stats, 'width')} px, height {_range(stats, 'height')} px{modes}")
    elif "width" in stats:
        lines.append(f"  images       {stats['width']:g}×{stats['height']:g} px")
    if "duration_s_min" in stats:
        audio = f"  audio        {_range(stats, 'duration_s', '{:.2f}')} s (mean {stats['duration_s_mean']:.2f} s)"
        if info.get("sample_rates"):
            audio += (
                f"; {', '.join(map(str, info['sample_rates']))} Hz; channels {', '.join(map(str, info['channels']))}"
            )
        lines.append(audio)
    if info.get("ignored_files"):
        lines.append(
            f"  ignored      {len(info['ignored_files'])} file(s) neither image nor audio, "
            f"e.g. {info['ignored_files'][0]}"
        )
    problems = info.get("problems")
    if problems is not None:
        if not problems:
            lines.append("  problems     none found")
        else:
            kinds: dict[str, int] = {}
            for p in problems:
                kinds[p["kind"]] = kinds.get(p["kind"], 0) + 1
            lines.append(
                f"  problems     {len(problems)} bad row(s) left out: "
                + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
            )
            lines += [f"    {p['where']}: {p['kind']}: {p['detail']}" for p in problems[:top]]
            if len(problems) > top:
                lines.append(f"    … {len(problems) - top} more (--json lists them all)")
    return "\n".join(lines)
