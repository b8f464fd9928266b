"""``chorus bench align`` on a reduced configuration, on real FSDD / MNIST data.

The whole benchmark runs once (one seed, a few dozen utterances, a few dozen
steps) and is checked for its outputs; the methods that need little or no
training are checked against their baselines with margins:

- forced alignment of a frame tagger must beat uniform segmentation's mean
  boundary error by ≥ 30 % (uniform is ~160 ms on these utterances; pauses of
  50–400 ms make the equal split drift);
- MFCC DTW between two speakers must beat the diagonal mapping by ≥ 30 % and
  put more speech frames on the right word;
- the segmental audio ↔ video alignment with its embedding-free position cost
  must beat the diagonal by ≥ 10 points (the units come from energy and frame
  differencing, which need no training).

Independent checks of the scoring helpers use hand-made paths whose answer is
known (the identity path scores 0 ms and 100 %).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from chorus.bench import load_benchmark
from chorus.bench.driver import run_driver
from chorus.eval.report import invocation

align_bench = load_benchmark("align")


def test_identity_path_scores_perfectly() -> None:
    frames = 50
    position = np.full(frames, -1)
    position[10:20], position[30:45] = 0, 1
    item = {
        "bounds": np.array([[10.0, 20.0], [30.0, 45.0]]),
        "position": position,
        "audio": np.zeros((40, frames)),
        "digits": [3, 4],
    }
    path = np.stack([np.arange(frames)] * 2, axis=1)
    errors, accuracy = align_bench.score_pair_path(path, item, item)
    assert errors.max() == 0.0 and accuracy == 1.0
    shifted = np.stack([np.arange(frames), np.minimum(np.arange(frames) + 3, frames - 1)], axis=1)
    errors, accuracy = align_bench.score_pair_path(shifted, item, item)
    assert np.allclose(errors, 30.0)  # 3 frames of 10 ms
    assert accuracy == pytest.approx((7 + 12) / 25)


def test_nearest_word_gives_pauses_to_the_closer_word() -> None:
    position = np.array([-1, 0, 0, -1, -1, -1, -1, 1, -1])
    words = align_bench.nearest_word(position, np.array([[1.0, 3.0], [7.0, 8.0]]))
    # Frame 5 is 2 from the end of word 0 (3) and 2 from the start of word 1 (7): ties go to the earlier word.
    assert words.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_attention_targets_keep_digit_nine_apart_from_none() -> None:
    items = [
        {
            "audio": torch.zeros(40, 30),
            "frame_labels": torch.zeros(30, dtype=torch.long),
            "digits": torch.tensor(digits),
        }
        for digits in ([9, 0, 9], [4])
    ]
    batch = align_bench.attention_collate(items)
    assert batch["targets"].tolist() == [[9, 0, 9], [4, 0, 0]]
    assert batch["target_mask"].tolist() == [[True, True, True], [True, False, False]]
    # The recogniser's "none" class is num_labels = 10, which no digit may take.
    assert int(batch["targets"].max()) < 10


def test_pause_padded_clip_marks_exactly_the_trimmed_speech() -> None:
    strings = argparse.Namespace(top_db=40.0, pause_s=(0.05, 0.4), noise_floor=1e-4)
    rng = np.random.default_rng(0)
    wave = torch.zeros(4000)
    wave[1000:3000] = 0.5 * torch.sin(torch.arange(2000) * 0.3)  # 250 ms tone inside 500 ms of silence
    logmel = align_bench.LogMel(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40)
    clip = align_bench.pause_padded_clip(wave, logmel, strings, rng)
    speech = clip["speech_mask"]
    assert clip["audio"].shape == (40, len(speech))
    # The trim keeps ~2000 samples of tone (25 frames of 10 ms, ±1 window at each edge); pauses are 50-400 ms each.
    assert 23 <= int(speech.sum()) <= 30
    frames = np.flatnonzero(speech.numpy())
    assert frames.max() - frames.min() + 1 == len(frames)  # one contiguous span
    assert frames.min() >= 5 and len(speech) - 1 - frames.max() >= 5


@pytest.fixture(scope="module")
def results(real_data_root, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench_align")
    argv = [
        "--quick",
        "seeds=[0]",
        "train_size=24",
        "test_size=6",
        "steps=20",
        "--out",
        str(out),
        f"data_root={real_data_root}",
        "device=cpu",
    ]
    result = run_driver("align", align_bench, argv, progress=lambda _: None)["results"]
    result["out"] = out
    return result


def test_writes_every_report(results) -> None:
    out = results["out"]
    for name in (
        "results.json",
        "results.md",
        "method_card_forced_alignment_frame_label_cnn_viterbi.md",
        "forced_alignment.png",
        "speaker_dtw.png",
        "av_dtw.png",
        "av_segments.png",
        "attention.png",
    ):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    assert saved["command"] == invocation()  # the command line that produced the results
    assert "uniform segmentation" in (out / "results.md").read_text()


def test_forced_alignment_beats_uniform_segmentation(results) -> None:
    uniform = results["forced"]["uniform"]["boundary_ms"]
    tagger = results["forced"]["tagger"][0]["boundary_ms"]
    assert tagger < 0.7 * uniform, (tagger, uniform)


def test_mfcc_dtw_beats_the_diagonal(results) -> None:
    diagonal, mfcc = results["speaker_dtw"]["diagonal"], results["speaker_dtw"]["MFCC"]
    assert mfcc["boundary_ms"] < 0.7 * diagonal["boundary_ms"], (mfcc, diagonal)
    assert mfcc["frame_acc"] > diagonal["frame_acc"]


def test_attention_chance_is_a_share(results) -> None:
    summary = results["attention"][0]
    # Words take well under half of an utterance's frames (pauses of 50-400 ms surround each).
    assert 0.0 < summary["chance"] < 0.5
    assert 0.0 <= summary["peak_hit"] <= 1.0 and 0.0 <= summary["uniform_peak_hit"] <= 1.0


def test_segmental_av_alignment_beats_the_diagonal(results) -> None:
    av = results["av"]
    assert av["segmental_position"]["frame_acc"] > av["diagonal"]["frame_acc"] + 0.10, av
    assert 0.0 <= av["contrastive_dtw"][0]["segmental_frame_acc"] <= 1.0
    # Slides are identical frames, so differencing finds exactly one shot per digit.
    assert av["segments"]["shot_count_match"] == 1.0
