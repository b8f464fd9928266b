"""The text-only COCO captions: ``captions_val2017.json`` minus every caption of an image with pixels here.

Why: ``coco_captions_mini`` ships the official val2017 caption file (25,014
human captions of 5,000 images) but the pixels of only 239 images. The
captions of the other images are a text corpus in the captions' own register
("A man riding a wave on top of a surfboard."), which is what a captioner's
language model can learn from without any image — co-learning from the text
modality. Every caption of the 239 images with pixels (159 of them are val2017
images, so their captions are in the file) is removed, so a model pre-trained
on this text has seen no caption of a test image.
"""

from __future__ import annotations

import json
import os

from chorus.data.base import read_csv, require_file
from chorus.data.coco_captions import FOLDER
from chorus.data.root import data_root
from chorus.errors import DataError

NAME = "coco_captions"


def images_with_pixels(root: str | os.PathLike[str] | None = None) -> set[int]:
    """COCO ids of the images whose pixels ``coco_captions_mini`` holds (its ``captions.csv``)."""
    base = data_root(root)
    rows = read_csv(require_file(base / FOLDER / "captions.csv", NAME, base), ("image_id",))
    return {int(row["image_id"]) for row in rows}


def text_only_captions(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Every caption of ``captions_val2017.json`` whose image has no pixels here, in file order, stripped."""
    base = data_root(root)
    path = require_file(base / FOLDER / "captions_val2017.json", NAME, base)
    try:
        annotations = json.loads(path.read_text(encoding="utf-8"))["annotations"]
        pairs = [(int(a["image_id"]), str(a["caption"]).strip()) for a in annotations]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: not a COCO captions json ({err})") from err
    excluded = images_with_pixels(base)
    return [text for image_id, text in pairs if image_id not in excluded and text]
