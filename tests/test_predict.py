"""``chorus predict`` and self-contained run folders: a copied run predicts and serves with no data root.

The runs are the serve tests' session runs (a digits image–text CLIP trained long enough to beat
chance clearly, an FSDD audio–text CLIP of a few steps). Each test copies a run folder to a fresh
place and points ``CHORUS_DATA`` at an empty folder, so any attempt to read a dataset would fail.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from test_serve_support import digit_images, trained_run

from chorus import cli
from chorus.data import build_dataset
from chorus.errors import DataError
from chorus.predict import expand_inputs, predict
from chorus.serve import create_app
from chorus.serve.runs import LoadedRun


@pytest.fixture(scope="module")
def original(tmp_path_factory, real_data_root):
    return trained_run(tmp_path_factory, "digits", real_data_root)


@pytest.fixture()
def copied(original, tmp_path, monkeypatch):
    """The digits run copied elsewhere, with the data root pointing at an empty folder."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("CHORUS_DATA", str(empty))
    return shutil.copytree(original, tmp_path / "elsewhere" / "digits")


@pytest.fixture()
def images(tmp_path):
    """30 real held-out digits as PNG files (one in a sub-folder) and a file that is not an image."""
    folder = tmp_path / "my-images"
    (folder / "more").mkdir(parents=True)
    labels = {}
    for i, (png, label) in enumerate(digit_images(30)):
        path = folder / ("more" if i == 0 else "") / f"digit_{i:02d}.png"
        path.write_bytes(png)
        labels[str(path)] = label
    (folder / "notes.txt").write_text("not an image")
    return folder, labels


def test_copied_run_predicts_without_data_like_the_original(original, copied, images):
    folder, labels = images
    found = predict(LoadedRun(copied), [folder], top_k=3)
    assert sorted(p.input for p in found) == sorted(labels)  # folder expanded, sub-folder included, .txt skipped
    classes = LoadedRun(copied).classes
    correct = sum(classes.index(p.labels[0][0]) == labels[p.input] for p in found)
    assert correct / len(found) >= 0.5, correct  # chance is 0.1
    assert all(len(p.labels) == 3 and p.labels[0][1] >= p.labels[1][1] >= p.labels[2][1] for p in found)
    # The copy answers exactly as the original folder (with the data root still set) does.
    again = predict(LoadedRun(original), [folder], top_k=3)
    assert [(p.input, p.labels) for p in again] == [(p.input, p.labels) for p in found]


def test_copied_run_serves_without_data(copied, images):
    folder, _ = images
    png = next(folder.glob("*.png")).read_bytes()
    with TestClient(create_app(copied)) as client:
        assert client.get("/runs").json()["runs"][0]["classes"][:2] == ["zero", "one"]
        got = client.post("/zeroshot", files={"image": ("d.png", png, "image/png")}).json()
    assert got["run"] == "digits" and abs(sum(label["score"] for label in got["labels"]) - 1) < 1e-5


def test_predict_cli_table_json_csv(copied, images, capsys):
    folder, labels = images
    assert cli.main(["predict", str(copied), str(folder), "--text", "the number seven.", "--top-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["input", "modality", "prediction"]
    assert sum("%" in line for line in table) == len(labels)
    assert any(line.startswith("the number seven.") and "embedding[64]" in line for line in table)

    assert cli.main(["predict", str(copied), str(folder), "--json", "--text", "seven"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == len(labels) + 1 and {r["run"] for r in records} == {"digits"}
    probs = [label["probability"] for label in records[0]["labels"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True)
    vector = np.array(records[-1]["embedding"])
    assert records[-1]["modality"] == "text" and vector.shape == (64,) and abs(np.linalg.norm(vector) - 1) < 1e-5

    assert cli.main(["predict", str(copied), str(folder), "--csv", "--top-k", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(labels) and {r["rank"] for r in rows} == {"1"}
    assert {r["input"] for r in rows} == set(labels) and all(0 < float(r["probability"]) <= 1 for r in rows)


def test_predict_audio_files(tmp_path_factory, real_data_root, tmp_path, monkeypatch):
    run = shutil.copytree(trained_run(tmp_path_factory, "fsdd", real_data_root), tmp_path / "fsdd")
    sample = build_dataset("fsdd", root=str(real_data_root), split="test")[0]
    wave = sample["audio"].numpy()
    sf.write(tmp_path / "clip.wav", wave, sample["sample_rate"])
    sf.write(tmp_path / "clip.flac", wave, 16000 if sample["sample_rate"] != 16000 else 8000)  # resampled on load
    monkeypatch.setenv("CHORUS_DATA", str(tmp_path / "nothing"))
    found = predict(LoadedRun(run), [tmp_path / "clip.wav", tmp_path / "clip.flac"], top_k=10)
    for p in found:
        assert p.modality == "audio" and len(p.labels) == 10 and abs(sum(s for _, s in p.labels) - 1) < 1e-5
    embedded = predict(LoadedRun(run), [tmp_path / "clip.wav"], embed=True)[0]
    assert embedded.labels is None and abs(np.linalg.norm(embedded.embedding) - 1) < 1e-5


def test_inputs_that_cannot_be_predicted_are_one_line_errors(copied, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image .* or audio"):
        expand_inputs([tmp_path / "empty"])
    with pytest.raises(DataError, match="no such file"):
        expand_inputs([tmp_path / "missing.png"])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert cli.main(["predict", str(copied), str(tmp_path / "broken.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.png" in err and "Traceback" not in err
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(800, dtype=np.float32), 8000)
    assert cli.main(["predict", str(copied), str(wav)]) == 2  # the digits run has no audio encoder
    assert "no audio encoder" in capsys.readouterr().err
