"""Datasets from a user's own files: a folder (class sub-folders or a metadata table) or a CSV/JSONL manifest.

What: two registered datasets, ``folder`` and ``manifest``, that read the
layouts people already have on disk and return the same sample dicts as the
bundled datasets, so every model and command works on them unchanged.

- ``folder`` — Hugging Face's ``imagefolder`` / ``audiofolder`` conventions:
  class sub-folders (``PATH/<class>/<file>``; the label is the file's parent
  folder, written as the user wrote it), optionally under split folders
  (``PATH/train/<class>/…``, ``PATH/test/<class>/…``); or a ``metadata.csv`` /
  ``metadata.jsonl`` at the top (or in each split folder) whose ``file_name``
  column (or several ``<name>_file_name`` columns) names files relative to it,
  plus any other columns.
- ``manifest`` — one ``.csv`` or ``.jsonl`` file anywhere; file columns hold
  paths relative to the manifest's folder (or absolute).

Columns: ``columns={"image": COL, "audio": COL, "text": COL, "label": COL,
"split": COL}`` names them; unnamed roles are found by the usual names
(files: ``file_name``, ``*_file_name``, ``image``, ``audio``, ``path``; text:
``caption``, ``captions``, ``text``, ``transcription``, ``sentence``; label:
``label``; split: ``split``). A file column's modality comes from its file
suffix. Several captions per file are several rows naming the same file, or a
JSON list in one row; rows naming the same files form one *item*.

Samples: ``{"image": PIL RGB}`` and/or ``{"audio": float32 [T] mono (channels
averaged), "sample_rate": the file's rate}``, plus ``"label": int`` when the
data has classes, ``"text": str`` (``mode="pairs"``: one item per caption) or
``"captions": list[str]`` (``mode="items"``: one item per file, all its
captions — what retrieval needs), and ``"path"``. Audio keeps its own rate
here; :class:`chorus.experiment.SampleFeatures` resamples it to the model's.
``classes`` are the distinct labels, sorted; without labels ``classes`` is
empty and ``labels[i]`` is the item index (as for COCO captions).

Split: a ``split`` column (or split folders) is honoured as written; without
one, a seeded split by *item* — stratified by class when there are labels —
puts ``round(test_fraction × n)`` items of every class of two or more items
in ``"test"`` (at least one, never all), so no file is in two splits even when
it has several captions. :attr:`UserFiles.split_record` says which rule made
the split (and lists the test files) so a run can record it.

Bad rows (checked when the dataset is built, once per row): a missing or
unreadable file (the image or audio header is opened), an empty caption, a
missing label or split value, a file of the wrong kind. ``on_error="raise"``
raises :class:`~chorus.errors.DataError` naming the row (``table:line`` or the
file); ``"skip"`` leaves the row out, logs it, and keeps it in
:attr:`UserFiles.problems`, summarised by :meth:`UserFiles.problem_summary`.
A file that passes the header check but fails to decode later goes through the
usual ``on_error`` policy of :class:`~chorus.data.base.ChorusDataset`, with the
row named in the message.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import soundfile as sf
from PIL import Image

from chorus.data.base import ChorusDataset, OnError, Sample, check_choice
from chorus.data.decode import decode_audio, decode_image, read_bytes
from chorus.data.registry import DATASETS
from chorus.errors import ConfigError, DataError

logger = logging.getLogger("chorus.data")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".mp3"})
SPLIT_FOLDERS = frozenset({"train", "test", "validation", "val", "valid", "dev"})
METADATA_FILES = ("metadata.csv", "metadata.jsonl")
ROLES = ("image", "audio", "text", "label", "split")
FILE_COLUMNS = ("file_name", "image", "audio", "path")
TEXT_COLUMNS = ("caption", "captions", "text", "transcription", "sentence")
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def modality_of(path: str | os.PathLike[str]) -> str | None:
    """``"image"`` or ``"audio"`` from a file suffix; None for anything else."""
    suffix = Path(path).suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


@dataclass
class Row:
    """One table row (or one file of a class-folder layout), before bad-row checks."""

    where: str  # "captions.csv:7" or the file's path: what an error message names
    files: dict[str, Path]
    label: str | None = None  # None: the data has no labels; "": this row's label is missing
    captions: list[str] | None = None  # None: the data has no captions
    split: str | None = None  # None: no split given; "": this row's split is missing


@dataclass
class Item:
    """One unit of the split: a file (or files joined in one row) with all its captions."""

    where: str
    files: dict[str, Path]
    label: str | None
    captions: list[str]
    split: str | None


@dataclass(frozen=True)
class Problem:
    """A bad row left out under ``on_error="skip"``: where it is, what kind of problem, the detail."""

    where: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.detail}"


class BadRow(Exception):
    """Internal: a row failed a check (turned into DataError or a Problem by the policy)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


# ---------------------------------------------------------------------------- reading tables


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, Any] | None]]]:
    """(columns, [(line number, row or None if the line is malformed)]) of a CSV (header on line 1) or JSONL file."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ConfigError(f"{path}: a manifest is a .csv or .jsonl file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read manifest ({err})") from err
    rows: list[tuple[int, dict[str, Any] | None]] = []
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines(keepends=True))
        header = [c for c in (reader.fieldnames or []) if c]
        before = reader.line_num
        for row in reader:
            rows.append((before + 1, None if None in row else row))  # extra cells → malformed
            before = reader.line_num
        return header, rows
    columns: list[str] = []
    for number, content in enumerate(text.splitlines(), start=1):
        if not content.strip():
            continue
        try:
            obj = json.loads(content)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            columns += [k for k in obj if k not in columns]
        rows.append((number, obj if isinstance(obj, dict) else None))
    return columns, rows


def resolve_columns(table: Path, present: Sequence[str], columns: Mapping[str, str]) -> dict[str, Any]:
    """Map roles to column names: the explicit ``columns``, else the usual names found in ``present``.

    Returns ``{"files": [(column, modality or None = by suffix)], "text": col|None, "label": col|None,
    "split": col|None}``.
    """
    unknown = sorted(set(columns) - set(ROLES))
    if unknown:
        raise ConfigError(f"columns: unknown role(s) {unknown}; roles are {list(ROLES)}")
    missing = sorted(c for c in columns.values() if c not in present)
    if missing:
        raise ConfigError(f"{table}: no column(s) {missing} (columns: {list(present)})")
    files: list[tuple[str, str | None]] = [(columns[m], m) for m in ("image", "audio") if m in columns]
    if not files:
        files = [(c, None) for c in present if c in FILE_COLUMNS or c.endswith("_file_name")]
    if not files:
        raise ConfigError(
            f"{table}: no file column among {list(present)}; name one "
            f"(config: data.columns: {{image: COLUMN}}; command line: --columns image=COLUMN)"
        )
    taken = {c for c, _ in files}
    text = columns.get("text") or next((c for c in TEXT_COLUMNS if c in present and c not in taken), None)
    label = columns.get("label") or ("label" if "label" in present else None)
    split = columns.get("split") or ("split" if "split" in present else None)
    return {"files": files, "text": text, "label": label, "split": split}


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def table_rows(table: Path, base: Path, columns: Mapping[str, str], split: str | None = None) -> list[Row | Problem]:
    """Rows of a manifest/metadata table; file paths are relative to ``base``. Unparseable lines come back as Problems."""
    present, raw = read_table(table)
    roles = resolve_columns(table, present, columns)
    out: list[Row | Problem] = []
    for line, row in raw:
        where = f"{table}:{line}"
        if row is None:
            out.append(Problem(where, "malformed row", "not a JSON object / more cells than the header"))
            continue
        files: dict[str, Path] = {}
        for column, modality in roles["files"]:
            name = _cell(row.get(column))
            files[modality or modality_of(name) or f"?{column}"] = base / name if name else Path()
        captions = row.get(roles["text"]) if roles["text"] else None
        texts = (
            [_cell(c) for c in captions]
            if isinstance(captions, list)
            else []
            if captions is None
            else [_cell(captions)]
        )
        out.append(
            Row(
                where,
                files,
                label=_cell(row.get(roles["label"])) if roles["label"] else None,
                captions=texts if roles["text"] else None,
                split=_cell(row.get(roles["split"])) if roles["split"] else split,
            )
        )
    return out


def _metadata(folder: Path) -> Path | None:
    found = [folder / n for n in METADATA_FILES if (folder / n).is_file()]
    if len(found) > 1:
        raise ConfigError(f"{folder}: both metadata.csv and metadata.jsonl; keep one")
    return found[0] if found else None


def _visible(path: Path, top: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(top).parts)


def folder_rows(
    folder: Path, columns: Mapping[str, str], split: str | None = None
) -> tuple[list[Row | Problem], list[Path]]:
    """Rows of one folder level (metadata table, or class sub-folders) and the files ignored (not image/audio)."""
    table = _metadata(folder)
    if table is not None:
        return table_rows(table, folder, columns, split), []
    if columns:
        raise ConfigError(f"{folder}: columns only apply to a metadata.csv/metadata.jsonl table, and there is none")
    media: list[tuple[str, Path]] = []
    ignored: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and _visible(p, folder)):
        modality = modality_of(path)
        if modality is None:
            ignored.append(path)
        else:
            media.append((modality, path))
    labelled = any(path.parent != folder for _, path in media)  # no class folder at all: an unlabelled collection
    rows: list[Row | Problem] = [
        Row(
            str(path),
            {modality: path},
            label=(path.parent.name if path.parent != folder else "") if labelled else None,
            split=split,
        )
        for modality, path in media
    ]
    return rows, ignored


def scan(path: Path, columns: Mapping[str, str], kind: str) -> tuple[list[Row | Problem], list[Path], str]:
    """All rows of a ``folder`` or ``manifest`` dataset, the ignored files, and the split source."""
    if kind == "manifest":
        if not path.is_file():
            raise DataError(f"manifest {path} does not exist (a .csv or .jsonl file)")
        return table_rows(path, path.parent, columns), [], "column"
    if not path.is_dir():
        raise DataError(f"folder {path} does not exist")
    if _metadata(path) is not None:
        rows, ignored = folder_rows(path, columns)
        return rows, ignored, "column"
    tops = [d for d in sorted(path.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if tops and all(d.name.lower() in SPLIT_FOLDERS for d in tops):
        rows, ignored = [], []
        for d in tops:
            more, skipped = folder_rows(d, columns, split=d.name)
            rows += more
            ignored += skipped
        return rows, ignored, "folders"
    rows, ignored = folder_rows(path, columns)
    return rows, ignored, "column"


# ---------------------------------------------------------------------------- checks


def _probe(modality: str, path: Path) -> dict[str, Any]:
    """Open a file's header: image size and mode, or audio rate/channels/frames (raises BadRow)."""
    try:
        if modality == "image":
            with Image.open(path) as img:
                return {"width": img.width, "height": img.height, "mode": img.mode}
        info = sf.info(str(path))
        if info.frames <= 0:
            raise BadRow("unreadable audio", f"{path}: no samples")
        return {"sample_rate": int(info.samplerate), "channels": int(info.channels), "frames": int(info.frames)}
    except BadRow:
        raise
    except Exception as err:  # Pillow and libsndfile raise many types on garbage
        raise BadRow(f"unreadable {modality}", f"{path}: {type(err).__name__}: {err}") from err


def check_row(row: Row) -> None:
    """Raise BadRow for the first problem of a row (file missing or of an unknown kind, empty caption/label/split)."""
    for modality, path in row.files.items():
        if path == Path():
            raise BadRow("missing file", "the file cell is empty")
        if modality.startswith("?"):
            raise BadRow("not an image or audio file", f"{path} (column {modality[1:]!r})")
        if not path.is_file():
            raise BadRow("missing file", f"{path} does not exist")
        if modality_of(path) not in (None, modality):
            raise BadRow(f"not an {modality} file", str(path))
    if row.label == "":
        raise BadRow("label missing", "no label (empty label cell, or the file is not inside a class folder)")
    if row.captions is not None and (not row.captions or any(c == "" for c in row.captions)):
        raise BadRow("empty caption", f"for {', '.join(str(p) for p in row.files.values())}")
    if row.split == "":
        raise BadRow("split missing", "empty split cell")


def seeded_split(items: Sequence[Item], labels: Sequence[int] | None, test_fraction: float, seed: int) -> list[str]:
    """ "train"/"test" per item: per class (or over all items without labels) a seeded permutation, the first
    ``round(test_fraction × n)`` items — at least one, never all — go to test; a class of one item stays in train."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(labels[i] if labels is not None else 0, []).append(i)
    rng = np.random.default_rng(seed)
    out = ["train"] * len(items)
    for key in sorted(groups):
        members = groups[key]
        if len(members) < 2:
            continue
        k = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        for j in rng.permutation(len(members))[:k]:
            out[members[j]] = "test"
    return out


# ---------------------------------------------------------------------------- the dataset


class UserFiles(ChorusDataset):
    """A ``folder`` or ``manifest`` dataset; see the module docstring for layouts, samples, split and bad rows."""

    name = "folder"

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        columns: Mapping[str, str] | None = None,
        mode: str | None = None,
        test_fraction: float = TEST_FRACTION,
        seed: int = SPLIT_SEED,
        indices: Sequence[int] | None = None,
    ) -> None:
        """``root`` is accepted for the registry's common signature and unused: ``path`` locates the files
        (relative to the current directory). ``mode``: ``"pairs"`` or ``"items"`` (default: pairs for the
        train split, items otherwise; only matters when there are captions)."""
        if path is None or str(path) == "":
            raise ConfigError(f"dataset {self.name!r} needs a path (data.path, or --dataset {self.name}:PATH)")
        check_choice("on_error", on_error, ("raise", "skip"))
        self.path = Path(path).expanduser().resolve()
        self.spec = f"{self.name}:{self.path}"
        self.on_error = on_error
        self.problems: list[Problem] = []
        rows, self.ignored, split_source = scan(self.path, dict(columns or {}), self.name)
        self.probes: dict[Path, dict[str, Any]] = {}
        items = self._items(rows)
        if self.ignored:
            logger.info(
                "%s: ignored %d file(s) that are neither image nor audio, e.g. %s",
                self.spec,
                len(self.ignored),
                self.ignored[0],
            )
        if self.problems:
            logger.warning("%s", self.problem_summary())
        if not items:
            raise DataError(f"{self.spec}: no usable items" + (f" ({self.problem_summary()})" if self.problems else ""))
        self.modalities = tuple(sorted(items[0].files)) + (("text",) if items[0].captions else ())  # type: ignore[misc]
        self.all_items = items
        classes = sorted({it.label for it in items if it.label is not None})
        index = {c: i for i, c in enumerate(classes)}
        class_of = [index[cast(str, it.label)] for it in items] if classes else None  # all labelled, or none
        if items[0].split is not None:
            splits = [it.split or "" for it in items]
            self.split_record: dict[str, Any] = {"source": split_source}
        else:
            splits = seeded_split(items, class_of, test_fraction, seed)
            self.split_record = {
                "source": "seeded",
                "seed": seed,
                "test_fraction": test_fraction,
                "stratified": class_of is not None,
                "test": [self._key(it) for it, s in zip(items, splits) if s == "test"],
            }
        self.split_record["counts"] = dict(sorted(Counter(splits).items(), key=lambda kv: (kv[0] != "train", kv[0])))
        if split != "all" and split not in self.split_record["counts"]:
            raise ConfigError(
                f"{self.spec}: split {split!r} not found; splits: {sorted(self.split_record['counts']) + ['all']}"
            )
        keep = [i for i, s in enumerate(splits) if split in ("all", s)]
        self.items = [items[i] for i in keep]
        self.mode = mode or ("pairs" if split == "train" else "items")
        check_choice(f"{self.name} mode", self.mode, ("pairs", "items"))
        has_text = "text" in self.modalities
        records: list[tuple[int, str | None]]
        if has_text and self.mode == "pairs":
            records = [(n, c) for n, it in enumerate(self.items) for c in it.captions]
        else:
            records = [(n, None) for n in range(len(self.items))]
        labels = [index[cast(str, self.items[n].label)] if classes else n for n, _ in records]
        super().__init__(records, labels, classes, transform, on_error, indices)

    def _key(self, item: Item) -> str:
        """A file's name relative to the dataset (what the split record lists)."""
        path = next(iter(item.files.values()))
        base = self.path if self.path.is_dir() else self.path.parent
        return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)

    def _bad(self, where: str, err: BadRow) -> None:
        problem = Problem(where, err.kind, err.detail)
        if self.on_error == "raise":
            raise DataError(f"{problem} (on_error=skip leaves such rows out)")
        self.problems.append(problem)

    def _items(self, rows: Sequence[Row | Problem]) -> list[Item]:
        """Check rows, group them by their files, probe each file once."""
        by_files: dict[tuple[tuple[str, str], ...], Item] = {}
        for row in rows:
            if isinstance(row, Problem):
                self._bad(row.where, BadRow(row.kind, row.detail))
                continue
            try:
                check_row(row)
                key = tuple(sorted((m, str(p)) for m, p in row.files.items()))
                item = by_files.get(key)
                if item is not None:
                    if item.label != row.label or item.split != row.split:
                        raise BadRow(
                            "conflicting rows",
                            f"{item.where} gives the same file label {item.label!r} "
                            f"split {item.split!r}; this row {row.label!r} / {row.split!r}",
                        )
                    item.captions += row.captions or []
                    continue
                for modality, path in row.files.items():
                    if path not in self.probes:
                        self.probes[path] = _probe(modality, path)
            except BadRow as err:
                self._bad(row.where, err)
                continue
            by_files[key] = Item(row.where, dict(row.files), row.label, list(row.captions or []), row.split)
        items = list(by_files.values())
        shapes = Counter(
            (tuple(sorted(it.files)), bool(it.captions), it.label is not None, it.split is not None) for it in items
        )
        if len(shapes) > 1:
            raise DataError(
                f"{self.path}: rows differ in what they hold (modalities, captions, label, split): "
                f"{sorted(shapes)}; every row needs the same columns filled"
            )
        return items

    def captions(self) -> list[str]:
        """Every caption of this split (e.g. to train a tokenizer on); empty without a text column."""
        return [c for it in self.items for c in it.captions]

    def problem_summary(self) -> str:
        """``"skipped 3 bad row(s): 2 missing file, 1 empty caption; first: …"`` (empty string when none)."""
        if not self.problems:
            return ""
        kinds = Counter(p.kind for p in self.problems)
        return (
            f"{self.spec}: skipped {len(self.problems)} bad row(s): "
            + ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            + f"; first: {self.problems[0]}"
        )

    def load(self, index: int) -> Sample:
        n, caption = self.records[index]
        item = self.items[n]
        sample: Sample = {}
        try:
            for modality, path in item.files.items():
                if modality == "image":
                    sample["image"] = decode_image(read_bytes(path), str(path), mode="RGB")
                else:
                    sample["audio"], sample["sample_rate"] = decode_audio(read_bytes(path), str(path))
        except DataError as err:
            raise DataError(str(err) if str(err).startswith(item.where) else f"{item.where}: {err}") from err
        if self.classes:
            sample["label"] = self.labels[index]
        if caption is not None:
            sample["text"] = caption
        elif item.captions:
            sample["captions"] = list(item.captions)
        sample["path"] = str(next(iter(item.files.values())))
        return sample

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {"items": float(len(self.items))}
        probes = [self.probes[p] for it in self.items for p in it.files.values()]
        images = [p for p in probes if "width" in p]
        audio = [p for p in probes if "frames" in p]
        if images:
            for key in ("width", "height"):
                values = [p[key] for p in images]
                out |= {
                    f"{key}_min": float(min(values)),
                    f"{key}_mean": float(np.mean(values)),
                    f"{key}_max": float(max(values)),
                }
        if audio:
            seconds = [p["frames"] / p["sample_rate"] for p in audio]
            rates = [p["sample_rate"] for p in audio]
            out |= {
                "duration_s_min": min(seconds),
                "duration_s_mean": float(np.mean(seconds)),
                "duration_s_max": max(seconds),
                "sample_rate_min": float(min(rates)),
                "sample_rate_max": float(max(rates)),
                "channels_max": float(max(p["channels"] for p in audio)),
            }
        if "text" in self.modalities:
            counts = [len(it.captions) for it in self.items]
            out |= {
                "captions_per_item_min": float(min(counts)),
                "captions_per_item_mean": float(np.mean(counts)),
                "captions_per_item_max": float(max(counts)),
            }
        return out

    def describe(self) -> dict[str, Any]:
        """What ``chorus data info`` adds for a user's files: class counts, formats, split rule, problems."""
        probes = [self.probes[p] for it in self.all_items for p in it.files.values()]
        return {
            "path": str(self.path),
            "layout": self.name,
            "image_modes": sorted({p["mode"] for p in probes if "mode" in p}),
            "sample_rates": sorted({p["sample_rate"] for p in probes if "sample_rate" in p}),
            "channels": sorted({p["channels"] for p in probes if "channels" in p}),
            "split_rule": {k: v for k, v in self.split_record.items() if k != "test"},
            "ignored_files": [str(p) for p in self.ignored],
            "problems": [{"where": p.where, "kind": p.kind, "detail": p.detail} for p in self.problems],
        }


@DATASETS.register("folder")
class FolderDataset(UserFiles):
    """A folder of files: class sub-folders (optionally under split folders) or a metadata.csv/.jsonl table."""

    name = "folder"


@DATASETS.register("manifest")
class ManifestDataset(UserFiles):
    """A CSV or JSONL manifest; file paths are relative to the manifest's folder."""

    name = "manifest"
