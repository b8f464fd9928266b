"""Composite real-data sets (AV-Digits, spoken digit strings, AV sequences) against independent references.

References used: MNIST images/labels parsed straight from the IDX files (as the
data README says), FSDD clips read with soundfile, trimming by
``librosa.effects.trim``, PCA variance from numpy's ``eigvalsh`` of the
covariance, noise spectra from scipy's Welch estimate.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import welch

from chorus.data import (
    AVDigits,
    AVSequences,
    Collate,
    Degradation,
    DigitStrings,
    LogMel,
    build_dataset,
    dataset_info,
    load_avdigits_config,
    trim_silence,
)
from chorus.data.avdigits import mix_at_snr, noise, pca_energy_removal
from chorus.errors import ConfigError, DataError

TOP_DB, FRAME, HOP = 40.0, 256, 64  # DigitStrings' trimming defaults


@pytest.fixture(scope="module")
def mnist_raw(real_data_root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = real_data_root / "mnist_test"
    images = np.frombuffer(gzip.open(folder / "t10k-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(
        -1, 28, 28
    )
    labels = np.frombuffer(gzip.open(folder / "t10k-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return images, labels


@pytest.fixture(scope="module")
def avd(real_data_root: Path) -> dict[str, AVDigits]:
    return {s: AVDigits(real_data_root, split=s, level="hard") for s in ("train", "test")}


def read_clip(path: str) -> np.ndarray:
    wave, sr = sf.read(path, dtype="float32")
    assert sr == 8000
    return wave


def librosa_trimmed(path: str) -> np.ndarray:
    return librosa.effects.trim(read_clip(path), top_db=TOP_DB, frame_length=FRAME, hop_length=HOP)[0]


def snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    clean = clean.astype(np.float64)
    return float(10 * np.log10(np.mean(clean**2) / np.mean((mixed.astype(np.float64) - clean) ** 2)))


# ----------------------------------------------------------------------------------------------- AV-Digits


def test_avdigits_splits_are_speaker_held_out_and_image_disjoint(avd, mnist_raw):
    train, test = avd["train"], avd["test"]
    assert (len(train), len(test)) == (2500, 500)  # 5 train speakers / theo × 10 digits × 50
    assert load_avdigits_config().test_speakers == ("theo",)
    train_speakers = {train.audio.records[r["audio"]]["speaker"] for r in train.records}
    assert "theo" not in train_speakers and len(train_speakers) == 5
    assert {test.audio.records[r["audio"]]["speaker"] for r in test.records} == {"theo"}
    train_images = [r["image_index"] for r in train.records]
    test_images = [r["image_index"] for r in test.records]
    assert len(set(train_images)) == len(train_images) and len(set(test_images)) == len(test_images)
    assert not set(train_images) & set(test_images)
    # labels agree across modalities for every item: MNIST label from the IDX file, digit from the WAV name
    _, mnist_labels = mnist_raw
    for ds in (train, test):
        for rec, label in zip(ds.records, ds.labels):
            assert mnist_labels[rec["image_index"]] == label
            assert int(Path(ds.audio.records[rec["audio"]]["path"]).name.split("_")[0]) == label


def test_avdigits_is_deterministic_and_seeded(avd, real_data_root):
    test = avd["test"]
    again = AVDigits(real_data_root, split="test", level="hard")
    shard = AVDigits(real_data_root, split="test", level="hard", indices=[7, 123])
    for i in (0, 123):
        a, b = test[i], again[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["audio"], b["audio"])
    assert torch.equal(shard[1]["audio"], test[123]["audio"]) and torch.equal(shard[1]["image"], test[123]["image"])
    # noise differs between items and the seed changes the pairing
    assert not torch.equal(test[0]["image"], test[1]["image"])
    other = AVDigits(real_data_root, split="test", level="hard", seed=1)
    moved = sum(a["image_index"] != b["image_index"] for a, b in zip(test.records, other.records))
    assert moved > 450  # 200 images per digit for 50 clips: a reshuffle keeps ~1/200 in place
    full = AVDigits(real_data_root, split="all", level="hard")
    assert len(full) == 3000 and torch.equal(full[2500]["audio"], test[0]["audio"])


def test_avdigits_clean_sample_is_the_raw_data(real_data_root, mnist_raw):
    clean = build_dataset("avdigits", real_data_root, split="test", level="clean")
    s = clean[42]
    assert set(s) == {"image", "audio", "sample_rate", "label", "speaker", "image_index", "audio_path"}
    images, labels = mnist_raw
    assert s["image"].shape == (1, 28, 28) and s["image"].dtype == torch.float32
    np.testing.assert_array_equal(s["image"][0].numpy(), images[s["image_index"]].astype(np.float32) / 255.0)
    np.testing.assert_array_equal(s["audio"].numpy(), read_clip(s["audio_path"]))
    assert s["sample_rate"] == 8000 and s["speaker"] == "theo" and labels[s["image_index"]] == s["label"]


def test_avdigits_levels_and_bad_config(real_data_root, tmp_path):
    cfg = load_avdigits_config()
    assert cfg.levels["clean"] == Degradation()
    hard = cfg.levels["hard"]
    assert hard.image_pca_variance is not None and hard.audio_snr_db is not None
    with pytest.raises(ConfigError, match="medium"):
        AVDigits(real_data_root, split="test", level="medium")
    with pytest.raises(ConfigError, match="image_pca_variance"):
        Degradation(image_pca_variance=1.5)
    bad = tmp_path / "avd.yaml"
    bad.write_text("levels:\n  hard: {audio_snr: 3}\n")
    with pytest.raises(ConfigError, match="audio_snr"):
        load_avdigits_config(bad)


def test_audio_snr_hits_target(avd):
    test = avd["test"]
    target = load_avdigits_config().levels["hard"].audio_snr_db
    for i in (0, 250, 499):
        s = test[i]
        assert abs(snr_db(read_clip(s["audio_path"]), s["audio"].numpy()) - target) < 0.1
    clean = torch.from_numpy(read_clip(s["audio_path"]))
    for kind, snr in (("pink", 10.0), ("white", 20.0)):
        mixed = mix_at_snr(clean, snr, np.random.default_rng(0), kind)
        assert mixed.dtype == torch.float32 and abs(snr_db(clean.numpy(), mixed.numpy()) - snr) < 0.1
    with pytest.raises(DataError, match="all-zero"):
        mix_at_snr(torch.zeros(100), 0.0, np.random.default_rng(0))


@pytest.mark.parametrize(("kind", "slope"), [("white", 0.0), ("pink", -1.0)])
def test_noise_colour_has_the_right_spectral_slope(kind, slope):
    freqs, psd = welch(noise(2**17, kind, np.random.default_rng(3)), nperseg=4096)
    band = (freqs > 1e-3) & (freqs < 0.4)  # cycles/sample; skip DC and the edge bins
    fitted = np.polyfit(np.log(freqs[band]), np.log(psd[band]), 1)[0]
    assert abs(fitted - slope) < 0.1


@pytest.mark.parametrize("fraction", [0.55, 0.9])
def test_pca_keeps_the_requested_variance_fraction(real_data_root, mnist_raw, fraction):
    images, _ = mnist_raw
    train_x = images[build_dataset("mnist", real_data_root, split="train").records] / 255.0  # what the PCA is fitted on
    flat = train_x.reshape(len(train_x), -1)
    eig = np.linalg.eigvalsh(np.cov(flat, rowvar=False))[::-1]
    ratio = np.cumsum(eig) / eig.sum()
    k = int(np.searchsorted(ratio, fraction, side="right") + 1)  # fewest components reaching the fraction
    recon = pca_energy_removal(train_x, real_data_root, fraction).reshape(len(flat), -1)
    centred = flat - flat.mean(0)
    kept = 1 - ((flat - recon) ** 2).sum() / (centred**2).sum()
    assert fraction <= kept < fraction + eig[k - 1] / eig.sum() + 1e-9
    assert np.linalg.matrix_rank(recon[:300] - flat.mean(0), tol=1e-6) == k


def test_avdigits_logmel_cache_matches_uncached(real_data_root):
    cached = AVDigits(real_data_root, split="test", level="hard", features=LogMel(), cache=True, indices=range(8))
    plain = AVDigits(real_data_root, split="test", level="hard", indices=range(8))
    for i in (0, 7):
        torch.testing.assert_close(cached[i]["audio"], LogMel()(plain[i]["audio"]))
    batch = Collate()([cached[i] for i in range(4)])
    assert batch["image"].shape == (4, 1, 28, 28) and batch["audio"].shape[:2] == (4, 40)
    assert batch["audio_mask"].shape == (4, batch["audio"].shape[2]) and batch["label"].tolist() == cached.labels[:4]


# ------------------------------------------------------------------------------------- spoken digit strings


def test_trim_silence_matches_librosa(real_data_root):
    fsdd = build_dataset("fsdd", real_data_root, split="all")
    for i in np.random.default_rng(0).choice(len(fsdd), 40, replace=False):
        path = fsdd[int(i)]["path"]
        wave = read_clip(path)
        assert trim_silence(torch.from_numpy(wave), TOP_DB, FRAME, HOP) == tuple(
            librosa.effects.trim(wave, top_db=TOP_DB, frame_length=FRAME, hop_length=HOP)[1]
        )
    with pytest.raises(DataError, match="silence"):
        trim_silence(torch.zeros(800))


def check_utterance(u: dict, pause_s: tuple[float, float] = (0.05, 0.4), noise_floor: float = 1e-4) -> None:
    """Every boundary holds exactly the trimmed source clip; everything else is the quiet noise floor."""
    audio = u["audio"].numpy()
    assert u["sample_rate"] == 8000 and len(u["digits"]) == len(u["boundaries"]) == len(u["clip_paths"])
    assert 3 <= len(u["digits"]) <= 7
    previous_end = 0
    outside = np.ones(audio.size, bool)
    for digit, (s0, s1), (i0, i1), path in zip(u["digits"], u["boundaries"], u["boundary_samples"], u["clip_paths"]):
        digit_of_file, speaker_of_file, _ = Path(path).stem.split("_")
        assert int(digit_of_file) == digit and speaker_of_file == u["speaker"]
        np.testing.assert_array_equal(audio[i0:i1], librosa_trimmed(path))
        assert (s0, s1) == (i0 / 8000, i1 / 8000)
        gap = i0 - previous_end
        assert round(pause_s[0] * 8000) <= gap <= round(pause_s[1] * 8000)
        outside[i0:i1] = False
        previous_end = i1
    assert round(pause_s[0] * 8000) <= audio.size - previous_end <= round(pause_s[1] * 8000)
    floor = audio[outside]
    assert 0.5 * noise_floor < floor.std() < 2 * noise_floor  # the gaps are the noise floor, not speech


def test_digit_strings_boundaries_are_exact_and_splits_hold_speakers_out(real_data_root):
    train = build_dataset("digit_strings", real_data_root, split="train", size=30)
    test = DigitStrings(real_data_root, split="test", size=30)
    assert not {r["speaker"] for r in train.records} & {"theo"} and {r["speaker"] for r in test.records} == {"theo"}
    assert len({r["speaker"] for r in train.records}) >= 4  # speakers are drawn from all 5 train speakers
    for u in (train[0], train[29], test[3]):
        check_utterance(u)
    again = DigitStrings(real_data_root, split="train", size=30)
    shard = DigitStrings(real_data_root, split="train", size=30, indices=[29])
    assert torch.equal(again[0]["audio"], train[0]["audio"]) and torch.equal(shard[0]["audio"], train[29]["audio"])
    assert [r["digits"] for r in again.records] == [r["digits"] for r in train.records]
    other_seed = DigitStrings(real_data_root, split="train", size=30, seed=1)
    assert [r["digits"] for r in other_seed.records] != [r["digits"] for r in train.records]


def test_pair_is_the_same_string_by_two_speakers(real_data_root):
    train = DigitStrings(real_data_root, split="train", size=10)
    a, b = train.pair(4)
    assert a["digits"] == b["digits"] == train.records[4]["digits"] and a["speaker"] != b["speaker"]
    check_utterance(a)
    check_utterance(b)
    _, b2 = train.pair(4)
    assert torch.equal(b["audio"], b2["audio"])
    with pytest.raises(ConfigError, match="2 speakers"):
        DigitStrings(real_data_root, split="test", size=2).pair(0)
    two = DigitStrings(real_data_root, split="test", size=2, test_speakers=("theo", "lucas"))
    assert {u["speaker"] for u in two.pair(1)} == {"theo", "lucas"}


def test_digit_strings_info_and_errors(real_data_root):
    info = dataset_info("digit_strings", root=real_data_root, size=5)
    assert info["splits"] == {"train": 5, "test": 5, "all": 10} and info["modalities"] == ["audio"]
    assert 3 <= info["stats"]["digits_min"] <= info["stats"]["digits_max"] <= 7
    with pytest.raises(ConfigError, match="num_digits"):
        DigitStrings(real_data_root, num_digits=(4, 2))
    with pytest.raises(ConfigError, match="bob"):
        DigitStrings(real_data_root, test_speakers=("bob",))


# ---------------------------------------------------------------------------------------------- AV sequences


def test_av_sequences_frames_match_digits_and_audio(real_data_root, mnist_raw):
    images, labels = mnist_raw
    av = AVSequences(real_data_root, split="test", size=6)
    strings = DigitStrings(real_data_root, split="test", size=6)
    test_images = set(build_dataset("mnist", real_data_root, split="test").records)
    for i in range(6):
        v = av[i]
        digits, frames = v["digits"], v["frames"]
        assert frames.dtype == torch.float32 and frames.shape[1:] == (1, 28, 28) and v["fps"] == 25.0
        assert torch.equal(v["audio"], strings[i]["audio"]) and v["boundaries"] == strings[i]["boundaries"]
        assert len(v["frame_segments"]) == len(v["image_indices"]) == len(digits)
        assert v["frame_segments"][0][0] == 0 and v["frame_segments"][-1][1] == frames.shape[0]
        for k, ((f0, f1), image_index) in enumerate(zip(v["frame_segments"], v["image_indices"])):
            assert 3 <= f1 - f0 <= 12 and (k == 0 or v["frame_segments"][k - 1][1] == f0)
            assert labels[image_index] == digits[k] and image_index in test_images
            expected = torch.from_numpy(images[image_index] / 255.0).float()
            assert torch.equal(frames[f0:f1, 0], expected.expand(f1 - f0, 28, 28))
            assert (v["frame_position"][f0:f1] == k).all() and (v["frame_digits"][f0:f1] == digits[k]).all()
    again = AVSequences(real_data_root, split="test", size=6)
    assert torch.equal(again[2]["frames"], av[2]["frames"])
    with pytest.raises(ConfigError, match="frames_per_digit"):
        AVSequences(real_data_root, frames_per_digit=(0, 3))
