"""Real-data checks of the dataset loaders: counts, splits, sample types, errors."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from chorus.data import DATASETS, build_dataset, dataset_info, download
from chorus.errors import ConfigError, DataNotFoundError


def test_registry_names_and_unknown(real_data_root):
    assert DATASETS.names() == [
        "av_sequences",
        "avdigits",
        "caltech101",
        "coco_captions",
        "digit_strings",
        "digits",
        "folder",
        "fsdd",
        "manifest",
        "mnist",
        "sort_of_clevr",
    ]
    with pytest.raises(ConfigError, match="fsdd"):
        build_dataset("fsd", root=real_data_root)
    with pytest.raises(ConfigError, match="mnist"):
        download("mnistt", root=real_data_root)


def test_fsdd_official_and_speaker_protocols(real_data_root):
    full = build_dataset("fsdd", real_data_root, split="all")
    assert len(full) == 3000 and Counter(full.labels) == {d: 300 for d in range(10)}
    train, test = (build_dataset("fsdd", real_data_root, split=s) for s in ("train", "test"))
    assert (len(train), len(test)) == (2700, 300)
    assert {r["index"] for r in test.records} == {"0", "1", "2", "3", "4"}
    sp_train = build_dataset("fsdd", real_data_root, split="train", protocol="speaker", test_speakers=("theo", "lucas"))
    sp_test = build_dataset("fsdd", real_data_root, split="test", protocol="speaker", test_speakers=("theo", "lucas"))
    assert (len(sp_train), len(sp_test)) == (2000, 1000)
    assert {r["speaker"] for r in sp_test.records} == {"theo", "lucas"}
    assert not {r["speaker"] for r in sp_train.records} & {"theo", "lucas"}
    with pytest.raises(ConfigError, match="bob"):
        build_dataset("fsdd", real_data_root, protocol="speaker", test_speakers=("bob",))
    s = test[0]
    assert set(s) == {"audio", "sample_rate", "label", "speaker", "path"}
    assert s["audio"].dtype == torch.float32 and s["audio"].dim() == 1 and s["sample_rate"] == 8000
    assert s["audio"].abs().max() <= 1.0 and s["audio"].abs().max() > 0.01
    assert s["label"] == test.labels[0] and s["path"].endswith(f"{s['label']}_{s['speaker']}_0.wav")


def test_mnist_split_is_stratified_disjoint_and_deterministic(real_data_root):
    full = build_dataset("mnist", real_data_root, split="all")
    assert len(full) == 10000
    assert Counter(full.labels)[1] == 1135 and Counter(full.labels)[5] == 892  # SOURCE.md class counts
    train, test = (build_dataset("mnist", real_data_root, split=s) for s in ("train", "test"))
    assert (len(train), len(test)) == (8000, 2000)
    assert not set(train.records) & set(test.records)
    again = build_dataset("mnist", real_data_root, split="test")
    assert again.records == test.records
    full_counts, test_counts = Counter(full.labels), Counter(test.labels)
    for d in range(10):  # stratified: each class within one item of its 20 % share
        assert abs(test_counts[d] - full_counts[d] * 0.2) <= 1
    img = test[0]["image"]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)


def test_caltech_counts_classes_text_and_indices(real_data_root):
    ds = build_dataset("caltech101", real_data_root, split="all")
    assert len(ds) == 3030 and len(ds.classes) == 101 and Counter(ds.labels) == {c: 30 for c in range(101)}
    with open(real_data_root / "caltech101" / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    s = ds[1234]
    assert s["text"] == rows[1234]["class_name"] == ds.classes[s["label"]]
    assert s["image"].mode == "RGB" and s["image"].size == (96, 96)
    sub = build_dataset("caltech101", real_data_root, split="all", indices=[5, 900])
    assert len(sub) == 2 and sub.labels == [ds.labels[5], ds.labels[900]] and sub[1]["path"] == ds[900]["path"]
    train, test = (build_dataset("caltech101", real_data_root, split=s) for s in ("train", "test"))
    assert (len(train), len(test)) == (2020, 1010)
    assert Counter(test.labels) == {c: 10 for c in range(101)}
    assert not {r["path"] for r in train.records} & {r["path"] for r in test.records}


def test_coco_pairs_images_and_image_level_split(real_data_root):
    pairs = build_dataset("coco_captions", real_data_root, split="all", mode="pairs")
    images = build_dataset("coco_captions", real_data_root, split="all", mode="images")
    assert (len(pairs), len(images)) == (1195, 239)
    train = build_dataset("coco_captions", real_data_root, split="train", mode="images")
    test = build_dataset("coco_captions", real_data_root, split="test", mode="images")
    assert (len(train), len(test)) == (189, 50)
    assert not set(train.image_ids) & set(test.image_ids)
    ptrain = build_dataset("coco_captions", real_data_root, split="train")
    ptest = build_dataset("coco_captions", real_data_root, split="test")
    assert (len(ptrain), len(ptest)) == (945, 250)
    assert {r["image_id"] for _, r in ptest.records} == {str(i) for i in test.image_ids}
    item = test[3]
    assert len(item["captions"]) == 5 and all(c.strip() == c and c for c in item["captions"])
    assert item["image"].mode == "RGB"
    pair = ptest[15]
    assert pair["image_id"] == test.image_ids[3] and pair["text"] in item["captions"]
    assert ptest.labels[15] == 3  # label = index of the pair's image


def test_digits_embedded(tmp_path):
    ds = build_dataset("digits", root=tmp_path / "nothing-here", split="test")
    assert len(ds) == 360
    s = ds[0]
    assert s["image"].mode == "L" and s["image"].size == (8, 8)
    from sklearn.datasets import load_digits

    raw = load_digits().images[ds.records[0]]
    assert (abs(torch.from_numpy(np.asarray(s["image"], dtype=np.float32)) - torch.tensor(raw) * 255 / 16) <= 0.5).all()


@pytest.mark.parametrize(
    "name,missing",
    [
        ("fsdd", "fsdd/metadata.csv"),
        ("mnist", "mnist_test/t10k-images-idx3-ubyte.gz"),
        ("caltech101", "caltech101/classes.txt"),
        ("coco_captions", "coco_captions_mini/captions.csv"),
    ],
)
def test_missing_files_say_how_to_download(tmp_path, name, missing):
    with pytest.raises(DataNotFoundError) as info:
        build_dataset(name, root=tmp_path, split="all")
    msg = str(info.value)
    assert missing in msg and str(tmp_path) in msg and f"chorus data download {name}" in msg


def test_dataset_info_counts(real_data_root):
    info = dataset_info("fsdd", root=real_data_root)
    assert info["splits"] == {"train": 2700, "test": 300, "all": 3000}
    assert info["modalities"] == ["audio"] and info["num_classes"] == 10
    assert (
        0.14
        < info["stats"]["duration_s_min"]
        < info["stats"]["duration_s_mean"]
        < info["stats"]["duration_s_max"]
        < 2.3
    )
