"""A user's own files through the whole ``chorus`` command line: train → eval → zeroshot → retrieve → predict →
index build → serve.

The datasets are built at test time from real files, the way a user would lay
them out: 60 Caltech-101 photos in class folders named in the user's words
(``face``, ``motorbike``, ``airplane``), 30 other photos with a captions CSV
(1–3 captions per photo), and 60 FSDD recordings of "zero", "one", "two"
rewritten at 16 kHz stereo with a labels CSV (the runs use 8 kHz mono: the
data is resampled on the way in), and a manifest joining each recording with a
photo of the class its word stands for (image + audio + label rows, trained
with a fusion model). The CLI runs in-process (``chorus.cli.main``,
argument parsing included) except ``chorus serve``, which runs as its own
process and is asked over HTTP.

Margins (three classes, chance 1/3): the photo classifier, the spoken-word
model and the image + audio fusion must reach ≥ 2/3 on their held-out items
(and ``chorus predict`` on the held-out files too), and the captions-trained CLIP
must classify the 60 class-folder photos — which it never saw, from folder
names it never saw as labels — zero-shot at ≥ 1/3 + 0.2. Retrieval on 6 test
photos is too small for a margin; there the CLI must reproduce the numbers
training reported exactly.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from test_serve_support import free_port

from chorus.cli import main

REPO = Path(__file__).resolve().parents[1]
CLASSES = {"Faces_easy": "face", "Motorbikes": "motorbike", "airplanes": "airplane"}
CAPTIONS = {
    "face": ["a face", "a photo of a face", "a portrait of a person"],
    "motorbike": ["a motorbike", "a photo of a motorbike", "a motorbike parked on the road"],
    "airplane": ["an airplane", "a photo of an airplane", "an airplane on the runway"],
}
WORDS = {"0": "zero", "1": "one", "2": "two"}
WORD_PHOTOS = {"zero": "face", "one": "motorbike", "two": "airplane"}  # the joined rows: a word and a photo
QUIET = {"progress": False, "tensorboard": False, "log_every": 10, "warmup_steps": 5, "batch_size": 16, "lr": 0.003}
CONFIGS = {
    "photos_cls": {
        "data": {"name": "folder", "path": "photos", "image_size": 32},
        "model": {"task": "classify", "encoders": {"image": {"name": "cnn", "size": "tiny"}}},
        "train": {"epochs": 15} | QUIET,
    },
    "captions_clip": {
        "data": {
            "name": "manifest",
            "path": "captioned/captions.csv",
            "image_size": 32,
            "vocab_size": 300,
            "context_length": 16,
        },
        "model": {
            "task": "contrastive",
            "embed_dim": 32,
            "encoders": {
                "image": {"name": "cnn", "size": "tiny"},
                "text": {"name": "text_transformer", "size": "tiny"},
            },
        },
        "train": {"epochs": 20} | QUIET,
    },
    "speech_clip": {
        "data": {
            "name": "manifest",
            "path": "speech/labels.csv",
            "sample_rate": 8000,
            "vocab_size": 300,
            "context_length": 16,
            "caption_templates": ["someone saying {}.", "the spoken word {}.", "{}"],
        },
        "model": {
            "task": "contrastive",
            "embed_dim": 32,
            "zero_shot_templates": ["the spoken word {}."],
            "encoders": {
                "audio": {"name": "audio_cnn", "size": "tiny"},
                "text": {"name": "text_transformer", "size": "tiny"},
            },
        },
        "train": {"epochs": 15} | QUIET,
    },
    "joined_fusion": {
        "data": {"name": "manifest", "path": "joined.csv", "image_size": 32, "sample_rate": 8000},
        "model": {
            "task": "fusion",
            "fusion": "early",
            "encoders": {"image": {"name": "cnn", "size": "tiny"}, "audio": {"name": "audio_cnn", "size": "tiny"}},
        },
        "train": {"epochs": 15} | QUIET,
    },
}


def chorus(*args: str) -> dict:
    """Run one ``chorus`` command in-process with ``--json``; return its parsed output."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--json"] if args[0] != "index" else list(args))
    assert code == 0, (args, out.getvalue())
    return json.loads(out.getvalue())


def build_user_files(root: Path, data: Path) -> None:
    for folder, name in CLASSES.items():
        photos = sorted((data / "caltech101" / "images" / folder).glob("*.jpg"))
        (root / "photos" / name).mkdir(parents=True)
        for src in photos[:20]:
            shutil.copy(src, root / "photos" / name / src.name)
        (root / "captioned" / "img").mkdir(parents=True, exist_ok=True)
        rows = []
        for k, src in enumerate(photos[20:30]):  # other photos than the class folders'
            shutil.copy(src, root / "captioned" / "img" / f"{name}_{src.name}")
            rows += [[f"img/{name}_{src.name}", caption] for caption in CAPTIONS[name][: 1 + k % 3]]
        with open(root / "captioned" / "captions.csv", "a", newline="") as fh:
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(["file_name", "caption"])
            writer.writerows(rows)
    meta = list(csv.DictReader((data / "fsdd" / "metadata.csv").read_text().splitlines()))
    (root / "speech" / "clips").mkdir(parents=True)
    labels = []
    for digit, word in WORDS.items():
        for r in [r for r in meta if r["digit"] == digit and r["speaker"] in ("jackson", "nicolas", "george")][:20]:
            wave, rate = sf.read(data / "fsdd" / r["path"], dtype="float64")
            up = resample_poly(wave, 2, 1)
            clip = f"clips/{Path(r['path']).stem}.wav"
            sf.write(root / "speech" / clip, np.stack([up, 0.5 * up], 1), 2 * rate, subtype="PCM_16")
            labels.append([clip, word])
    with open(root / "speech" / "labels.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["file_name", "label"], *labels])
    photos = {name: sorted((root / "photos" / name).iterdir()) for name in CLASSES.values()}
    joined = [
        [f"photos/{WORD_PHOTOS[word]}/{photos[WORD_PHOTOS[word]][k % 20].name}", f"speech/{clip}", word]
        for k, (clip, word) in enumerate(labels)
    ]
    with open(root / "joined.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["image_file_name", "audio_file_name", "label"], *joined])
    for name, cfg in CONFIGS.items():
        (root / f"{name}.yaml").write_text(json.dumps({"name": name} | cfg))  # JSON is YAML


@pytest.fixture(scope="module")
def trained(tmp_path_factory, real_data_root):
    """The user files, and the three runs trained on them with `chorus train` (paths relative to the folder)."""
    root = tmp_path_factory.mktemp("user")
    build_user_files(root, real_data_root)
    cwd = Path.cwd()
    os.chdir(root)  # the configs name the data relative to where the user runs chorus
    try:
        metrics = {name: chorus("train", f"{name}.yaml", "--run-dir", f"runs/{name}") for name in CONFIGS}
    finally:
        os.chdir(cwd)
    return root, metrics


def test_data_info_reads_the_files_as_written(trained, capsys):
    root, _ = trained
    assert main(["data", "info", str(root / "speech" / "labels.csv")]) == 0
    text = capsys.readouterr().out
    assert "items        60 (train 48, test 12)" in text and "classes      3: " in text
    assert "16000 Hz; channels 2" in text and "problems     none found" in text


def test_image_folder_classifier(trained):
    root, metrics = trained
    run = root / "runs" / "photos_cls"
    assert metrics["photos_cls"]["eval/n"] == 12  # 20 % of each class folder held out
    assert metrics["photos_cls"]["eval/accuracy"] >= 2 / 3, metrics["photos_cls"]  # chance 1/3
    evaluated = chorus("eval", str(run))
    assert evaluated["accuracy"] == pytest.approx(metrics["photos_cls"]["eval/accuracy"], abs=1e-9)
    assert evaluated["dataset"] == f"folder:{root / 'photos'}"
    record = json.loads((run / "data.json").read_text())
    assert record["classes"] == ["airplane", "face", "motorbike"]  # the folder names, not integers
    assert record["split_rule"]["source"] == "seeded" and len(record["split_rule"]["test"]) == 12
    held_out = [
        p for p in (root / "photos").rglob("*.jpg") if any(str(p).endswith(t) for t in record["split_rule"]["test"])
    ]
    assert len(held_out) == 12
    predicted = chorus("predict", str(run), *map(str, held_out))
    right = [p["labels"][0]["label"] == Path(p["input"]).parent.name for p in predicted]
    assert sum(right) / len(right) >= 2 / 3, predicted  # chance 1/3


def test_image_and_audio_rows_train_a_fusion_model(trained):
    root, metrics = trained
    assert metrics["joined_fusion"]["eval/n"] == 12
    assert metrics["joined_fusion"]["eval/accuracy"] >= 2 / 3, metrics["joined_fusion"]  # chance 1/3
    evaluated = chorus("eval", str(root / "runs" / "joined_fusion"))
    assert evaluated["accuracy"] == pytest.approx(metrics["joined_fusion"]["eval/accuracy"], abs=1e-9)


def test_captions_clip_retrieves_and_classifies_unseen_photos_zero_shot(trained):
    root, metrics = trained
    run = str(root / "runs" / "captions_clip")
    trained_eval = metrics["captions_clip"]
    retrieval = chorus("retrieve", run, "--dataset", str(root / "captioned" / "captions.csv"))
    assert retrieval["n"] == trained_eval["eval/n"] == 6  # the held-out photos, each with all its captions
    for key, value in retrieval["metrics"].items():
        assert value == pytest.approx(trained_eval[f"eval/{key}"], abs=1e-9), key
    zeroshot = chorus("zeroshot", run, "--dataset", f"folder:{root / 'photos'}", "--split", "all")
    assert zeroshot["n"] == 60 and zeroshot["classes"] == 3
    assert zeroshot["metrics"]["top1"] >= 1 / 3 + 0.2, zeroshot  # never-seen photos, folder names as prompts


def test_speech_labels_zero_shot_and_retrieval(trained):
    root, metrics = trained
    run = str(root / "runs" / "speech_clip")
    assert metrics["speech_clip"]["eval/zero_shot_top1"] >= 2 / 3, metrics["speech_clip"]  # 12 clips, chance 1/3
    zeroshot = chorus("zeroshot", run, "--dataset", str(root / "speech" / "labels.csv"))
    assert zeroshot["metrics"]["top1"] == pytest.approx(metrics["speech_clip"]["eval/zero_shot_top1"], abs=1e-9)
    retrieval = chorus("retrieve", run, "--dataset", f"manifest:{root / 'speech' / 'labels.csv'}")
    assert retrieval["n"] == 12 and retrieval["n_texts"] == 3  # class-level: one prompt per word
    assert retrieval["metrics"]["text_to_audio_R@1"] >= 2 / 3
    test = json.loads((root / "runs" / "speech_clip" / "data.json").read_text())["split_rule"]["test"]
    words = dict(csv.reader((root / "speech" / "labels.csv").read_text().splitlines()))
    predicted = chorus("predict", run, *[str(root / "speech" / t) for t in test])
    right = [p["labels"][0]["label"] == words[str(Path(p["input"]).relative_to(root / "speech"))] for p in predicted]
    assert len(right) == 12 and sum(right) / len(right) >= 2 / 3, predicted  # zero-shot from the word prompts


def test_index_build_and_serve_answer_over_http(trained, real_data_root):
    root, _ = trained
    indexes = root / "indexes"
    photos = chorus(
        "index",
        "build",
        str(root / "runs" / "captions_clip"),
        "--dataset",
        str(root / "photos"),
        "--split",
        "all",
        "--out",
        str(indexes / "photos"),
    )
    speech = chorus(
        "index",
        "build",
        str(root / "runs" / "speech_clip"),
        "--dataset",
        str(root / "speech" / "labels.csv"),
        "--out",
        str(indexes / "speech"),
    )
    assert (photos["count"], speech["count"]) == (60, 12)
    items = json.loads((indexes / "photos" / "index.json").read_text())["items"]
    assert {item["label"] for item in items} == set(CLASSES.values())

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chorus.cli",
            "serve",
            "--runs",
            str(root / "runs"),
            "--index-dir",
            str(indexes),
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read()
                assert time.monotonic() < deadline, "chorus serve did not start"
                time.sleep(0.5)
        assert health == {"status": "ok", "runs": 4, "indexes": 2}
        runs = {r["name"]: r for r in httpx.get(f"{base}/runs").json()["runs"]}
        assert runs["speech_clip"]["classes"] == ["one", "two", "zero"]

        held_out = json.loads((root / "runs" / "photos_cls" / "data.json").read_text())["split_rule"]["test"]
        face = next(p for p in sorted((root / "photos" / "face").iterdir()) if f"face/{p.name}" not in held_out)
        answer = httpx.post(
            f"{base}/zeroshot",
            files={"image": ("face.jpg", face.read_bytes(), "image/jpeg")},
            data={"run": "photos_cls"},
        ).json()
        assert answer["labels"][0]["label"] == "face"  # a training photo: the classifier head has learnt it

        hits = httpx.post(
            f"{base}/search", data={"text": "a photo of a motorbike", "index": "photos", "k": "10"}
        ).json()
        assert len(hits["hits"]) == 10 and hits["index_modality"] == "image"
        assert sum(hit["label"] == "motorbike" for hit in hits["hits"]) >= 5  # chance: 10 × 20/60 ≈ 3.3

        clip = next((root / "speech" / "clips").glob("1_*.wav")).read_bytes()  # 16 kHz stereo upload
        answer = httpx.post(
            f"{base}/zeroshot", files={"audio": ("one.wav", clip, "audio/wav")}, data={"run": "speech_clip"}
        ).json()
        assert {label["label"] for label in answer["labels"]} == {"zero", "one", "two"}
        assert sum(label["score"] for label in answer["labels"]) == pytest.approx(1, abs=1e-4)
    finally:
        server.terminate()
        server.wait(30)
