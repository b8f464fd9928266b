"""Bad-data policy on corrupted copies of real files, plus fuzzing of the decoders."""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from chorus.data import Collate, build_dataset, decode_audio, decode_image, load_audio, resample
from chorus.errors import DataError

WAVS = ["0_george_0.wav", "1_jackson_0.wav", "2_lucas_0.wav", "3_theo_0.wav"]


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])


@pytest.fixture
def bad_fsdd(real_data_root, tmp_path) -> Path:
    src, dst = real_data_root / "fsdd" / "recordings", tmp_path / "fsdd" / "recordings"
    dst.mkdir(parents=True)
    rows = []
    for name in WAVS:
        shutil.copyfile(src / name, dst / name)
        d, spk, idx = name[:-4].split("_")
        rows.append([f"recordings/{name}", d, spk, idx, "test", sf.info(str(src / name)).frames])
    data = (dst / WAVS[1]).read_bytes()
    (dst / WAVS[1]).write_bytes(data[: len(data) // 2])  # truncated
    wave, _ = load_audio(dst / WAVS[2])
    sf.write(dst / WAVS[2], resample(wave, 8000, 16000).numpy(), 16000, subtype="PCM_16")  # wrong rate
    (dst / WAVS[3]).write_bytes(b"this is not audio at all" * 10)
    _write_csv(tmp_path / "fsdd" / "metadata.csv", ["path", "digit", "speaker", "index", "split", "num_samples"], rows)
    return tmp_path


def test_fsdd_raise_names_file_and_problem(bad_fsdd):
    ds = build_dataset("fsdd", bad_fsdd, split="test")
    assert ds[0]["audio"].numel() > 0
    for i, problem in [(1, "truncated WAV"), (2, "16000 Hz, expected 8000"), (3, "cannot decode audio")]:
        with pytest.raises(DataError, match=problem) as info:
            ds[i]
        assert WAVS[i] in str(info.value)


def test_fsdd_skip_logs_counts_and_training_continues(bad_fsdd, caplog):
    ds = build_dataset("fsdd", bad_fsdd, split="test", on_error="skip")
    collate = Collate()
    with caplog.at_level(logging.WARNING, logger="chorus.data"):
        batches = list(DataLoader(ds, batch_size=2, collate_fn=collate))
    assert ds.skipped == 3 and collate.dropped == 3
    assert batches[0]["audio"].shape[0] == 1 and batches[1] is None
    assert sum(WAVS[i] in caplog.text for i in (1, 2, 3)) == 3


def test_image_and_caption_policies(real_data_root, tmp_path):
    src = real_data_root / "caltech101"
    (tmp_path / "caltech101" / "images" / "ant").mkdir(parents=True)
    shutil.copyfile(
        src / "images" / "ant" / "image_0001.jpg", tmp_path / "caltech101" / "images" / "ant" / "image_0001.jpg"
    )
    (tmp_path / "caltech101" / "images" / "ant" / "image_0002.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 50)
    (tmp_path / "caltech101" / "classes.txt").write_text("0\tant\tant\n")
    _write_csv(
        tmp_path / "caltech101" / "metadata.csv",
        ["path", "label", "class_name"],
        [["images/ant/image_0001.jpg", 0, "ant"], ["images/ant/image_0002.jpg", 0, "ant"]],
    )
    ds = build_dataset("caltech101", tmp_path, split="all")
    assert ds[0]["image"].size == (96, 96)
    with pytest.raises(DataError, match="image_0002.jpg: cannot decode image"):
        ds[1]
    skip = build_dataset("caltech101", tmp_path, split="all", on_error="skip")
    assert skip[1] is None and skip.skipped == 1

    coco = tmp_path / "coco_captions_mini"
    (coco / "images").mkdir(parents=True)
    shutil.copyfile(
        real_data_root / "coco_captions_mini" / "images" / "val2017_000000000139.jpg", coco / "images" / "a.jpg"
    )
    _write_csv(
        coco / "captions.csv",
        ["path", "image_id", "caption_id", "caption"],
        [["images/a.jpg", 1, 10, "A kitchen."], ["images/a.jpg", 1, 11, "  "]],
    )
    pairs = build_dataset("coco_captions", tmp_path, split="all")
    assert pairs[0]["text"] == "A kitchen."
    with pytest.raises(DataError, match="empty caption \\(caption_id 11\\)"):
        pairs[1]
    images = build_dataset("coco_captions", tmp_path, split="all", mode="images", on_error="skip")
    assert images[0] is None and images.skipped == 1


def test_decoders_accept_real_files(real_data_root):
    wav = (real_data_root / "fsdd" / "recordings" / WAVS[0]).read_bytes()
    wave, sr = decode_audio(wav, "x.wav", expected_sr=8000)
    assert sr == 8000 and wave.numel() == sf.info(str(real_data_root / "fsdd" / "recordings" / WAVS[0])).frames
    img = decode_image((real_data_root / "caltech101" / "images" / "ant" / "image_0001.jpg").read_bytes(), "x.jpg")
    assert img.size == (96, 96)


def _only_data_errors(fn, data: bytes) -> None:
    try:
        fn(data)
    except DataError:
        pass  # anything else propagates and fails the test


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes(data):
    _only_data_errors(lambda d: decode_image(d, "fuzz"), data)
    _only_data_errors(lambda d: decode_audio(d, "fuzz", 8000), data)
    _only_data_errors(lambda d: decode_audio(b"RIFF" + d[:4] + b"WAVE" + d[4:], "fuzz", None), data)


@FUZZ
@given(st.data())
def test_fuzz_mutated_real_files(real_data_root, data):
    wav = (real_data_root / "fsdd" / "recordings" / WAVS[0]).read_bytes()
    jpg = (real_data_root / "caltech101" / "images" / "ant" / "image_0001.jpg").read_bytes()
    for raw, fn in ((wav, lambda d: decode_audio(d, "m.wav", 8000)), (jpg, lambda d: decode_image(d, "m.jpg"))):
        buf = bytearray(raw[: data.draw(st.integers(0, len(raw)))])
        for _ in range(data.draw(st.integers(0, 8))):
            if buf:
                pos = st.one_of(
                    st.integers(0, min(63, len(buf) - 1)), st.integers(0, len(buf) - 1)
                )  # headers get extra attention
                buf[data.draw(pos)] = data.draw(st.integers(0, 255))
        _only_data_errors(fn, bytes(buf))
