"""fetch() and the per-dataset preparation, offline: file:// URLs and small archives built from real files."""

from __future__ import annotations

import csv
import hashlib
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from chorus.data import build_dataset, download_caltech101, download_coco_captions, download_fsdd, download_mnist, fetch
from chorus.data.fsdd import recordings_digest
from chorus.errors import DataError


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_fetch_checksums_and_atomicity(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"chorus" * 1000)
    dest = tmp_path / "out" / "copy.bin"
    assert fetch(src.as_uri(), dest, md5=_md5(src), progress=False).read_bytes() == src.read_bytes()
    fetch(src.as_uri(), tmp_path / "s.bin", sha256=hashlib.sha256(src.read_bytes()).hexdigest(), progress=False)
    with pytest.raises(DataError, match="md5 mismatch"):
        fetch(src.as_uri(), tmp_path / "bad" / "x.bin", md5="0" * 32, progress=False)
    assert list((tmp_path / "bad").iterdir()) == []  # nothing half-written left behind
    with pytest.raises(DataError, match="could not download"):
        fetch((tmp_path / "missing.bin").as_uri(), tmp_path / "y.bin", progress=False)


def test_download_mnist_from_a_local_mirror(real_data_root, tmp_path):
    mirror = (real_data_root / "mnist_test").as_uri() + "/"
    download_mnist(tmp_path, mirror=mirror)  # the real files must match the official md5s
    assert len(build_dataset("mnist", tmp_path, split="all")) == 10000


def test_download_fsdd_builds_the_loader_layout(real_data_root, tmp_path):
    names = ["0_george_0.wav", "0_george_5.wav", "7_theo_12.wav"]
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for n in names:
            tf.add(real_data_root / "fsdd" / "recordings" / n, arcname=f"free-spoken-digit-dataset-abc/recordings/{n}")
    digest = recordings_digest([real_data_root / "fsdd" / "recordings" / n for n in names])
    with pytest.raises(DataError, match="content sha256"):
        download_fsdd(tmp_path / "r1", url=archive.as_uri(), content_sha256="0" * 64)
    download_fsdd(tmp_path / "r2", url=archive.as_uri(), content_sha256=digest)
    with open(real_data_root / "fsdd" / "metadata.csv", newline="") as fh:
        real = [r for r in csv.DictReader(fh) if r["path"].split("/")[1] in names]
    with open(tmp_path / "r2" / "fsdd" / "metadata.csv", newline="") as fh:
        ours = list(csv.DictReader(fh))
    assert ours == real
    ds = build_dataset("fsdd", tmp_path / "r2", split="all")
    assert len(ds) == 3 and ds[2]["label"] == 7


def test_download_caltech_resizes_and_labels(tmp_path):
    cats = tmp_path / "src" / "101_ObjectCategories"
    for folder, n in (("BACKGROUND_Google", 2), ("car_side", 3), ("Faces_easy", 2)):
        (cats / folder).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (150 + 10 * i, 100), (40 * i, 80, 120)).save(cats / folder / f"image_{i + 1:04d}.jpg")
    inner = tmp_path / "101_ObjectCategories.tar.gz"
    with tarfile.open(inner, "w:gz") as tf:
        tf.add(cats, arcname="101_ObjectCategories")
    outer = tmp_path / "caltech-101.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(inner, "caltech-101/101_ObjectCategories.tar.gz")
    root = download_caltech101(tmp_path / "root", url=outer.as_uri(), md5=_md5(outer))
    assert (root / "classes.txt").read_text() == "0\tFaces_easy\tfaces easy\n1\tcar_side\tcar side\n"
    ds = build_dataset("caltech101", tmp_path / "root", split="all")
    assert ds.labels == [0, 0, 1, 1, 1] and ds.classes == ["faces easy", "car side"]
    assert all(ds[i]["image"].size == (96, 96) for i in range(5)) and ds[2]["text"] == "car side"


def test_download_coco_rebuilds_rows_identical_to_the_shared_copy(real_data_root, tmp_path):
    real = real_data_root / "coco_captions_mini"
    val_json = (real / "captions_val2017.json").read_bytes()
    annotations = tmp_path / "annotations.zip"
    empty_train = {"images": [], "annotations": [], "licenses": []}
    with zipfile.ZipFile(annotations, "w") as zf:
        zf.writestr("annotations/captions_val2017.json", val_json)
        zf.writestr("annotations/captions_train2017.json", json.dumps(empty_train))
    server = tmp_path / "server" / "val2017"
    server.mkdir(parents=True)
    ids = [139, 802]
    manifest = []
    for image_id in ids:
        data = (real / "images" / f"val2017_{image_id:012d}.jpg").read_bytes()
        (server / f"{image_id:012d}.jpg").write_bytes(data)
        manifest.append((image_id, "val2017", hashlib.sha256(data).hexdigest()))
    out = download_coco_captions(
        tmp_path / "root",
        annotations_url=annotations.as_uri(),
        annotations_md5=_md5(annotations),
        images_url=(tmp_path / "server").as_uri() + "/",
        images=manifest,
    )
    for name in ("images.csv", "captions.csv"):
        with open(real / name, newline="") as fh:
            expected = [r for r in csv.DictReader(fh) if int(r["image_id"]) in ids]
        with open(out / name, newline="") as fh:
            assert list(csv.DictReader(fh)) == expected
    assert (out / "captions_val2017.json").read_bytes() == val_json
    manifest[0] = (139, "val2017", "0" * 64)
    with pytest.raises(DataError, match="sha256 mismatch"):
        download_coco_captions(
            tmp_path / "root2",
            annotations_url=annotations.as_uri(),
            annotations_md5=None,
            images_url=(tmp_path / "server").as_uri() + "/",
            images=manifest,
        )
    assert not (tmp_path / "root2" / "coco_captions_mini").exists()
