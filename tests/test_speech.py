"""Speech ↔ text: digit strings with noise and text, WER against jiwer, CTC decoding, recogniser and synthesiser."""

from __future__ import annotations

import dataclasses
import math

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch

from chorus.align import ctc_beam_decode, ctc_greedy_decode
from chorus.cli import main
from chorus.data.audio import LogMel
from chorus.data.sequences import (
    DIGIT_WORDS,
    DigitStrings,
    digits_to_text,
    text_to_digits,
)
from chorus.errors import ConfigError, DataError
from chorus.eval.wer import align_words, error_counts, word_error_rate
from chorus.train import TrainConfig
from chorus.translate.recognizer import EOS, SOS, JointCTCAttention, SpeechEncoder, length_prior
from chorus.translate.speech_data import load_strings
from chorus.translate.speech_runs import (
    SpeechExperiment,
    SpeechModelConfig,
    StringsConfig,
    decode_items,
    load_speech_run,
    speak,
    train_recognizer,
    train_synthesizer,
    tune_blank_penalty,
)
from chorus.translate.synthesizer import aligned_durations, token_sequence, word_spans

KW = {"num_digits": (1, 3), "pause_s": (0.05, 0.2), "gain_db": 6.0}


def test_digit_strings_text_gain_and_noise_are_deterministic(real_data_root):
    clean = DigitStrings(real_data_root, split="test", size=6, **KW)
    again = DigitStrings(real_data_root, split="test", size=6, **KW)
    noisy = DigitStrings(real_data_root, split="test", size=6, snr_db=10.0, **KW)
    flat = DigitStrings(real_data_root, split="test", size=6, **{**KW, "gain_db": 0.0})
    for i in range(6):
        a, b, n, f = clean[i], again[i], noisy[i], flat[i]
        assert torch.equal(a["audio"], b["audio"]) and a["text"] == b["text"]
        assert text_to_digits(a["text"]) == a["digits"] and 1 <= len(a["digits"]) <= 3
        assert a["boundary_samples"] == n["boundary_samples"] == f["boundary_samples"]  # same clips and pauses
        words = np.concatenate([a["audio"][s:e].numpy() for s, e in a["boundary_samples"]])
        noise = (n["audio"] - a["audio"]).numpy()
        snr = 10 * math.log10(np.mean(words.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
        assert abs(snr - 10.0) < 1.0  # white noise at the stated SNR against the words
        for s, e in a["boundary_samples"]:  # each word is the same clip scaled by one gain within ±6 dB
            ratio = a["audio"][s:e].abs().max() / f["audio"][s:e].abs().max()
            assert 10 ** (-6 / 20) - 1e-3 <= float(ratio) <= 10 ** (6 / 20) + 1e-3
    assert digits_to_text([4, 2, 7]) == "four two seven"
    with pytest.raises(DataError, match="fourty"):
        text_to_digits("fourty two")


def test_wer_equals_hand_count_and_jiwer():
    refs = ["one two three", "four five", "six", "seven eight nine"]
    hyps = ["one too three four", "five", "six", "nine eight seven"]
    counts = error_counts(refs, hyps)
    # by hand: 1 sub + 1 ins | 1 del | 0 | 2 subs → 5 errors over 9 words; 3 of 4 sentences wrong
    assert (counts.substitutions, counts.deletions, counts.insertions, counts.words) == (3, 1, 1, 9)
    assert counts.wer == pytest.approx(5 / 9) and counts.ser == 0.75
    reference = jiwer.process_words(refs, hyps)
    assert counts.wer == pytest.approx(reference.wer)
    assert (counts.substitutions, counts.deletions, counts.insertions) == (
        reference.substitutions,
        reference.deletions,
        reference.insertions,
    )
    rng = np.random.default_rng(0)
    words = list(DIGIT_WORDS)
    r = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(200)]
    h = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(200)]
    assert word_error_rate(r, h) == pytest.approx(jiwer.wer(r, h))
    assert align_words(["a", "b"], ["b"]) == [("a", "<del>"), ("b", "b")]
    table = error_counts(["one two", "three", "six"], ["one two four", "five", ""]).confusion_matrix(words)
    assert table[1, 1] == table[2, 2] == 1 and table[-1, 4] == 1 and table[3, 5] == 1 and table[6, -1] == 1
    assert table.sum() == 5  # two hits, an insertion, a substitution, a deletion


def test_ctc_beam_search_sums_paths_and_applies_the_length_prior():
    # frames favour blank, but "a" spread over three frames beats blank overall only when summed over paths
    p = torch.tensor([[0.4, 0.35, 0.25], [0.4, 0.35, 0.25], [0.4, 0.35, 0.25]]).log()[None]
    assert ctc_greedy_decode(p) == [[]]
    beam = ctc_beam_decode(p, beam=8)[0]
    assert beam != []  # p(any non-empty) > p(blank blank blank) = 0.064
    assert ctc_beam_decode(p, beam=8, length_prior=length_prior(2, 3))[0].__len__() in (2, 3)
    # a confident path: beam agrees with greedy, and repeats need a blank between them
    q = torch.full((1, 5, 3), -9.0)
    for t, c in enumerate([1, 0, 1, 2, 2]):
        q[0, t, c] = 0.0
    assert ctc_beam_decode(q.log_softmax(-1))[0] == ctc_greedy_decode(q.log_softmax(-1))[0] == [1, 1, 2]


def _experiment(task: str, system: str, steps: int) -> SpeechExperiment:
    train = TrainConfig(
        max_steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup_steps=10,
        precision="bf16",
        progress=False,
        tensorboard=False,
        log_every=steps,
    )
    model = SpeechModelConfig(task=task, system=system, width=64, layers=1, beam=4)  # type: ignore[arg-type]
    data = StringsConfig(train_size=96, num_digits=(1, 3), pause_s=(0.05, 0.2), train_snr_db=[])
    return SpeechExperiment(f"test_{system}", data, model, train)


def _learns_and_transcribes(system: str, steps: int, train_size: int, root, run, capsys):
    """Train a small recogniser on strings by the training voices; assert its WER on new strings is far below
    chance and that ``chorus transcribe`` prints the library's decoding. Returns (cfg, model, train, test, hyps, wer)."""
    torch.manual_seed(0)
    cfg = _experiment("recognize", system, steps)
    logmel = LogMel()
    train = load_strings(DigitStrings(root, split="train", size=train_size, **KW), logmel)
    model = train_recognizer(cfg, train, run)
    test = load_strings(DigitStrings(root, split="train", size=24, seed=5, **KW), logmel)
    texts = [it.text for it in test]
    hyps = decode_items(model, [it.mel for it in test], beam=4, digits=(1, 3), ctc_weight=cfg.model.decode_ctc_weight)
    wer = error_counts(texts, [digits_to_text(h) for h in hyps]).wer
    rng = np.random.default_rng(0)
    chance = error_counts(texts, [digits_to_text(rng.integers(0, 10, rng.integers(1, 4)).tolist()) for _ in test]).wer
    assert chance > 0.8 and wer < chance - 0.3, (wer, chance)  # unseen strings of the training voices
    files = []
    for k, it in enumerate(test[:4]):
        files.append(run.parent / f"u{k}.wav")
        sf.write(files[-1], it.audio.numpy(), 8000, subtype="FLOAT")
    assert main(["transcribe", str(run), *map(str, files)]) == 0
    printed = [line.split("\t")[1] for line in capsys.readouterr().out.strip().splitlines()]
    assert printed == [digits_to_text(h) for h in hyps[:4]]
    assert main(["transcribe", str(run.parent / "missing"), str(files[0])]) == 2
    return cfg, model, train, test, hyps, wer


def test_ctc_recogniser_learns_and_transcribe_reproduces_its_decoding(real_data_root, tmp_path, capsys):
    cfg, model, train, test, _, wer = _learns_and_transcribes("ctc", 150, 96, real_data_root, tmp_path / "run", capsys)
    best, sweep = tune_blank_penalty(model, [it.mel for it in test], [it.text for it in test], beam=4, digits=(1, 3))
    assert sweep["0"] == wer and sweep[f"{best:g}"] == min(sweep.values())  # penalty 0 is the plain decoder

    def never() -> list:
        raise AssertionError("a finished run of the same experiment must not rebuild its training data")

    again = train_recognizer(cfg, never, tmp_path / "run", reuse=True)  # read back, not trained
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    shorter = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=2))
    calls: list[int] = []
    retrained = train_recognizer(shorter, lambda: calls.append(1) or train, tmp_path / "run", reuse=True)
    assert calls == [1]  # another experiment in the folder is trained over, from its data
    assert not torch.equal(retrained.head.weight, model.head.weight)
    assert load_speech_run(tmp_path / "run", "recognize")[0] == shorter


def test_joint_decoding_is_the_exhaustive_argmax_when_the_beam_holds_every_string():
    """With max_len 2 and a beam of 121 the decoder's beam search keeps every string of 1–2 digits, so joint
    decoding must return the best of all 110 strings under the weighted score, computed here without the beam."""
    torch.manual_seed(0)
    model = JointCTCAttention(SpeechEncoder(n_mels=40, width=32, layers=1, heads=2), layers=1, heads=2, max_len=2)
    model.eval()
    mel = torch.randn(3, 40, 48)
    mask = torch.ones(3, 48, dtype=torch.bool)
    mask[1, 30:] = False
    strings = [(d,) for d in range(10)] + [(a, b) for a in range(10) for b in range(10)]
    with torch.no_grad():
        frames, frame_mask = model.encoder(mel, mask)
        ctc_log_probs = model.ctc_head(frames).float().log_softmax(-1)
    for weight in (0.0, 0.5, 1.0):
        decoded = model.decode(mel, mask, beam=121, ctc_weight=weight, digits=(1, 2))
        for b in range(3):
            one, one_mask = frames[b : b + 1], frame_mask[b : b + 1]
            with torch.no_grad():
                ctc, att = model.hypothesis_log_probs(one, one_mask, ctc_log_probs[b : b + 1], strings)
            assert decoded[b] == list(strings[int(torch.argmax(weight * ctc + (1 - weight) * att))])
    # the attention score is the decoder's step-by-step log-probability of the digits and <eos>
    with torch.no_grad():
        one, one_mask = frames[:1], frame_mask[:1]
        _, att = model.hypothesis_log_probs(one, one_mask, ctc_log_probs[:1], [(4, 2)])
        tokens, total = [SOS], 0.0
        for token in (4, 2, EOS):
            logits, _ = model.decode_step(torch.tensor([tokens]), one, one_mask)
            total += float(logits[0, -1].log_softmax(-1)[token])
            tokens.append(token)
    assert math.isclose(float(att[0]), total, rel_tol=1e-4)
    with pytest.raises(ConfigError):
        model.decode(mel, mask, beam=4, ctc_weight=1.5)


def test_attention_recogniser_learns_and_transcribe_uses_joint_decoding(real_data_root, tmp_path, capsys):
    cfg, *_ = _learns_and_transcribes("attention", 300, 192, real_data_root, tmp_path / "run", capsys)
    with pytest.raises(ConfigError, match="decode_ctc_weight"):
        dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, decode_ctc_weight=-0.1))


def test_synthesiser_durations_lengths_and_speak(real_data_root, tmp_path):
    assert token_sequence([4, 2]) == [0, 5, 0, 3, 0]
    assert aligned_durations([3, 10], [8, 15], 20) == [3, 5, 2, 5, 5]
    logmel = LogMel()
    voice = load_strings(DigitStrings(real_data_root, split="test", size=24, **KW), logmel)
    # the true spans stand in for forced alignment (tested in test_align_*): this test is about the synthesiser
    spans = [
        (np.floor(it.bounds[:, 0]).astype(int).tolist(), np.ceil(it.bounds[:, 1]).astype(int).tolist()) for it in voice
    ]
    model = train_synthesizer(_experiment("synthesize", "ctc", 60), voice, spans, tmp_path / "tts")
    mel, durations = model.generate([4, 2, 7])
    assert mel.shape == (40, int(durations.sum())) and torch.isfinite(mel).all()
    assert len(durations) == 7 and (durations[1::2] >= 1).all()
    spans_out = word_spans(durations)
    assert spans_out.shape == (3, 2) and (np.diff(spans_out.ravel()) >= 0).all()
    # word durations learnt from the voice: within a factor 2 of its mean word length
    mean_word = np.mean([e - s for it in voice for s, e in it.bounds])
    assert 0.5 * mean_word < float(durations[1::2].float().mean()) < 2 * mean_word
    wave, sr = speak(tmp_path / "tts", "four two seven")
    assert sr == 8000 and wave.abs().max() <= 0.9 + 1e-6
    assert abs(wave.numel() - 80 * (int(durations.sum()) - 1)) <= 80
    out = tmp_path / "a.wav"
    assert main(["speak", str(tmp_path / "tts"), "four two seven", "--out", str(out)]) == 0
    assert sf.info(str(out)).samplerate == 8000
    assert main(["speak", str(tmp_path / "tts"), "fourty", "--out", str(out)]) == 2
    # the web explorer's "say it": /speak returns the library's waveform as 16-bit WAV
    import io

    from fastapi.testclient import TestClient

    from chorus.serve import create_app

    with TestClient(create_app([tmp_path / "tts"])) as client:
        assert client.get("/runs").json()["voices"] == ["tts"]
        reply = client.post("/speak", data={"text": "Four two  seven"})
        assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
        served, rate = sf.read(io.BytesIO(reply.content), dtype="float32")
        assert rate == 8000 and np.abs(served - wave.numpy()).max() < 2 / 32768
        assert client.post("/speak", data={"text": "fourty"}).status_code == 422
        assert client.post("/speak", data={"text": "one", "run": "nope"}).status_code == 404


def test_docs_examples_run():
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[1] / "docs" / "speech.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    exec(compile("\n".join(blocks), str(doc), "exec"), {})  # noqa: S102 - the docs examples, run as written
