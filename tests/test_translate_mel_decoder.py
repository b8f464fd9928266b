"""The image → speech mel decoder on real FSDD recordings: time normalisation and learned digit templates."""

from __future__ import annotations

import pytest
import torch

from chorus.data import FSDD, LogMel
from chorus.errors import DataError
from chorus.train import TrainConfig, Trainer
from chorus.translate.mel_decoder import MelDecoder, SpeechTargets, speaker_normalise, time_normalise


@pytest.fixture(scope="module")
def mels(real_data_root) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Log-mels of 30 recordings per digit (speaker ``theo``'s 500 held-out clips, first 300)."""
    fsdd = FSDD(real_data_root, split="test")
    logmel = LogMel()
    items = [fsdd[i] for i in range(300)]
    return [logmel(s["audio"]) for s in items], torch.tensor([s["label"] for s in items])


def test_time_normalise_keeps_lengths_and_round_trips(mels):
    clips, _ = mels
    resampled, log_frames = time_normalise(clips, 48)
    assert resampled.shape == (len(clips), clips[0].shape[0], 48)
    assert torch.equal(log_frames.exp().round().long(), torch.tensor([m.shape[-1] for m in clips]))
    # stretching back to the original length recovers a smooth spectrogram closely (≪ its own frame-to-frame change)
    back = torch.nn.functional.interpolate(resampled[:1], size=clips[0].shape[-1], mode="linear", align_corners=True)[0]
    error = (back - clips[0]).abs().mean()
    frame_change = (clips[0][:, 1:] - clips[0][:, :-1]).abs().mean()
    assert error < frame_change


def test_time_normalise_rejects_bad_input():
    with pytest.raises(DataError, match="T >= 2"):
        time_normalise([torch.zeros(40, 1)], 48)
    with pytest.raises(DataError):
        time_normalise([], 48)


def test_decoder_learns_each_digits_template(mels, tmp_path):
    """Conditioned on a one-hot digit, the output is nearest to that digit's median spectrogram (≥ 8 of 10),
    and its predicted duration is within 20 % of that digit's median duration; a decoder that ignored the
    condition would match one digit in ten."""
    clips, labels = mels
    data = SpeechTargets(clips, torch.nn.functional.one_hot(labels, 10).float(), frames=48)
    targets, log_frames = data.targets, data.log_frames
    torch.manual_seed(0)
    decoder = MelDecoder.from_targets(data, hidden=128)
    cfg = TrainConfig(
        max_steps=150, batch_size=64, lr=2e-3, warmup_steps=10, seed=0, progress=False, tensorboard=False, log_every=150
    )
    Trainer(decoder, data, cfg, tmp_path).fit()
    decoder.eval()
    with torch.no_grad():
        mel, predicted_log_frames = decoder.predict(torch.eye(10))
    medians = torch.stack([targets[labels == d].median(0).values for d in range(10)])
    distance = (mel[:, None] - medians[None]).abs().mean((-1, -2))  # [generated digit, template digit]
    assert int((distance.argmin(1) == torch.arange(10)).sum()) >= 8
    median_frames = torch.stack([log_frames[labels == d].median() for d in range(10)]).exp()
    assert ((predicted_log_frames.exp() / median_frames - 1).abs() < 0.2).all()
    generated = decoder.generate(torch.eye(10))
    assert [m.shape[-1] for m in generated] == predicted_log_frames.exp().round().clamp_min(2).long().tolist()


def test_speaker_normalise_removes_each_recordings_band_colouring(mels):
    """The same word through two different 'microphones' (per-band log offsets) becomes the same target."""
    clip = mels[0][0]
    colour = torch.linspace(-2.0, 2.0, clip.shape[0])[:, None]
    a, b, c = speaker_normalise([clip + colour, clip, clip - colour], top_db=1000.0)  # no floor: CMN alone
    assert torch.allclose(a, c, atol=1e-4) and torch.allclose(a, b, atol=1e-4)
    assert torch.allclose(a.mean(-1), clip.mean(-1), atol=1e-4)  # the common level: the median band means
    floor = clip.max() - 40 * torch.log(torch.tensor(10.0)) / 10
    (plain,) = speaker_normalise([clip])
    assert torch.allclose(plain, torch.maximum(clip, floor), atol=1e-4)  # one clip: its own level, floored
