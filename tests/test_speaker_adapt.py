"""Unsupervised speaker adaptation of the CTC recogniser: the objective, what moves, the source decoding kept at
zero steps, the objective lowered on a shifted voice with the blank kept, and ``chorus transcribe --adapt``."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
from torch import nn

from chorus.cli import main
from chorus.data.audio import LogMel
from chorus.data.collate import pad_time
from chorus.data.sequences import DigitStrings, digits_to_text
from chorus.encoders.speaker_robust import warp_mel_axis
from chorus.errors import ConfigError, DataError
from chorus.train import TrainConfig
from chorus.translate.recognizer import CTCRecognizer, JointCTCAttention, SpeechEncoder
from chorus.translate.speaker_adapt import AdaptConfig, adapt_to_speaker, class_confusion, word_frame_objective
from chorus.translate.speech_data import load_strings
from chorus.translate.speech_runs import (
    SpeechExperiment,
    SpeechModelConfig,
    StringsConfig,
    decode_items,
    train_recognizer,
)

KW = {"num_digits": (1, 3), "pause_s": (0.05, 0.2), "gain_db": 6.0}


def _small() -> CTCRecognizer:
    torch.manual_seed(0)
    return CTCRecognizer(SpeechEncoder(n_mels=40, width=32, layers=1, heads=2)).eval()


def test_class_confusion_is_zero_when_certain_and_largest_when_uniform():
    certain = torch.eye(4)[[0, 1, 2, 3, 1, 0]]
    assert class_confusion(certain).item() == pytest.approx(0.0, abs=1e-6)
    assert class_confusion(torch.full((6, 4), 0.25)).item() == pytest.approx(3 / 4, abs=1e-6)
    # two classes that always share their frames: each row of the normalised correlation is half off-diagonal
    shared = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert class_confusion(shared).item() == pytest.approx((0.5 + 0.5 + 0.0) / 3, abs=1e-6)


def test_zero_steps_decode_exactly_as_the_source_and_only_layernorms_move():
    model = _small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mels = [torch.randn(40, n) for n in (60, 75, 90, 48)]
    audio = torch.nn.utils.rnn.pad_sequence([m.t() for m in mels], batch_first=True).transpose(1, 2)
    mask = torch.zeros(4, audio.shape[-1], dtype=torch.bool)
    for i, m in enumerate(mels):
        mask[i, : m.shape[1]] = True
    same = adapt_to_speaker(model, mels, AdaptConfig(steps=0))
    combined, _ = same.log_probs(audio, mask)
    source, _ = model.log_probs(audio, mask)
    torch.testing.assert_close(combined, source, atol=1e-5, rtol=0)
    for beam in (0, 4):
        assert decode_items(same, mels, beam=beam) == decode_items(model, mels, beam=beam)

    adapted = adapt_to_speaker(model, mels, AdaptConfig(steps=5, lr=0.05))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the input model is untouched
    norms = {f"{n}." for n, m in adapted.adapted.named_modules() if isinstance(m, nn.LayerNorm)}
    moved = {k for k, v in adapted.adapted.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(any(k.startswith(n) for n in norms) for k in moved), moved
    assert all(torch.equal(v, before[k]) for k, v in adapted.source.state_dict().items())


def test_bad_adaptation_requests_are_refused():
    with pytest.raises(ConfigError):
        AdaptConfig(entropy_weight=1.5)
    with pytest.raises(ConfigError):
        AdaptConfig(batch_size=0)
    with pytest.raises(DataError):
        adapt_to_speaker(_small(), [])
    with pytest.raises(DataError, match=r"\[1\]"):
        adapt_to_speaker(_small(), [torch.randn(40, 50), torch.full((40, 50), float("nan"))])
    attention = JointCTCAttention(SpeechEncoder(n_mels=40, width=32, layers=1, heads=2), layers=1, heads=2)
    with pytest.raises(ConfigError):
        adapt_to_speaker(attention, [torch.randn(40, 50)])  # type: ignore[arg-type]


def test_adaptation_lowers_its_objective_on_a_shifted_voice_and_transcribe_adapts(real_data_root, tmp_path, capsys):
    """A short-trained recogniser reads new strings by the training voices with every log-mel's frequency axis
    scaled by 0.8 (formants 25 % higher, as a shorter vocal tract's): adapting to those utterances without
    transcripts must lower the objective on their word frames by a stated share while keeping every frame's blank
    probability, and ``chorus transcribe --adapt`` must print the library's adapted decoding. (That the adaptation
    lowers the WER of well-trained recognisers on new voices is measured in the speech benchmark, not here: a
    300-step model is too weak for it.)"""
    cfg = SpeechExperiment(
        "speech_ctc",
        StringsConfig(train_size=128, num_digits=(1, 3), pause_s=(0.05, 0.2), train_snr_db=[]),
        SpeechModelConfig(task="recognize", system="ctc", width=64, layers=1, beam=4),
        TrainConfig(max_steps=300, batch_size=16, lr=3e-3, warmup_steps=20, progress=False, tensorboard=False),
    )
    logmel = LogMel()
    train = load_strings(DigitStrings(real_data_root, split="train", size=128, **KW), logmel)
    run = tmp_path / "run"
    model = train_recognizer(cfg, train, run)
    assert isinstance(model, CTCRecognizer)
    test = load_strings(DigitStrings(real_data_root, split="train", size=48, seed=5, **KW), logmel)
    shifted = [warp_mel_axis(it.mel[None], torch.tensor([0.8]))[0] for it in test]
    adapted = adapt_to_speaker(model, shifted)
    audio, mask = pad_time(shifted, "audio")
    with torch.no_grad():
        source, frame_mask = model.log_probs(audio, mask)
        words = frame_mask & (source.argmax(-1) != 0)
        assert int(words.sum()) > 100
        objective = {
            name: word_frame_objective(m.log_probs(audio, mask)[0][words][:, 1:], 0.3, 2.5).item()
            for name, m in (("before", model), ("after", adapted.adapted))
        }
        combined, _ = adapted.log_probs(audio, mask)
    assert objective["after"] < 0.8 * objective["before"], objective
    torch.testing.assert_close(combined[..., 0][frame_mask], source[..., 0][frame_mask], atol=1e-6, rtol=0)

    files = []
    for k, it in enumerate(test[:6]):
        files.append(tmp_path / f"u{k}.wav")
        sf.write(files[-1], it.audio.numpy(), 8000, subtype="FLOAT")
    mels = [logmel(torch.from_numpy(sf.read(f, dtype="float32")[0])) for f in files]
    assert main(["transcribe", str(run), "--adapt", *map(str, files)]) == 0
    printed = [line.split("\t")[1] for line in capsys.readouterr().out.strip().splitlines()]
    expected = decode_items(adapt_to_speaker(model, mels), mels, beam=4, digits=(1, 3))
    assert printed == [digits_to_text(h) for h in expected]
