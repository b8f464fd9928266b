"""Training-data perturbation (speed, VTLP) and the CTC blank penalty of the digit-string recogniser."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chorus.align import ctc_beam_decode, ctc_greedy_decode
from chorus.data.audio import LogMel, mel_filterbank, speed_perturb
from chorus.data.sequences import DigitStrings, digits_to_text
from chorus.errors import ConfigError
from chorus.eval.wer import error_counts
from chorus.translate.recognizer import length_prior
from chorus.translate.speech_runs import StringsConfig, recognizer_items

KW = {"num_digits": (1, 3), "pause_s": (0.05, 0.2), "gain_db": 6.0}


def _peak_hz(wave: torch.Tensor, sr: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.fft.rfftfreq(wave.numel(), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_scales_duration_and_pitch(factor):
    t = torch.arange(8000) / 8000
    tone = torch.sin(2 * torch.pi * 500 * t)
    fast = speed_perturb(tone, factor)
    assert fast.numel() == int(np.ceil(8000 / factor))  # duration divided by the factor
    assert _peak_hz(fast) == pytest.approx(500 * factor, abs=2.0)  # pitch multiplied by it
    with pytest.raises(ConfigError):
        speed_perturb(tone, 3.0)


def test_speed_perturbed_strings_keep_transcript_and_scale_words(real_data_root):
    plain = DigitStrings(real_data_root, split="train", size=4, **KW)
    slow = DigitStrings(real_data_root, split="train", size=4, speed=0.9, **KW)
    for i in range(4):
        a, b = plain[i], slow[i]
        assert a["text"] == b["text"] and a["speaker"] == b["speaker"] and a["clip_paths"] == b["clip_paths"]
        for (s0, e0), (s1, e1) in zip(a["boundary_samples"], b["boundary_samples"]):
            assert abs((e1 - s1) - (e0 - s0) / 0.9) <= 1  # every word 1/0.9 times as long, boundaries exact
        assert b["audio"].numel() > a["audio"].numel()


def test_vtlp_warp_moves_a_tone_to_the_warped_frequency():
    assert torch.equal(mel_filterbank(8000, 256, 40, warp=1.0), mel_filterbank(8000, 256, 40))
    t = torch.arange(4000) / 8000

    def band(hz: float, warp: float = 1.0) -> int:
        return int(LogMel(warp=warp)(torch.sin(2 * torch.pi * hz * t)).mean(1).argmax())

    assert band(1000, warp=1.1) == band(1100) != band(1000)  # below the knee a bin at f is read as f·warp
    assert band(1000, warp=0.9) == band(900) != band(1000)


def test_recognizer_items_add_one_copy_per_speed_and_warp_only_with_vtlp(real_data_root):
    base = StringsConfig(train_size=3, num_digits=(1, 3), train_snr_db=[10.0])
    plain = recognizer_items(base, str(real_data_root))
    perturbed = recognizer_items(
        StringsConfig(train_size=3, num_digits=(1, 3), train_snr_db=[10.0], speed_factors=[1.0, 0.9]),
        str(real_data_root),
    )
    assert len(perturbed) == 2 * len(plain) == 12
    assert all(torch.equal(a.mel, b.mel) and a.text == b.text for a, b in zip(plain, perturbed[:6]))
    assert all(b.mel.shape[1] > a.mel.shape[1] for a, b in zip(plain, perturbed[6:]))
    warped = recognizer_items(
        StringsConfig(train_size=3, num_digits=(1, 3), train_snr_db=[10.0], vtlp=0.1), str(real_data_root)
    )
    assert all(a.mel.shape == b.mel.shape and not torch.equal(a.mel, b.mel) for a, b in zip(plain, warped))


def test_blank_penalty_zero_is_the_plain_decoder_and_a_large_one_undoes_deletions():
    torch.manual_seed(0)
    random = torch.randn(3, 20, 11).log_softmax(-1)
    prior = length_prior(1, 7)
    assert ctc_greedy_decode(random, blank_penalty=0.0) == ctc_greedy_decode(random)
    assert ctc_beam_decode(random, beam=4, length_prior=prior, blank_penalty=0.0) == ctc_beam_decode(
        random, beam=4, length_prior=prior
    )
    # labels 3 5 7: each word's frames put 0.45 on the word and 0.5 on blank, so best path deletes every word
    p = torch.full((1, 9, 11), 0.05 / 9)
    p[0, :, 0] = 0.95
    for word, frames in ((3, (1, 2)), (5, (4, 5)), (7, (7,))):
        for t in frames:
            p[0, t] = 0.05 / 9
            p[0, t, 0], p[0, t, word] = 0.5, 0.45
    log_p = p.log()
    refs = ["two four six"]  # CTC labels are digit + 1

    def deletions(hyp: list[int]) -> int:
        return error_counts(refs, [digits_to_text([label - 1 for label in hyp])]).deletions

    assert deletions(ctc_greedy_decode(log_p)[0]) == 3
    assert ctc_greedy_decode(log_p, blank_penalty=0.5)[0] == [3, 5, 7]
    assert deletions(ctc_beam_decode(log_p, beam=4, blank_penalty=0.5)[0]) == 0


def test_recogniser_dropout_and_window_reach_the_encoder_and_leave_evaluation_deterministic():
    from chorus.translate.speech_runs import SpeechModelConfig, build_recognizer

    torch.manual_seed(0)
    model = build_recognizer(SpeechModelConfig(task="recognize", width=32, heads=2, dropout=0.5, window=3))
    assert model.encoder.transformer.window == 3 and model.encoder.dropout.p == 0.5
    mel = torch.randn(2, 40, 60)
    model.train()
    assert not torch.equal(model.log_probs(mel)[0], model.log_probs(mel)[0])  # dropout (and SpecAugment) draw anew
    model.eval()
    torch.testing.assert_close(model.log_probs(mel)[0], model.log_probs(mel)[0])


def test_speaker_adversary_reverses_only_the_encoders_share_of_the_speaker_gradient():
    from chorus.translate.speech_runs import SpeechModelConfig, build_recognizer

    torch.manual_seed(0)
    model = build_recognizer(SpeechModelConfig(task="recognize", width=32, heads=2, speaker_adversary=0.5)).eval()
    assert model.speaker_head is not None and model.speaker_head[-1].out_features == 6
    batch = {
        "audio": torch.randn(2, 40, 60),
        "audio_mask": torch.tensor([[True] * 60, [True] * 45 + [False] * 15]),
        "targets": torch.tensor([[3, 1], [4, 0]]),
        "target_mask": torch.tensor([[True, True], [True, False]]),
        "speakers": torch.tensor([0, 4]),
    }
    encoder = list(model.encoder.parameters())
    head = list(model.speaker_head.parameters())

    def grads(weight: float) -> list[torch.Tensor]:
        model.speaker_adversary = weight
        return list(torch.autograd.grad(model(batch)["loss"], encoder + head))

    frames, mask = model.encoder(batch["audio"], batch["audio_mask"])
    speakers = batch["speakers"][:, None].expand_as(mask)[mask]
    plain_ce = torch.nn.functional.cross_entropy(model.speaker_head(frames[mask]), speakers)
    ce_grads = torch.autograd.grad(plain_ce, encoder + head)
    without, with_adversary = grads(0.0), grads(0.5)
    n = len(encoder)
    for g0, g, g_ce in zip(without[:n], with_adversary[:n], ce_grads[:n]):
        torch.testing.assert_close(g, g0 - 0.5 * g_ce)  # the encoder works against the speaker classifier
    for g0, g, g_ce in zip(without[n:], with_adversary[n:], ce_grads[n:]):
        torch.testing.assert_close(g, g_ce)  # the classifier itself learns to name the speaker
        torch.testing.assert_close(g0, g_ce)
    restored = build_recognizer(SpeechModelConfig(task="recognize", width=32, heads=2, speaker_adversary=0.5))
    restored.load_state_dict(model.state_dict())  # strict: the run folder's weights load into the same config


def test_speaker_adversary_refuses_unknown_speakers_and_bad_weights():
    from chorus.errors import DataError
    from chorus.translate.recognizer import CTCRecognizer, SpeechEncoder
    from chorus.translate.speech_data import SpeechItem, speech_batch

    model = CTCRecognizer(SpeechEncoder(width=32, heads=2), speaker_adversary=0.3, num_speakers=6)
    items = [
        SpeechItem(
            torch.randn(40, 30), torch.tensor([1]), "one", np.zeros((1, 2)), torch.zeros(30), who, torch.zeros(1)
        )
        for who in ("theo", "tts")
    ]
    batch = speech_batch(items)
    assert batch["speakers"].tolist()[1] == -1 and batch["speakers"][0] >= 0
    with pytest.raises(DataError, match="speaker"):
        model(batch)
    with pytest.raises(DataError, match="speaker"):
        model({k: v for k, v in speech_batch(items[:1]).items() if k != "speakers"})
    assert model(speech_batch(items[:1]))["loss"].requires_grad
    for weight, speakers in ((-0.1, 6), (0.3, 1)):
        with pytest.raises(ConfigError):
            CTCRecognizer(SpeechEncoder(width=32, heads=2), speaker_adversary=weight, num_speakers=speakers)
