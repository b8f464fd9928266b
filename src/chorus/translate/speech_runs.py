"""Speech ↔ text experiments: the config ``chorus train`` reads, the training functions, and run folders.

A speech config (``configs/speech_ctc.yaml``, ``speech_attention.yaml``, ``speech_tts.yaml``) has
``model.task`` ``recognize`` (speech → text: ``model.system`` ``ctc`` or ``attention``) or ``synthesize``
(text → speech in the voice ``model.speaker``). :func:`train_speech` composes the digit strings, trains the
model with the one :class:`~chorus.train.Trainer` and writes a run folder — ``experiment.yaml`` (the
validated config) and ``model.safetensors`` — from which :func:`load_speech_run`, :func:`transcribe_files`
(``chorus transcribe``) and :func:`speak` (``chorus speak``) rebuild the model without any training data.

Data (:class:`StringsConfig`): 1–7 digit strings by one speaker each, word levels varied by ±``gain_db``;
the recogniser trains on the speakers not in ``test_speakers`` — clean utterances plus one noisy copy set per
SNR in ``train_snr_db`` (multi-condition training, as Aurora-2's multi-condition set); the synthesiser trains
on ``model.speaker``'s clean utterances, its durations Viterbi-aligned by a frame tagger trained on the
other speakers (:mod:`chorus.translate.synthesizer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from chorus.align import forced_align
from chorus.align.models import FrameTagger
from chorus.config import load_config, save_config
from chorus.data.audio import LogMel, load_audio, resample
from chorus.data.collate import pad_time
from chorus.data.sequences import DigitStrings, digits_to_text, text_to_digits
from chorus.encoders import build_encoder
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating
from chorus.eval.wer import error_counts
from chorus.train import TrainConfig, Trainer, seed_everything
from chorus.train.checkpoint import atomic_write
from chorus.translate.griffinlim import log_mel_to_audio
from chorus.translate.recognizer import CTCRecognizer, JointCTCAttention, SpeechEncoder
from chorus.translate.speaker_adapt import AdaptConfig, SpeakerAdaptedCTC, adapt_to_speaker
from chorus.translate.speech_data import SPEAKER_FOLDS, SpeechItem, load_strings, speech_batch
from chorus.translate.synthesizer import (
    DigitSynthesizer,
    SynthesisItem,
    aligned_durations,
    synthesis_batch,
)

__all__ = [
    "SpeechExperiment",
    "SpeechModelConfig",
    "StringsConfig",
    "align_items",
    "build_recognizer",
    "decode_items",
    "is_speech_config",
    "load_speech_run",
    "recognizer_items",
    "speak",
    "train_aligner",
    "train_recognizer",
    "train_speech",
    "train_synthesizer",
    "transcribe_files",
    "tune_blank_penalty",
]

SAMPLE_RATE = 8000
SPEECH_TASKS = ("recognize", "synthesize")


@dataclass
class StringsConfig:
    """The connected digit strings (see :class:`~chorus.data.sequences.DigitStrings`).

    Recogniser training-data perturbation, to make more voices out of five: ``speed_factors`` — one copy of
    the whole training set (clean and noisy) per factor, the same strings spoken faster or slower (Kaldi's
    0.9 / 1.0 / 1.1); ``vtlp`` — when > 0, each training utterance's log-mel uses a filterbank warped by a
    factor drawn uniformly from ``1 ± vtlp`` (:func:`~chorus.data.audio.vtlp_warp`). The defaults (``[1.0]``,
    0) train on the unperturbed strings."""

    test_speakers: list[str] = field(default_factory=lambda: ["theo"])
    train_size: int = 500
    num_digits: tuple[int, int] = (1, 7)
    pause_s: tuple[float, float] = (0.05, 0.3)
    gain_db: float = 6.0
    train_snr_db: list[float] = field(default_factory=lambda: [15.0, 5.0])
    seed: int = 0
    speed_factors: list[float] = field(default_factory=lambda: [1.0])
    vtlp: float = 0.0

    def strings(
        self,
        root: str | None,
        split: str,
        size: int,
        *,
        seed_offset: int = 0,
        snr_db: float | None = None,
        test_speakers: list[str] | None = None,
        speed: float = 1.0,
    ) -> DigitStrings:
        return DigitStrings(
            root,
            split=split,
            size=size,
            num_digits=(self.num_digits[0], self.num_digits[1]),
            pause_s=(self.pause_s[0], self.pause_s[1]),
            gain_db=self.gain_db,
            snr_db=snr_db,
            seed=self.seed + seed_offset,
            test_speakers=tuple(test_speakers or self.test_speakers),
            speed=speed,
        )


@dataclass
class SpeechModelConfig:
    """``task``: ``recognize`` or ``synthesize``. Recogniser: ``system``, encoder ``width``/``layers``/``heads``/``dropout``/``window``,
    ``speaker_adversary`` (CTC only: the gradient-reversal weight of :class:`CTCRecognizer`'s speaker classifier, 0 = none),
    attention decoder ``decoder_layers``/``ctc_weight`` (training)/``label_smoothing``/``decode_ctc_weight`` (the CTC
    term's weight in joint decoding, :meth:`JointCTCAttention.decode`), ``beam`` (0 = greedy; CTC: prefix beam search,
    attention: joint CTC-attention decoding over the decoder's beam), CTC ``blank_penalty``.
    Synthesiser: ``speaker`` (the voice), ``synth_width``, ``aligner_steps`` (frame tagger for the durations)."""

    task: Literal["recognize", "synthesize"]
    system: Literal["ctc", "attention"] = "ctc"
    width: int = 96
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0
    window: int = 0
    speaker_adversary: float = 0.0
    decoder_layers: int = 2
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1
    decode_ctc_weight: float = 0.5
    beam: int = 8
    blank_penalty: float = 0.0
    speaker: str = "theo"
    synth_width: int = 128
    aligner_steps: int = 150


@dataclass
class SpeechExperiment:
    name: str
    data: StringsConfig
    model: SpeechModelConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        if not 0.0 <= self.model.decode_ctc_weight <= 1.0 or self.model.beam < 0:
            raise ConfigError(
                f"model.decode_ctc_weight must be in [0, 1] and model.beam >= 0, got "
                f"{self.model.decode_ctc_weight} and {self.model.beam}"
            )
        if self.model.task == "synthesize" and self.model.speaker in self.data.test_speakers:
            # the voice's utterances train the synthesiser; the aligner trains on the others
            self.data.test_speakers = [self.model.speaker]


def is_speech_config(path: str | os.PathLike) -> bool:
    """Whether a YAML config is a speech experiment (``model.task`` recognize / synthesize)."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    model = raw.get("model") if isinstance(raw, dict) else None
    return isinstance(model, dict) and model.get("task") in SPEECH_TASKS


# ---------------------------------------------------------------------------- recognition


def recognizer_items(cfg: StringsConfig, root: str | None = None, logmel: LogMel | None = None) -> list[SpeechItem]:
    """Training utterances of the recogniser: clean, plus one copy set per ``train_snr_db`` (other strings); all
    of it once per ``speed_factors`` entry, then VTLP-warped when ``vtlp`` > 0 (see :class:`StringsConfig`)."""
    logmel = logmel or LogMel()
    items: list[SpeechItem] = []
    for speed in cfg.speed_factors:
        items += load_strings(cfg.strings(root, "train", cfg.train_size, speed=speed), logmel)
        for k, snr in enumerate(cfg.train_snr_db, start=1):
            strings = cfg.strings(root, "train", cfg.train_size, seed_offset=1000 * k, snr_db=snr, speed=speed)
            items += load_strings(strings, logmel)
    if cfg.vtlp > 0:
        rng = np.random.default_rng([cfg.seed, 9])
        for item, warp in zip(items, rng.uniform(1 - cfg.vtlp, 1 + cfg.vtlp, len(items))):
            with torch.no_grad():
                item.mel = LogMel(logmel.sample_rate, logmel.n_fft, logmel.hop_length, logmel.n_mels, warp=warp)(
                    item.audio
                )
    return items


def build_recognizer(model: SpeechModelConfig, n_mels: int = 40) -> CTCRecognizer | JointCTCAttention:
    encoder = SpeechEncoder(n_mels, model.width, model.layers, model.heads, dropout=model.dropout, window=model.window)
    if model.speaker_adversary and model.system != "ctc":
        raise ConfigError("model.speaker_adversary is an option of the CTC recogniser (model.system: ctc)")
    if model.system == "ctc":
        return CTCRecognizer(encoder, model.speaker_adversary, num_speakers=len(SPEAKER_FOLDS))
    return JointCTCAttention(
        encoder, model.decoder_layers, model.heads, ctc_weight=model.ctc_weight, label_smoothing=model.label_smoothing
    )


def train_recognizer(
    cfg: SpeechExperiment,
    items: list[SpeechItem] | Callable[[], list[SpeechItem]],
    run_dir: str | os.PathLike,
    reuse: bool = False,
) -> CTCRecognizer | JointCTCAttention:
    """Train the configured recogniser on ``items`` (or what calling it returns) and save the run folder; returns
    the model in eval mode.

    ``reuse``: when ``run_dir`` already holds a finished run of exactly this experiment, load it instead (and never
    build ``items``) — so a benchmark stopped after hours restarts where it was, and processes that each train some
    seeds can share one output folder.
    """
    if reuse:
        try:
            done, model = load_speech_run(run_dir, "recognize")
        except ConfigError:
            done = None
        if done == cfg and isinstance(model, CTCRecognizer | JointCTCAttention):
            print(f"speech: reusing the finished recogniser in {run_dir}", flush=True)
            return model
    if callable(items):
        items = items()
    seed_everything(cfg.train.seed)
    model = build_recognizer(cfg.model)
    Trainer(model, items, cfg.train, run_dir, collate_fn=speech_batch).fit()
    _save(cfg, model, run_dir)
    return model.eval()


@torch.no_grad()
def decode_items(
    model: CTCRecognizer | SpeakerAdaptedCTC | JointCTCAttention,
    mels: list[torch.Tensor],
    beam: int = 0,
    digits: tuple[int, int] = (1, 7),
    batch_size: int = 32,
    blank_penalty: float = 0.0,
    ctc_weight: float = SpeechModelConfig.decode_ctc_weight,
) -> list[list[int]]:
    """Digit ids of each log-mel [n_mels, T]: CTC, speaker-adapted or not (greedy or beam, ``blank_penalty`` as
    :meth:`CTCRecognizer.decode`), or attention (greedy, or joint CTC-attention with ``beam`` and ``ctc_weight`` as
    :meth:`JointCTCAttention.decode`) decoding."""
    out: list[list[int]] = []
    with evaluating(model):
        for i in range(0, len(mels), batch_size):
            audio, mask = pad_time(mels[i : i + batch_size], "audio")
            if isinstance(model, CTCRecognizer | SpeakerAdaptedCTC):
                out += model.decode(audio, mask, beam=beam, digits=digits, blank_penalty=blank_penalty)
            else:
                out += model.decode(audio, mask, beam=beam, ctc_weight=ctc_weight, digits=digits)
    return out


def tune_blank_penalty(
    model: CTCRecognizer,
    mels: list[torch.Tensor],
    texts: list[str],
    beam: int = 0,
    digits: tuple[int, int] = (1, 7),
    candidates: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
) -> tuple[float, dict[str, float]]:
    """The blank penalty among ``candidates`` with the lowest WER on held-out utterances (the smallest on a tie),
    and the WER of each candidate (keys are the penalties as text, for JSON).

    Why held out: the penalty trades deletions for insertions, and choosing it on the test speaker would
    report a tuned-on-test figure; pass new strings by the training voices (the speakers the model may be
    tuned on) — never the held-out voice."""
    if len(mels) != len(texts) or not mels:
        raise DataError(
            f"tune_blank_penalty needs as many transcripts as utterances (>= 1), got {len(texts)} and {len(mels)}"
        )
    sweep = {}
    for penalty in candidates:
        hyps = decode_items(model, mels, beam=beam, digits=digits, blank_penalty=penalty)
        sweep[f"{penalty:g}"] = error_counts(texts, [digits_to_text(h) for h in hyps]).wer
    best = min(candidates, key=lambda p: (sweep[f"{p:g}"], p))
    return best, sweep


# ---------------------------------------------------------------------------- synthesis


def train_aligner(items: list[SpeechItem], steps: int, run_dir: str | os.PathLike, seed: int = 0) -> FrameTagger:
    """Frame tagger (silence / ten digits per 10 ms frame) for forced alignment, trained with frame labels."""
    seed_everything(seed)
    encoder = build_encoder(
        "audio_cnn", "tiny", n_mels=items[0].mel.shape[0], widths=(64, 64, 64), strides=(1, 1, 1), top_db=40.0, cmn=True
    )
    tagger = FrameTagger(encoder, 11)
    config = TrainConfig(
        max_steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup_steps=max(1, steps // 10),
        precision="auto",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=max(1, steps // 4),
    )
    Trainer(tagger, items, config, run_dir, collate_fn=speech_batch).fit()
    return tagger.eval()


@torch.no_grad()
def align_items(
    tagger: FrameTagger, mels: list[torch.Tensor], digits: list[list[int]], batch_size: int = 32
) -> list[tuple[list[int], list[int]]]:
    """Viterbi forced alignment of each transcript (silence between words): word (starts, ends) in frames."""
    spans = []
    with evaluating(tagger):
        for i in range(0, len(mels), batch_size):
            audio, mask = pad_time(mels[i : i + batch_size], "audio")
            targets, target_mask = pad_time([torch.tensor(d) + 1 for d in digits[i : i + batch_size]], "digits")
            log_probs, frame_mask = tagger.log_probs(audio, mask)
            ali = forced_align(log_probs, targets, 0, frame_mask, target_mask)
            for b, n in enumerate(target_mask.sum(1).tolist()):
                spans.append((ali.starts[b, :n].tolist(), ali.ends[b, :n].tolist()))
    return spans


def align_voice(tagger: FrameTagger, voice: list[SpeechItem]) -> list[tuple[list[int], list[int]]]:
    """Word spans of each of ``voice``'s utterances by forced alignment of its transcript."""
    return align_items(tagger, [it.mel for it in voice], [it.digits.tolist() for it in voice])


def synthesis_items(items: list[SpeechItem], spans: list[tuple[list[int], list[int]]]) -> list[SynthesisItem]:
    return [
        SynthesisItem(it.digits.tolist(), aligned_durations(s, e, it.mel.shape[1]), it.mel)
        for it, (s, e) in zip(items, spans)
    ]


def train_synthesizer(
    cfg: SpeechExperiment, voice: list[SpeechItem], spans: list[tuple[list[int], list[int]]], run_dir: str | os.PathLike
) -> DigitSynthesizer:
    """Train the synthesiser on ``voice``'s utterances with word ``spans`` (from :func:`align_items`), save the run."""
    data = synthesis_items(voice, spans)
    seed_everything(cfg.train.seed)
    mean = torch.cat([it.mel for it in data], dim=1).mean(1)
    model = DigitSynthesizer(data[0].mel.shape[0], cfg.model.synth_width, mel_mean=mean)
    Trainer(model, data, cfg.train, run_dir, collate_fn=synthesis_batch).fit()
    _save(cfg, model, run_dir)
    return model.eval()


def voice_items(cfg: SpeechExperiment, root: str | None = None, logmel: LogMel | None = None) -> list[SpeechItem]:
    """The synthesis speaker's clean training utterances (``model.speaker`` held out of the aligner's data)."""
    return load_strings(
        cfg.data.strings(root, "test", cfg.data.train_size, test_speakers=[cfg.model.speaker]), logmel or LogMel()
    )


# ---------------------------------------------------------------------------- run folders


def _save(cfg: SpeechExperiment, model: nn.Module, run_dir: str | os.PathLike) -> None:
    """Weights, then the experiment: both written atomically, so a folder with ``experiment.yaml`` is a finished run."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(run_dir / "model.safetensors", lambda tmp: save_file(weights, str(tmp)))
    save_config(cfg, run_dir / "experiment.yaml")


def train_speech(cfg: SpeechExperiment, run_dir: str | os.PathLike, data_root: str | None = None) -> dict[str, Any]:
    """``chorus train`` for speech configs: train and save; returns what was trained and on how much."""
    run_dir = Path(run_dir)
    if cfg.model.task == "recognize":
        items = recognizer_items(cfg.data, data_root)
        train_recognizer(cfg, items, run_dir)
        return {
            "task": "recognize",
            "system": cfg.model.system,
            "train_utterances": len(items),
            "run_dir": str(run_dir),
        }
    others = load_strings(
        cfg.data.strings(data_root, "train", cfg.data.train_size, test_speakers=[cfg.model.speaker]), LogMel()
    )
    tagger = train_aligner(others, cfg.model.aligner_steps, run_dir / "aligner", cfg.train.seed)
    voice = voice_items(cfg, data_root)
    train_synthesizer(cfg, voice, align_voice(tagger, voice), run_dir)
    return {"task": "synthesize", "speaker": cfg.model.speaker, "train_utterances": len(voice), "run_dir": str(run_dir)}


def load_speech_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> SpeechExperiment:
    return load_config(SpeechExperiment, path, overrides)


def load_speech_run(run_dir: str | os.PathLike, task: str | None = None) -> tuple[SpeechExperiment, nn.Module]:
    """(config, model in eval mode) of a speech run folder; ``task`` checks it is a recogniser / synthesiser."""
    run_dir = Path(run_dir)
    for needed in ("experiment.yaml", "model.safetensors"):
        if not (run_dir / needed).is_file():
            raise ConfigError(f"{run_dir} is not a finished speech run: {needed} is missing")
    if not is_speech_config(run_dir / "experiment.yaml"):
        raise ConfigError(f"{run_dir} is not a speech run (its model.task is not one of {', '.join(SPEECH_TASKS)})")
    cfg = load_speech_config(run_dir / "experiment.yaml")
    if task is not None and cfg.model.task != task:
        raise ConfigError(f"{run_dir} is a {cfg.model.task} run; this needs a {task} run")
    model: nn.Module
    if cfg.model.task == "recognize":
        model = build_recognizer(cfg.model)
    else:
        model = DigitSynthesizer(LogMel().n_mels, cfg.model.synth_width)
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    return cfg, model.eval()


def transcribe_files(
    run_dir: str | os.PathLike, files: list[str | os.PathLike], adapt: AdaptConfig | None = None
) -> list[str]:
    """``chorus transcribe``: the transcript of each audio file (resampled to 8 kHz, mono), decoded as the
    benchmark decodes (the config's ``beam``, ``blank_penalty`` and ``decode_ctc_weight``).

    ``adapt``: first adapt a CTC recogniser to the files' speaker without transcripts
    (:func:`chorus.translate.speaker_adapt.adapt_to_speaker`) — every file must then be the one speaker's."""
    cfg, model = load_speech_run(run_dir, "recognize")
    if adapt is not None and not isinstance(model, CTCRecognizer):
        raise ConfigError(f"{run_dir}: speaker adaptation needs a CTC recogniser run, not {cfg.model.system}")
    logmel = LogMel()
    mels = []
    for path in files:
        wave, sr = load_audio(path)
        if wave.numel() == 0:
            raise DataError(f"{path}: no audio samples")
        with torch.no_grad():
            mels.append(logmel(resample(wave, sr, SAMPLE_RATE)))
    if not isinstance(model, CTCRecognizer | JointCTCAttention):
        raise ConfigError(f"{run_dir} is not a recogniser run")
    decoder = adapt_to_speaker(model, mels, adapt) if isinstance(model, CTCRecognizer) and adapt is not None else model
    digits = decode_items(
        decoder,
        mels,
        cfg.model.beam,
        (cfg.data.num_digits[0], cfg.data.num_digits[1]),
        blank_penalty=cfg.model.blank_penalty,
        ctc_weight=cfg.model.decode_ctc_weight,
    )
    return [digits_to_text(d) for d in digits]


def speak(run_dir: str | os.PathLike, text: str, n_iter: int = 64, seed: int = 0) -> tuple[torch.Tensor, int]:
    """``chorus speak``: (waveform float32 [T] in [-1, 1], sample rate) of a digit string given as words."""
    _, model = load_speech_run(run_dir, "synthesize")
    if not isinstance(model, DigitSynthesizer):
        raise ConfigError(f"{run_dir} is not a text-to-speech run")
    return synthesize_wave(model, text_to_digits(text), n_iter, seed), SAMPLE_RATE


def synthesize_wave(model: DigitSynthesizer, digits: list[int], n_iter: int = 64, seed: int = 0) -> torch.Tensor:
    """Digit ids → log-mel (the synthesiser) → waveform (Griffin-Lim), peak-normalised to 0.9."""
    if not digits:
        raise DataError('nothing to say: give digit words, e.g. "four two seven"')
    mel, _ = model.generate(digits)
    generator = torch.Generator().manual_seed(seed)
    wave = log_mel_to_audio(mel, LogMel(), n_iter=n_iter, generator=generator)
    return (0.9 * wave / wave.abs().max().clamp_min(1e-8)).float()
