"""The speaker-robust log-mel front of ``audio_cnn``: noise floor, CMN, mel-axis warp, SpecAugment masks."""

from __future__ import annotations

import math

import pytest
import torch

from chorus.encoders import build_encoder
from chorus.encoders.speaker_robust import SPEECH_TOWER, MelAugment, floor_dynamic_range, utterance_cmn, warp_mel_axis
from chorus.errors import ConfigError

N_MELS = 40


def _batch(lengths: tuple[int, ...] = (30, 18)) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(len(lengths), N_MELS, max(lengths)) * 3 - 5
    mask = torch.arange(max(lengths))[None, :] < torch.tensor(lengths)[:, None]
    return x, mask


def test_cmn_centres_real_frames_ignores_padding_and_removes_a_channel_filter() -> None:
    """A fixed filter (per-band multiplicative gain) is a per-band offset in log-mel: CMN cancels it."""
    x, mask = _batch()
    y = utterance_cmn(x, mask)
    torch.testing.assert_close(y[1, :, :18].mean(-1), torch.zeros(N_MELS), atol=1e-5, rtol=0)
    assert y[1, :, 18:].abs().max() == 0  # padding stays zero
    torch.testing.assert_close(utterance_cmn(x[1:, :, :18], None)[0], y[1, :, :18])  # as the unpadded clip
    colour = torch.linspace(-4, 2, N_MELS)[None, :, None]
    torch.testing.assert_close(utterance_cmn(x + colour, mask), y, atol=1e-4, rtol=0)


def test_floor_is_relative_to_the_clips_own_peak_over_real_frames() -> None:
    x, mask = _batch()
    x[1, 0, 25] = 100.0  # a padded frame louder than anything real must not set the floor
    y = floor_dynamic_range(x, mask, top_db=20.0)
    peak = x[1, :, :18].max()
    floor = peak - 20 * math.log(10) / 10  # 20 dB in natural-log power
    torch.testing.assert_close(y[1, :, :18].min(), floor)
    assert torch.equal(y[1, :, :18][x[1, :, :18] > floor], x[1, :, :18][x[1, :, :18] > floor])
    torch.testing.assert_close(floor_dynamic_range(x + 7.0, mask, 20.0)[:, :, :18], y[:, :, :18] + 7.0)  # gain


def test_warp_moves_a_formant_by_the_factor() -> None:
    x = torch.zeros(3, N_MELS, 5)
    x[:, 20] = 1.0
    warped = warp_mel_axis(x, torch.tensor([1.0, 1.25, 0.8]))
    torch.testing.assert_close(warped[0], x[0])
    assert warped[1].sum(-1).argmax() == 16  # band 16 reads band 20: a longer vocal tract lowers formants
    assert warped[2].sum(-1).argmax() == 25


def test_augment_is_identity_in_eval_and_masks_only_real_frames_in_training() -> None:
    x, mask = _batch()
    x = utterance_cmn(x, mask)
    augment = MelAugment(warp=0.0, freq_masks=1, freq_width=5, time_masks=1, time_fraction=0.3).eval()
    assert torch.equal(augment(x, mask), x)
    augment.train()
    torch.manual_seed(1)
    changed = [(augment(x, mask) != x) for _ in range(20)]
    assert any(c.any() for c in changed)
    for c in changed:
        assert not c[1, :, 18:].any()  # time masks stay inside the clip; padding keeps its zeros
        whole_bands = c.all(-1).sum(-1)  # a frequency mask covers a band over the whole clip
        assert (whole_bands <= 5).all()
    with pytest.raises(ConfigError):
        MelAugment(warp=1.5)


def test_speech_tower_is_padding_and_gain_invariant() -> None:
    torch.manual_seed(0)
    plain = build_encoder("audio_cnn", "tiny", n_mels=N_MELS).eval()
    torch.manual_seed(0)
    robust = build_encoder("audio_cnn", "tiny", n_mels=N_MELS, **SPEECH_TOWER).eval()
    x, mask = _batch()
    with torch.no_grad():
        out = robust(x, mask).pooled
        torch.testing.assert_close(robust(x + 3.0, mask).pooled, out, atol=1e-4, rtol=0)  # a louder recording
        torch.testing.assert_close(robust(x[1:, :, :18], None).pooled[0], out[1], atol=1e-5, rtol=0)
        assert (plain(x + 3.0, mask).pooled - plain(x, mask).pooled).abs().max() > 1e-2  # the plain tower moves
