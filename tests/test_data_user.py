"""Datasets from a user's own files (``folder`` / ``manifest``), built in tmp_path from real Caltech-101 and FSDD files.

Each test lays files out the way a user would (class folders, Hugging Face
``metadata.csv``/``.jsonl``, a manifest beside or away from the files) and checks
what the loader makes of them against what was written: class names, splits,
captions, bad rows named by file and line, audio against scipy's resampler.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image
from scipy.signal import resample_poly

from chorus.cli import main
from chorus.config import load_config
from chorus.data import (
    Collate,
    ImageTransform,
    LogMel,
    SampleTransform,
    build_dataset,
    dataset_info,
    format_info,
    parse_spec,
)
from chorus.errors import ConfigError, DataError
from chorus.experiment import (
    DataConfig,
    ExperimentConfig,
    SampleFeatures,
    train_experiment,
)

CLASSES = {"Faces_easy": "face", "Motorbikes": "motor bike", "airplanes": "Airplane"}  # user's words, spaces, case


def caltech(root: Path, folder: str, n: int, start: int = 0) -> list[Path]:
    return sorted((root / "caltech101" / "images" / folder).glob("*.jpg"))[start : start + n]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def photos(tmp_path, real_data_root) -> Path:
    """10 real photos in each of three class folders named in the user's words, plus a stray README."""
    for folder, name in CLASSES.items():
        (tmp_path / "photos" / name).mkdir(parents=True)
        for src in caltech(real_data_root, folder, 10):
            shutil.copy(src, tmp_path / "photos" / name / src.name)
    (tmp_path / "photos" / "README.txt").write_text("my photos\n")
    return tmp_path / "photos"


# ---------------------------------------------------------------------------- layouts


def test_class_folders_give_the_users_class_names_and_a_seeded_stratified_split(photos):
    train, test = (build_dataset(f"folder:{photos}", split=s) for s in ("train", "test"))
    assert train.classes == test.classes == sorted(CLASSES.values()) == ["Airplane", "face", "motor bike"]
    assert len(train) == 24 and len(test) == 6  # round(0.2 × 10) = 2 test photos per class
    assert [test.labels.count(i) for i in range(3)] == [2, 2, 2]
    train_files = {s["path"] for s in train}
    test_files = {s["path"] for s in test}
    assert not train_files & test_files and len(train_files | test_files) == 30
    sample = test[0]
    assert set(sample) == {"image", "label", "path"} and sample["image"].mode == "RGB"
    assert Path(sample["path"]).parent.name == test.classes[sample["label"]]  # label ↔ the folder it came from
    again = build_dataset(str(photos), split="test")  # a bare path is a folder; same seed → same split
    assert {s["path"] for s in again} == test_files
    other = build_dataset(str(photos), split="test", seed=1)
    assert {s["path"] for s in other} != test_files
    assert test.split_record["source"] == "seeded" and sorted(test.split_record["test"]) == sorted(
        str(Path(p).relative_to(photos)) for p in test_files
    )
    assert train.ignored == [photos / "README.txt"]


def test_split_folders_are_honoured(tmp_path, real_data_root):
    for split, start in (("train", 0), ("test", 8)):
        for folder, name in CLASSES.items():
            (tmp_path / split / name).mkdir(parents=True)
            for src in caltech(real_data_root, folder, 8 if split == "train" else 2, start):
                shutil.copy(src, tmp_path / split / name / src.name)
    train, test = (build_dataset(str(tmp_path), split=s) for s in ("train", "test"))
    assert (len(train), len(test)) == (24, 6)
    assert all("/test/" in s["path"] for s in test) and train.split_record["source"] == "folders"
    with pytest.raises(ConfigError, match="split 'validation' not found"):
        build_dataset(str(tmp_path), split="validation")


def test_hf_metadata_csv_and_jsonl_with_several_captions_per_image(tmp_path, real_data_root):
    files = [src for folder in CLASSES for src in caltech(real_data_root, folder, 4)]
    for src in files:
        shutil.copy(src, tmp_path / f"{src.parent.name}_{src.name}")
    names = [f"{src.parent.name}_{src.name}" for src in files]
    rows = [
        {"file_name": n, "caption": [f"photo {i}", f"picture number {i}"], "label": CLASSES[n.rsplit("_image", 1)[0]]}
        for i, n in enumerate(names)
    ]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = build_dataset(str(tmp_path), split="all")
    assert items.modalities == ("image", "text") and items.classes == sorted(CLASSES.values())
    by_path = {Path(s["path"]).name: s for s in items}
    assert by_path[names[5]]["captions"] == ["photo 5", "picture number 5"]
    assert items.classes[by_path[names[5]]["label"]] == rows[5]["label"]
    pairs = build_dataset(str(tmp_path), split="train")  # training: one item per caption
    assert len(pairs) == 2 * len(build_dataset(str(tmp_path), split="train", mode="items"))
    assert set(pairs[0]) == {"image", "text", "label", "path"}
    assert pairs.captions() == [s["text"] for s in pairs]

    (tmp_path / "metadata.jsonl").unlink()  # the same as CSV rows, one caption each, no label column
    write_csv(tmp_path / "metadata.csv", ["file_name", "text"], [[n, f"photo {i}"] for i, n in enumerate(names)])
    flat = build_dataset(str(tmp_path), split="all")
    assert flat.classes == [] and sorted(s["captions"][0] for s in flat) == sorted(f"photo {i}" for i in range(12))


def test_manifest_paths_are_relative_to_it_and_the_split_is_by_image(tmp_path, real_data_root, capsys):
    (tmp_path / "pictures").mkdir()
    (tmp_path / "lists").mkdir()
    rows = []
    for folder in CLASSES:
        for k, src in enumerate(caltech(real_data_root, folder, 10)):
            name = f"{folder}_{src.name}"
            shutil.copy(src, tmp_path / "pictures" / name)
            rows += [[f"../pictures/{name}", f"caption {c} of {name}"] for c in range(1 + k % 3)]
    manifest = write_csv(tmp_path / "lists" / "pairs.csv", ["photo", "description"], rows)
    columns = {"image": "photo", "text": "description"}
    kind, kw = parse_spec(str(manifest))
    assert (kind, kw) == ("manifest", {"path": str(manifest)})
    train = build_dataset(str(manifest), split="train", columns=columns)
    test = build_dataset(f"manifest:{manifest}", split="test", columns=columns)
    assert len(train.items) + len(test.items) == 30 and len(test.items) == 6  # 20 % of the 30 images
    assert len(train) == sum(len(it.captions) for it in train.items)  # train: one item per caption
    train_images = {str(p) for it in train.items for p in it.files.values()}
    test_images = {s["path"] for s in test}
    assert not train_images & test_images  # several captions per image, yet no image in both splits
    assert all(
        s["captions"] == [f"caption {c} of {Path(s['path']).name}" for c in range(len(s["captions"]))] for s in test
    )
    with pytest.raises(ConfigError, match=r"no column\(s\) \['caption'\]"):
        build_dataset(str(manifest), columns={"image": "photo", "text": "caption"})
    assert main(["data", "info", str(manifest), "--columns", "image=photo,text=description"]) == 0
    assert "captions     1–3 per item (mean 1.9)" in capsys.readouterr().out
    assert main(["data", "info", str(manifest)]) == 2  # unusual column names must be named
    assert "--columns image=COLUMN" in capsys.readouterr().err


def test_split_column_is_honoured_exactly(tmp_path, real_data_root):
    files = caltech(real_data_root, "airplanes", 6) + caltech(real_data_root, "Motorbikes", 6)
    rows = []
    for i, src in enumerate(files):
        shutil.copy(src, tmp_path / f"{i}.jpg")
        rows.append([f"{i}.jpg", "plane" if i < 6 else "bike", ["train", "validation", "test"][i % 3]])
    write_csv(tmp_path / "m.csv", ["file_name", "label", "split"], rows)
    for split in ("train", "validation", "test"):
        got = {Path(s["path"]).name for s in build_dataset(str(tmp_path / "m.csv"), split=split)}
        assert got == {r[0] for r in rows if r[2] == split}
    assert build_dataset(str(tmp_path / "m.csv"), split="all").split_record == {
        "source": "column",
        "counts": {"train": 4, "test": 4, "validation": 4},
    }


# ---------------------------------------------------------------------------- bad rows


@pytest.fixture
def messy(tmp_path, real_data_root) -> Path:
    """A captions manifest with one row of each problem; rows 2–5 and 10 are good."""
    good = caltech(real_data_root, "airplanes", 5)
    for i, src in enumerate(good):
        shutil.copy(src, tmp_path / f"good{i}.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"this is not a jpeg" * 10)
    data = good[0].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])  # header fine, pixels cut off
    rows = [
        ["good0.jpg", "plane", "a plane"],
        ["good1.jpg", "plane", "a jet"],
        ["good2.jpg", "plane", "a plane"],
        ["good3.jpg", "plane", "an airliner"],
        ["missing.jpg", "plane", "a plane"],  # line 6: missing file
        ["garbage.jpg", "plane", "a plane"],  # line 7: unreadable image
        ["good4.jpg", "plane", "  "],  # line 8: empty caption
        ["good4.jpg", "", "a plane"],  # line 9: label missing
        ["truncated.jpg", "plane", "a plane"],
    ]  # line 10: passes the header check, fails to decode
    return write_csv(tmp_path / "captions.csv", ["file_name", "label", "caption"], rows)


def test_bad_rows_raise_naming_file_and_line(messy):
    with pytest.raises(DataError, match=r"captions.csv:6: missing file: .*missing.jpg does not exist"):
        build_dataset(str(messy), split="all")


def test_bad_rows_skipped_are_counted_and_named(messy):
    ds = build_dataset(
        str(messy), split="all", on_error="skip", mode="items", transform=SampleTransform({"image": ImageTransform(32)})
    )
    where = {p.where.rsplit(":", 1)[1]: p.kind for p in ds.problems}
    assert where == {"6": "missing file", "7": "unreadable image", "8": "empty caption", "9": "label missing"}
    assert "skipped 4 bad row(s)" in ds.problem_summary()
    assert len(ds) == 5  # good0–3 and the truncated file, which only fails when decoded
    samples = [ds[i] for i in range(len(ds))]
    assert samples[-1] is None and ds.skipped == 1 and sum(s is None for s in samples) == 1
    batch = Collate()(samples)
    assert len(batch["path"]) == 4
    strict = build_dataset(str(messy), split="all", on_error="skip", mode="items")
    strict.on_error = "raise"
    with pytest.raises(DataError, match=r"captions.csv:10: .*truncated.jpg: cannot decode image"):
        strict[len(strict) - 1]


# ---------------------------------------------------------------------------- audio and joined modalities


@pytest.fixture
def speech(tmp_path, real_data_root) -> tuple[Path, list[tuple[np.ndarray, str]]]:
    """Nine real FSDD clips written at 16 kHz stereo (right = half the left) with a labels CSV."""
    meta = list(csv.DictReader((real_data_root / "fsdd" / "metadata.csv").read_text().splitlines()))
    picked = [r for r in meta if r["digit"] in "012" and r["speaker"] == "jackson"][::17][:9]
    words = {"0": "zero", "1": "one", "2": "two"}
    rows, originals = [], []
    (tmp_path / "clips").mkdir()
    for r in picked:
        wave, rate = sf.read(real_data_root / "fsdd" / r["path"], dtype="float64")
        up = resample_poly(wave, 2, 1) * 0.8
        sf.write(tmp_path / "clips" / Path(r["path"]).name, np.stack([up, 0.5 * up], 1), 2 * rate, subtype="FLOAT")
        rows.append([f"clips/{Path(r['path']).name}", words[r["digit"]]])
        originals.append((up, words[r["digit"]]))
    write_csv(tmp_path / "labels.csv", ["file_name", "label"], rows)
    return tmp_path / "labels.csv", originals


def test_stereo_16k_audio_is_averaged_and_resampled_like_scipy(speech):
    manifest, originals = speech
    ds = build_dataset(str(manifest), split="all")
    assert ds.modalities == ("audio",) and ds.classes == ["one", "two", "zero"]
    sample = ds[0]
    up, word = originals[0]
    assert sample["sample_rate"] == 16000 and ds.classes[sample["label"]] == word
    mono = (up + 0.5 * up) / 2  # mono by averaging the channels
    np.testing.assert_allclose(sample["audio"].numpy(), mono, atol=1e-6)
    features = SampleFeatures(DataConfig(name="fsdd", sample_rate=8000, n_mels=40), train=False)(sample)
    reference = resample_poly(sample["audio"].double().numpy(), 1, 2)  # 16 kHz → the model's 8 kHz
    want = LogMel(sample_rate=8000, n_mels=40)(torch.from_numpy(reference).float())
    assert features["sample_rate"] == 8000
    torch.testing.assert_close(features["audio"], want, atol=1e-4, rtol=1e-4)


def test_rows_joining_image_and_audio_feed_a_fusion_batch(tmp_path, speech, real_data_root):
    manifest, _ = speech
    rows = list(csv.reader(manifest.read_text().splitlines()))[1:]
    images = caltech(real_data_root, "Faces_easy", len(rows))
    for src in images:
        shutil.copy(src, tmp_path / src.name)
    (tmp_path / "joined.jsonl").write_text(
        "".join(
            json.dumps({"image_file_name": src.name, "audio_file_name": clip, "label": word}) + "\n"
            for src, (clip, word) in zip(images, rows)
        )
    )
    ds = build_dataset(str(tmp_path / "joined.jsonl"), split="all")
    assert ds.modalities == ("audio", "image") and ds.classes == ["one", "two", "zero"]
    cfg = DataConfig(name="fsdd", sample_rate=8000, image_size=32)
    batch = Collate()([SampleFeatures(cfg, train=False)(ds[i]) for i in range(4)])
    assert batch["image"].shape == (4, 3, 32, 32) and batch["audio"].shape[:2] == (4, 40)
    assert [ds.classes[y] for y in batch["label"]] == [w for _, w in rows[:4]]


# ---------------------------------------------------------------------------- data info, specs, config


def test_data_info_summarises_classes_captions_and_problems(tmp_path, real_data_root, messy, capsys):
    for n in range(12):  # 12 classes of 1–3 photos: the 10 largest are shown, then "… 2 more"
        (tmp_path / "many" / f"class {n:02d}").mkdir(parents=True)
        for src in caltech(real_data_root, "ant", 1 + n % 3, n):
            shutil.copy(src, tmp_path / "many" / f"class {n:02d}" / src.name)
    assert main(["data", "info", str(tmp_path / "many")]) == 0
    text = capsys.readouterr().out
    assert "items        24 (train 16, test 8)" in text  # one test photo per class of 2–3; a class of 1 stays in train
    assert "classes      12: class 02 (3), class 05 (3)" in text and "… 2 more" in text
    assert main(["data", "info", str(messy)]) == 0
    text = capsys.readouterr().out
    assert "4 bad row(s) left out" in text and f"{messy}:6: missing file" in text
    assert "captions     1 per item" in text
    assert main(["data", "info", str(messy), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["class_counts"] == {"plane": 5} and len(record["problems"]) == 4
    assert record == json.loads(json.dumps(dataset_info(str(messy)), default=str))
    assert format_info(record) in text  # the CLI prints exactly the library's summary
    assert main(["data", "info", str(tmp_path / "nothing_here.csv")]) == 2


def test_specs_and_config_paths(tmp_path, photos, monkeypatch):
    assert parse_spec("fsdd") == ("fsdd", {})
    assert parse_spec(f"folder:{photos}") == ("folder", {"path": str(photos)})
    with pytest.raises(ConfigError, match="unknown dataset 'nosuch'"):
        parse_spec("nosuch")
    monkeypatch.chdir(photos.parent)
    cfg = DataConfig(name="folder", path="photos")
    assert cfg.path == str(photos) and cfg.same_dataset("photos") and cfg.same_dataset(f"folder:{photos}")
    assert cfg.dataset_options(train=True) == {"path": str(photos)}
    with pytest.raises(ConfigError, match="data.path and data.columns are for the folder and manifest"):
        DataConfig(name="fsdd", path="photos")
    with pytest.raises(ConfigError, match="needs the path"):
        DataConfig(name="manifest")


def test_training_with_skip_reports_what_was_left_out_at_the_end(photos, tmp_path, caplog):
    (photos / "face" / "garbage.jpg").write_bytes(b"not a photo" * 20)  # fails the header check
    whole = next((photos / "face").glob("image_*.jpg")).read_bytes()
    (photos / "face" / "cut.jpg").write_bytes(whole[: len(whole) // 3])  # fails only when decoded
    cfg = load_config(
        ExperimentConfig,
        {
            "name": "skip",
            "data": {"name": "folder", "path": str(photos), "image_size": 16, "on_error": "skip"},
            "model": {"task": "classify", "encoders": {"image": {"name": "cnn", "size": "tiny"}}},
            "train": {"epochs": 1, "batch_size": 8, "progress": False, "tensorboard": False},
        },
    )
    with caplog.at_level("WARNING"):
        train_experiment(cfg, tmp_path / "run")
    record = json.loads((tmp_path / "run" / "data.json").read_text())
    assert record["classes"] == ["Airplane", "face", "motor bike"]
    assert len(record["bad_rows_left_out"]) == 1 and "garbage.jpg: unreadable image" in record["bad_rows_left_out"][0]
    assert sum(record["reads_skipped"].values()) == 1  # cut.jpg, read once in one epoch or one evaluation
    assert "1 bad row(s) left out" in caplog.text and "cut.jpg" in caplog.text


def test_any_image_size_and_mode_becomes_the_models_input(tmp_path, real_data_root):
    """A 16-bit greyscale scan keeps its grey levels; palette, RGBA, CMYK and odd sizes all reach [3, 32, 32]."""
    photo = Image.open(caltech(real_data_root, "airplanes", 1)[0])
    deep = (np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16)  # 0 … 59,950 in a 16-bit PNG
    (tmp_path / "scans").mkdir()
    Image.fromarray(deep).save(tmp_path / "scans" / "deep.png")
    (tmp_path / "photos").mkdir()
    photo.resize((300, 117)).convert("P").save(tmp_path / "photos" / "palette.png")
    photo.convert("RGBA").save(tmp_path / "photos" / "alpha.png")
    photo.convert("CMYK").resize((50, 200)).save(tmp_path / "photos" / "cmyk.jpg")
    ds = build_dataset(str(tmp_path), split="all")
    scan = next(s for s in ds if s["path"].endswith("deep.png"))
    np.testing.assert_array_equal(np.asarray(scan["image"])[..., 0], np.rint(deep / 257).astype(np.uint8))
    features = SampleFeatures(DataConfig(name="fsdd", image_size=32), train=False)
    assert {tuple(features(s)["image"].shape) for s in ds} == {(3, 32, 32)}


def test_audio_with_transcripts_pairs_for_training_and_groups_for_retrieval(speech):
    manifest, _ = speech
    rows = list(csv.reader(manifest.read_text().splitlines()))[1:]
    write_csv(
        manifest.parent / "transcripts.csv",
        ["file_name", "transcription"],
        [[clip, said] for clip, word in rows for said in (word, f"the word {word}")],
    )
    pairs = build_dataset(str(manifest.parent / "transcripts.csv"), split="train")
    items = build_dataset(str(manifest.parent / "transcripts.csv"), split="test")
    assert pairs.modalities == ("audio", "text") and pairs.classes == []
    assert len(pairs) == 2 * len(pairs.items) and set(pairs[0]) == {"audio", "sample_rate", "text", "path"}
    assert len(items) == 2 and all(
        s["captions"][1] == f"the word {s['captions'][0]}" for s in items
    )  # round(0.2 × 9) clips, no labels
