"""Caltech-101 (30 images per class, 96×96 RGB) for zero-shot and linear-probe classification.

Layout under the data root (what :func:`download_caltech101` produces)::

    caltech101/metadata.csv   path,label,class_folder,class_name,original_path,orig_width,orig_height
    caltech101/classes.txt    label<TAB>class_folder<TAB>class_name   (101 lines)
    caltech101/images/<class_folder>/image_XXXX.jpg

``label`` indexes the class folders in case-sensitive sorted order;
``classes`` are the readable names (``"car side"``, ``"faces easy"``), which
also appear as each sample's ``"text"`` for prompts like "a photo of a {}".
There is no official split: ``split="all"`` (default) gives all 3,030 items;
``"train"``/``"test"`` are a label-stratified 20/10 images-per-class split
with the fixed seed :data:`SPLIT_SEED` (2,020 / 1,010), for linear probes;
``indices=`` selects any subset of the chosen split.

Source: L. Fei-Fei, R. Fergus, P. Perona, *Learning generative visual models
from few training examples*, CVPR-W 2004; CaltechDATA record mzrjq-6wc02 (CC BY 4.0).
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from chorus.data.base import ChorusDataset, OnError, Sample, read_csv, require_file, split_indices
from chorus.data.decode import decode_image, read_bytes
from chorus.data.fetch import extract, fetch, publish_dir
from chorus.data.root import data_root
from chorus.errors import DataError

FOLDER = "caltech101"
URL = "https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1"
MD5 = "3138e1922a9193bfa496528edbbc45d0"
PER_CLASS = 30
SIZE = 96
SPLIT_SEED = 0
TEST_FRACTION = 1 / 3


class Caltech101(ChorusDataset):
    """Yields ``{"image": PIL RGB, "label": int, "text": class name, "path": str}``."""

    name = "caltech101"
    modalities = ("image", "text")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "all",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        indices: Sequence[int] | None = None,
    ) -> None:
        self.root = data_root(root)
        self.folder = self.root / FOLDER
        classes_file = require_file(self.folder / "classes.txt", self.name, self.root)
        classes = []
        for n, line in enumerate(classes_file.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if len(parts) != 3 or parts[0] != str(n):
                raise DataError(f"{classes_file}: line {n + 1} is not '{n}<TAB>folder<TAB>name': {line!r}")
            classes.append(parts[2])
        rows = read_csv(
            require_file(self.folder / "metadata.csv", self.name, self.root), ("path", "label", "class_name")
        )
        labels = [int(r["label"]) for r in rows]
        if labels and not 0 <= min(labels) <= max(labels) < len(classes):
            raise DataError(f"{self.folder / 'metadata.csv'}: labels outside 0..{len(classes) - 1}")
        keep = split_indices(labels, split, TEST_FRACTION, SPLIT_SEED)
        super().__init__([rows[i] for i in keep], [labels[i] for i in keep], classes, transform, on_error, indices)

    def load(self, index: int) -> Sample:
        row = self.records[index]
        path = self.folder / row["path"]
        image = decode_image(read_bytes(path), str(path), mode="RGB")
        return {
            "image": image,
            "label": self.labels[index],
            "text": self.classes[self.labels[index]],
            "path": str(path),
        }

    def stats(self) -> dict[str, float]:
        return {"height": float(SIZE), "width": float(SIZE)}


def class_name(folder: str) -> str:
    """``car_side`` → ``car side``; ``Faces_easy`` → ``faces easy``."""
    return folder.lower().replace("_", " ")


def prepare_caltech101(categories: Path, out: Path, per_class: int = PER_CLASS, size: int = SIZE) -> Path:
    """Build the 96-px layout from an extracted ``101_ObjectCategories`` folder.

    Keeps the first ``per_class`` images (file-name order) of each class except
    ``BACKGROUND_Google``; converts to RGB, resizes the shorter side to
    ``size`` (bicubic), centre-crops, saves JPEG quality 90.
    """
    folders = sorted(p.name for p in categories.iterdir() if p.is_dir() and p.name != "BACKGROUND_Google")
    if not folders:
        raise DataError(f"{categories}: no class folders")
    rows, lines = [], []
    for label, folder in enumerate(folders):
        files = sorted((categories / folder).glob("*.jpg"))[:per_class]
        (out / "images" / folder).mkdir(parents=True, exist_ok=True)
        for src in files:
            img = decode_image(read_bytes(src), str(src), mode="RGB")
            w, h = img.size
            scale = size / min(w, h)
            nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BICUBIC)
            left, top = (nw - size) // 2, (nh - size) // 2
            rel = f"images/{folder}/{src.name}"
            img.crop((left, top, left + size, top + size)).save(out / rel, "JPEG", quality=90)
            rows.append([rel, label, folder, class_name(folder), f"101_ObjectCategories/{folder}/{src.name}", w, h])
        lines.append(f"{label}\t{folder}\t{class_name(folder)}\n")
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label", "class_folder", "class_name", "original_path", "orig_width", "orig_height"])
        writer.writerows(rows)
    (out / "classes.txt").write_text("".join(lines), encoding="utf-8")
    return out


def download_caltech101(root: str | os.PathLike[str] | None = None, url: str = URL, md5: str | None = MD5) -> Path:
    """Download Caltech-101 from CaltechDATA (md5-checked) and build ``<root>/caltech101``."""
    root = data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = fetch(url, root / "_downloads" / "caltech-101.zip", md5=md5)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        outer = extract(archive, Path(tmp) / "outer")
        inner = sorted(outer.rglob("101_ObjectCategories.tar.gz"))
        if not inner:
            raise DataError(f"{archive}: no 101_ObjectCategories.tar.gz inside")
        cats = sorted(extract(inner[0], Path(tmp) / "inner").rglob("101_ObjectCategories"))
        if not cats:
            raise DataError(f"{inner[0]}: no 101_ObjectCategories folder inside")
        staging = prepare_caltech101(cats[0], Path(tmp) / "out")
        return publish_dir(staging, root / FOLDER)
