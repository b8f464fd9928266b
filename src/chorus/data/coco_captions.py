"""COCO Captions mini: 239 COCO 2017 photos × 5 human-written captions, for image–text work.

Layout under the data root (what :func:`download_coco_captions` produces)::

    coco_captions_mini/captions.csv   path,image_id,caption_id,caption     (5 rows per image)
    coco_captions_mini/images.csv     path,image_id,coco_split,width,height,license_id,license_name,
                                      license_url,commercial_ok,derivatives_ok,flickr_url,coco_url
    coco_captions_mini/images/<coco_split>_<12-digit id>.jpg               (unmodified originals)
    coco_captions_mini/captions_val2017.json                               (official, text-only extra)

Modes: ``"pairs"`` — one item per image–caption pair (1,195), for contrastive
training; ``"images"`` — one item per image with its 5 captions, for retrieval
evaluation (Recall@K needs all ground-truth captions of an image together).
The split is by *image*: a seeded permutation (:data:`SPLIT_SEED`) of the sorted
image ids puts 50 images in ``"test"`` and 189 in ``"train"``, so captions of
one image never straddle splits; ``"all"`` gives every image.

COCO has no classes: ``classes`` is empty and ``labels[i]`` is the index (into
``image_ids``) of item i's image, so a sampler can avoid putting two captions
of the same photo in one contrastive batch. An empty caption is a DataError
under ``on_error="raise"``. Source: X. Chen et al., *Microsoft COCO Captions*,
2015 (captions CC BY 4.0; per-image Flickr licenses in images.csv).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from chorus.data.base import ChorusDataset, OnError, Sample, check_choice, read_csv, require_file
from chorus.data.coco_manifest import IMAGES
from chorus.data.decode import decode_image, read_bytes
from chorus.data.fetch import fetch, publish_dir
from chorus.data.root import data_root
from chorus.errors import DataError

FOLDER = "coco_captions_mini"
ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
ANNOTATIONS_MD5 = "f4bbac642086de4f52a3fdda2de5fa2c"
IMAGES_URL = "http://images.cocodataset.org/"
SPLIT_SEED = 0
TEST_IMAGES = 50
# COCO license id → (commercial use allowed, modified redistribution allowed)
LICENSE_RIGHTS = {1: (0, 1), 2: (0, 1), 3: (0, 0), 4: (1, 1), 5: (1, 1), 6: (1, 0), 7: (1, 1), 8: (1, 1)}


class COCOCaptions(ChorusDataset):
    """``mode="pairs"``: ``{"image", "text", "image_id", "path"}``; ``mode="images"``: ``{"image", "captions", "image_id", "path"}``."""

    name = "coco_captions"
    modalities = ("image", "text")

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        transform: Callable[[Sample], Sample] | None = None,
        on_error: OnError = "raise",
        mode: str = "pairs",
        indices: Sequence[int] | None = None,
    ) -> None:
        check_choice("coco_captions split", split, ("train", "test", "all"))
        check_choice("coco_captions mode", mode, ("pairs", "images"))
        self.root = data_root(root)
        self.folder = self.root / FOLDER
        rows = read_csv(
            require_file(self.folder / "captions.csv", self.name, self.root),
            ("path", "image_id", "caption_id", "caption"),
        )
        by_image: dict[int, list[dict[str, str]]] = {}
        for row in rows:
            by_image.setdefault(int(row["image_id"]), []).append(row)
        image_ids = sorted(by_image)
        order = np.random.default_rng(SPLIT_SEED).permutation(len(image_ids))
        test = set(order[: min(TEST_IMAGES, len(image_ids) // 2)].tolist())
        if split != "all":
            image_ids = [iid for n, iid in enumerate(sorted(by_image)) if (n in test) == (split == "test")]
        self.image_ids = image_ids
        self.mode = mode
        records: list[tuple[int, dict[str, str] | list[dict[str, str]]]]
        if mode == "pairs":
            records = [(n, row) for n, iid in enumerate(image_ids) for row in by_image[iid]]
            labels = [n for n, _ in records]
        else:
            records = [(n, by_image[iid]) for n, iid in enumerate(image_ids)]
            labels = list(range(len(image_ids)))
        super().__init__(records, labels, [], transform, on_error, indices)

    def _image(self, row: dict[str, str]) -> tuple[Image.Image, str]:
        path = self.folder / row["path"]
        return decode_image(read_bytes(path), str(path), mode="RGB"), str(path)

    def _caption(self, row: dict[str, str]) -> str:
        text = row["caption"].strip()
        if not text:
            raise DataError(
                f"{self.folder / 'captions.csv'}: empty caption (caption_id {row['caption_id']}) for {row['path']}"
            )
        return text

    def load(self, index: int) -> Sample:
        n, payload = self.records[index]
        if self.mode == "pairs":
            image, path = self._image(payload)
            return {"image": image, "text": self._caption(payload), "image_id": self.image_ids[n], "path": path}
        captions = [self._caption(row) for row in payload]
        image, path = self._image(payload[0])
        return {"image": image, "captions": captions, "image_id": self.image_ids[n], "path": path}

    def stats(self) -> dict[str, float]:
        rows = (
            read_csv(self.folder / "images.csv", ("image_id", "width", "height"))
            if (self.folder / "images.csv").is_file()
            else []
        )
        keep = set(self.image_ids)
        sizes = [(int(r["width"]), int(r["height"])) for r in rows if int(r["image_id"]) in keep]
        out: dict[str, float] = {"images": float(len(self.image_ids))}
        if sizes:
            out.update(
                width_mean=float(np.mean([w for w, _ in sizes])), height_mean=float(np.mean([h for _, h in sizes]))
            )
        return out


def prepare_coco_captions(
    annotations: Path,
    out: Path,
    images: Sequence[tuple[int, str, str]] = IMAGES,
    images_url: str = IMAGES_URL,
) -> Path:
    """Write the mini layout from the official annotations zip, fetching each listed image (sha256-checked)."""
    try:
        with zipfile.ZipFile(annotations) as zf:
            coco = {
                split: json.loads(zf.read(f"annotations/captions_{split}.json")) for split in ("val2017", "train2017")
            }
            val_json = zf.read("annotations/captions_val2017.json")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as err:
        raise DataError(f"{annotations}: not the COCO 2017 annotations zip ({err})") from err
    (out / "images").mkdir(parents=True, exist_ok=True)
    metas = {split: {im["id"]: im for im in c["images"]} for split, c in coco.items()}
    licenses = {split: {lic["id"]: lic for lic in c["licenses"]} for split, c in coco.items()}
    wanted = {image_id for image_id, _, _ in images}
    anns_of: dict[int, list[dict]] = {}
    for c in coco.values():
        for ann in c["annotations"]:
            if ann["image_id"] in wanted:
                anns_of.setdefault(ann["image_id"], []).append(ann)
    image_rows, caption_rows = [], []
    for image_id, split, sha256 in images:
        meta = metas[split].get(image_id)
        if meta is None:
            raise DataError(f"{annotations}: image {image_id} not in captions_{split}.json")
        rel = f"images/{split}_{image_id:012d}.jpg"
        fetch(f"{images_url}{split}/{image_id:012d}.jpg", out / rel, sha256=sha256, progress=False)
        lic = licenses[split][meta["license"]]
        commercial, derivatives = LICENSE_RIGHTS.get(meta["license"], (0, 0))
        image_rows.append(
            [
                rel,
                image_id,
                split,
                meta["width"],
                meta["height"],
                meta["license"],
                lic["name"],
                lic["url"],
                commercial,
                derivatives,
                meta.get("flickr_url", ""),
                meta.get("coco_url", ""),
            ]
        )
        anns = sorted(anns_of.get(image_id, []), key=lambda a: a["id"])
        caption_rows += [[rel, image_id, a["id"], a["caption"].strip()] for a in anns]
    with open(out / "images.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "path",
                "image_id",
                "coco_split",
                "width",
                "height",
                "license_id",
                "license_name",
                "license_url",
                "commercial_ok",
                "derivatives_ok",
                "flickr_url",
                "coco_url",
            ]
        )
        writer.writerows(image_rows)
    with open(out / "captions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "image_id", "caption_id", "caption"])
        writer.writerows(caption_rows)
    (out / "captions_val2017.json").write_bytes(val_json)
    return out


def download_coco_captions(
    root: str | os.PathLike[str] | None = None,
    annotations_url: str = ANNOTATIONS_URL,
    annotations_md5: str | None = ANNOTATIONS_MD5,
    images_url: str = IMAGES_URL,
    images: Sequence[tuple[int, str, str]] = IMAGES,
) -> Path:
    """Download COCO 2017 caption annotations (md5-checked, ~241 MB) and the pinned images; build the mini layout."""
    root = data_root(root)
    root.mkdir(parents=True, exist_ok=True)
    archive = fetch(annotations_url, root / "_downloads" / "annotations_trainval2017.zip", md5=annotations_md5)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        staging = prepare_coco_captions(archive, Path(tmp) / "out", images, images_url)
        return publish_dir(staging, root / FOLDER)
