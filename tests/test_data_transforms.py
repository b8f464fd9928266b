"""Image/audio transforms against independent references (Pillow by hand, librosa, analytic sines)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch
from PIL import Image

from chorus.data import FSDD, ImageTransform, LogMel, SampleTransform, build_dataset, load_audio, resample
from chorus.errors import ConfigError


def _photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))


def test_eval_view_matches_manual_resize_and_center_crop():
    img = _photo()
    out = ImageTransform(30, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))(img)
    ref = np.asarray(img.resize((45, 30), Image.Resampling.BICUBIC).crop((7, 0, 37, 30)), dtype=np.float32) / 255.0
    ref = (ref - np.array([0.1, 0.2, 0.3])) / np.array([0.5, 0.25, 2.0])
    assert out.shape == (3, 30, 30) and out.dtype == torch.float32
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_defaults_map_to_minus_one_one_and_grey_channel(real_data_root):
    ds = build_dataset(
        "mnist", real_data_root, split="test", transform=SampleTransform({"image": ImageTransform(28, channels=1)})
    )
    x = ds[0]["image"]
    raw = np.asarray(build_dataset("mnist", real_data_root, split="test")[0]["image"], dtype=np.float32)
    assert x.shape == (1, 28, 28)
    np.testing.assert_allclose(x[0].numpy(), raw / 127.5 - 1.0, atol=1e-6)  # size unchanged → pixels exact


def test_train_crop_shape_randomness_and_flip():
    img = _photo()
    t = ImageTransform(24, train=True, flip=False, scale=(0.3, 0.6))
    torch.manual_seed(0)
    a, b = t(img), t(img)
    assert a.shape == b.shape == (3, 24, 24) and not torch.equal(a, b)
    torch.manual_seed(0)
    assert torch.equal(t(img), a)  # controlled by torch's RNG
    # A left-right symmetric image is unchanged by flips: whole-image crops must then agree with the eval view.
    sym = Image.fromarray(np.concatenate([np.asarray(img)[:, :45], np.asarray(img)[:, :45][:, ::-1]], axis=1))
    full = ImageTransform(24, train=True, flip=True, scale=(1.0, 1.0), ratio=(1.5, 1.5))
    ref = torch.from_numpy(
        np.asarray(sym.resize((24, 24), Image.Resampling.BICUBIC), dtype=np.float32) / 127.5 - 1
    ).permute(2, 0, 1)
    for _ in range(4):
        torch.testing.assert_close(full(sym), ref, atol=2 / 255 * 2, rtol=0)


def test_image_transform_rejects_bad_config():
    with pytest.raises(ConfigError):
        ImageTransform(32, channels=2)
    with pytest.raises(ConfigError):
        ImageTransform(32, mean=(0.5, 0.5))


def test_logmel_matches_librosa_on_real_clip(real_data_root):
    wave, sr = load_audio(real_data_root / "fsdd" / "recordings" / "3_jackson_7.wav", expected_sr=8000)
    ours = LogMel()(wave)
    mel = librosa.feature.melspectrogram(
        y=wave.numpy(),
        sr=sr,
        n_fft=256,
        hop_length=80,
        n_mels=40,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        htk=False,
        norm="slaney",
    )
    ref = np.log(mel + 1e-6)
    assert ours.shape == ref.shape == (40, 1 + wave.numel() // 80)
    # Same definition, float32 FFTs on both sides: observed max |diff| ~1e-5 nats over a ~15-nat range.
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-4)


def test_logmel_batched_and_bf16_autocast(real_data_root):
    ds = FSDD(real_data_root, split="test")
    a, b = ds[0]["audio"][:2000], ds[1]["audio"][:2000]
    lm = LogMel()
    batched = lm(torch.stack([a, b]))
    assert batched.shape == (2, 40, 26)
    torch.testing.assert_close(batched[1], lm(b))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = lm(torch.stack([a, b]).bfloat16())
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, lm(torch.stack([a, b]).bfloat16().float()))
    assert lm.num_frames(2000) == 26


def test_resample_preserves_a_sine():
    sr, f = 8000, 440.0
    t = torch.arange(8000) / sr
    up = resample(torch.sin(2 * math.pi * f * t), 8000, 16000)
    t2 = torch.arange(16000) / 16000
    assert up.shape == (16000,)
    # away from the edges (filter transients) the resampled sine matches the analytic one
    torch.testing.assert_close(up[200:-200], torch.sin(2 * math.pi * f * t2)[200:-200], atol=1e-2, rtol=0)
    down = resample(up, 16000, 8000)
    torch.testing.assert_close(down[100:-100], torch.sin(2 * math.pi * f * t)[100:-100], atol=1e-2, rtol=0)


def test_sample_transform_only_touches_present_keys():
    st = SampleTransform({"image": lambda x: x * 2, "audio": lambda x: x + 1})
    assert st({"image": 3, "label": 1}) == {"image": 6, "label": 1}
