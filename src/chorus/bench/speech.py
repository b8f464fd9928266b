"""Speech ↔ text on connected FSDD digit strings: CTC and attention recognisers, a synthesiser, the round trip.

What it measures, all on speakers the models never heard (leave-one-speaker-out; ``theo`` is the main fold):

1. **Recognition** (speech → text), WER and sentence error rate on 1–7 digit strings, clean and at
   ``noisy_snr_db`` (10 dB) — the same utterances plus white noise: the CTC recogniser (greedy and beam
   with a length prior), the joint CTC-attention recogniser, and two baselines with the isolated-digit
   classifier: on the oracle word segments (upper bound) and on energy-VAD segments (pipeline). The CTC
   recogniser is also trained once on every other fold (six-fold mean), and its per-digit confusion is
   tabled.
2. **Implicit alignment**: the share of the attention decoder's peaks (teacher-forced on the true
   transcript) inside the right word, against the uniform-peak baseline and chance.
3. **Synthesis** (text → speech) in ``theo``'s voice, for ``tts_strings`` digit strings never in its
   training text: judged by the CTC recogniser trained on the other five speakers (WER, and the round trip
   text → speech → text string error rate), by the isolated-digit classifier on forced-aligned segments,
   and by mel cepstral distortion against a real ``theo`` utterance of the same text.

Every model trains once per seed (mean ± std); the other folds train with the first seed only. A recogniser
whose run folder under ``OUT/runs`` already holds a finished run of the same experiment is read back instead of
trained, so a stopped run restarts where it was, and one process per seed (``seeds=[1] folds=[theo]``) can share
one ``--out`` before the plain command writes the report.

Presets: ``full`` (500 steps per recogniser, sized to train all 20 models on two cores in under 1.5 h),
``quick`` (smoke run) and ``long``: 4,000 steps per recogniser on speed-perturbed (0.9 / 1 / 1.1) and
VTLP-warped (±0.1) training strings — the setting that held up best on the unseen voice (``docs/speech.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chorus.align.models import FrameTagger
from chorus.bench.driver import Report
from chorus.data.audio import LogMel
from chorus.data.sequences import DIGIT_WORDS, DigitStrings, digits_to_text
from chorus.eval.report import MethodCard, fmt_mean_std
from chorus.eval.wer import error_counts
from chorus.train import TrainConfig
from chorus.translate.recognizer import CTCRecognizer, JointCTCAttention
from chorus.translate.segmental import (
    classify_segments,
    isolated_clips,
    oracle_segments,
    train_isolated_classifier,
    vad_segments,
)
from chorus.translate.speaker_adapt import AdaptConfig, adapt_to_speaker
from chorus.translate.speech_data import (
    SPEAKER_FOLDS,
    SpeechItem,
    load_strings,
    speech_batch,
)
from chorus.translate.speech_runs import (
    SpeechExperiment,
    SpeechModelConfig,
    StringsConfig,
    align_items,
    align_voice,
    decode_items,
    recognizer_items,
    synthesize_wave,
    train_aligner,
    train_recognizer,
    train_synthesizer,
    voice_items,
)
from chorus.translate.synthesizer import mel_cepstral_distortion

MAIN_FOLD = "theo"
ADAPT_TUNING_FOLD = "jackson"  # the held-out speaker the speaker-adaptation settings were chosen on


@dataclass(frozen=True)
class Config:
    seeds: tuple[int, ...] = (0, 1, 2)
    folds: tuple[str, ...] = SPEAKER_FOLDS  # held-out speakers; MAIN_FOLD runs every seed, the rest the first
    train_size: int = 500  # clean training strings (plus as many per training SNR)
    train_snr_db: tuple[float, ...] = (15.0, 5.0)
    speed_factors: tuple[float, ...] = (1.0,)  # recogniser training copies per speed (StringsConfig)
    vtlp: float = 0.0  # VTLP warps within 1 ± vtlp of the recognisers' training log-mels (0: none)
    test_size: int = 200
    noisy_snr_db: float = 10.0
    gain_db: float = 6.0
    steps: int = 500
    attention_steps: int = 500
    batch_size: int = 16
    lr: float = 3e-3
    beam: int = 8
    classifier_steps: int = 300
    aligner_steps: int = 150
    tts_train_size: int = 300
    tts_steps: int = 300
    tts_strings: int = 500
    mcd_strings: int = 50
    griffin_lim_iters: int = 32
    data_root: str | None = None


PRESETS = {
    "full": Config(),
    "quick": Config(
        seeds=(0,),
        folds=(MAIN_FOLD,),
        train_size=48,
        train_snr_db=(10.0,),
        test_size=12,
        steps=30,
        attention_steps=30,
        classifier_steps=30,
        aligner_steps=20,
        tts_train_size=24,
        tts_steps=30,
        tts_strings=12,
        mcd_strings=4,
        griffin_lim_iters=8,
    ),
    "long": Config(steps=4000, attention_steps=4000, speed_factors=(0.9, 1.0, 1.1), vtlp=0.1),
}


def experiment(cfg: Config, task: str, system: str, steps: int, seed: int, fold: str) -> SpeechExperiment:
    """The shipped-config shape of each trained system, so a benchmark run folder is a ``chorus transcribe`` run."""
    data = StringsConfig(
        test_speakers=[fold],
        train_size=cfg.train_size,
        gain_db=cfg.gain_db,
        train_snr_db=list(cfg.train_snr_db),
        speed_factors=list(cfg.speed_factors),
        vtlp=cfg.vtlp,
    )
    train = TrainConfig(
        max_steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=max(1, steps // 10),
        precision="auto",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=max(1, steps // 5),
    )
    model = SpeechModelConfig(task=task, system=system, beam=cfg.beam)  # type: ignore[arg-type]
    return SpeechExperiment(f"speech_{system if task == 'recognize' else 'tts'}", data, model, train)


def test_sets(cfg: Config, fold: str, logmel: LogMel) -> dict[str, list[SpeechItem]]:
    """The fold's held-out strings, clean and noisy (the same utterances plus noise)."""
    data = StringsConfig(test_speakers=[fold], gain_db=cfg.gain_db, seed=0)
    return {
        "clean": load_strings(data.strings(cfg.data_root, "test", cfg.test_size, seed_offset=7), logmel),
        "noisy": load_strings(
            data.strings(cfg.data_root, "test", cfg.test_size, seed_offset=7, snr_db=cfg.noisy_snr_db), logmel
        ),
    }


def score(items: list[SpeechItem], hypotheses: list[list[int]]) -> dict[str, Any]:
    counts = error_counts([it.text for it in items], [digits_to_text(h) for h in hypotheses])
    return {
        "wer": counts.wer,
        "ser": counts.ser,
        "substitutions": counts.substitutions,
        "deletions": counts.deletions,
        "insertions": counts.insertions,
        "words": counts.words,
        "confusion": counts.confusion_matrix(DIGIT_WORDS).tolist(),
    }


def chance_wer(items: list[SpeechItem], min_digits: int = 1, max_digits: int = 7, seed: int = 0) -> float:
    """WER of random digit strings (uniform length and digits, as the test strings are drawn)."""
    rng = np.random.default_rng(seed)
    guesses = [rng.integers(0, 10, size=rng.integers(min_digits, max_digits + 1)).tolist() for _ in items]
    return error_counts([it.text for it in items], [digits_to_text(g) for g in guesses]).wer


def attention_alignment(model: JointCTCAttention, items: list[SpeechItem]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Share of teacher-forced attention peaks inside the right word (and the uniform baseline, chance)."""
    hits = uniform = chance = 0.0
    words = 0
    maps = []
    subsample = model.encoder.subsample
    for i in range(0, len(items), 32):
        chunk = items[i : i + 32]
        batch = speech_batch(chunk)
        weights, frame_mask = model.teacher_forced_weights(
            batch["audio"], batch["audio_mask"], batch["targets"], batch["target_mask"]
        )
        for b, item in enumerate(chunk):
            n, frames = len(item.digits), int(frame_mask[b].sum())
            w = weights[b, :, :frames].float()
            maps.append(w[: n + 1].numpy())
            centre = (w[:n].argmax(-1).numpy() + 0.5) * subsample  # encoder frame → 10 ms frame centre
            inside = (centre >= item.bounds[:, 0]) & (centre < item.bounds[:, 1])
            total = item.mel.shape[1]
            equal = (np.arange(n) + 0.5) * total / n
            hits += inside.sum()
            uniform += ((equal >= item.bounds[:, 0]) & (equal < item.bounds[:, 1])).sum()
            chance += ((item.bounds[:, 1] - item.bounds[:, 0]) / total).sum()
            words += n
    return {"peak_hit": hits / words, "uniform_peak_hit": uniform / words, "chance": chance / words}, maps


def run(cfg: Config, report: Report) -> None:
    out = report.out
    logmel = LogMel()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results: dict[str, Any] = report.results
    main_tests = test_sets(cfg, MAIN_FOLD, logmel)
    results["chance_wer"] = chance_wer(main_tests["clean"])

    # --- 1. recognition on the main fold, every seed; baselines with the isolated-digit classifier
    main_cfg = experiment(cfg, "recognize", "ctc", cfg.steps, cfg.seeds[0], MAIN_FOLD)
    # built once, on the first recogniser that is trained rather than read back (a report-only rerun never builds it)
    train_items = cache(partial(recognizer_items, main_cfg.data, cfg.data_root, logmel))
    strings = main_cfg.data.strings(cfg.data_root, "train", 1)
    clip_mels, clip_labels = isolated_clips(strings, logmel)
    rec: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def add(system: str, condition: str, value: dict[str, Any]) -> None:
        rec.setdefault(system, {}).setdefault(condition, []).append(value)

    judges = {}
    attention_maps: list[np.ndarray] = []
    for seed in cfg.seeds:
        classifier = train_isolated_classifier(
            clip_mels, clip_labels, cfg.classifier_steps, str(out / "runs" / f"classifier_{seed}"), seed
        )
        ctc = train_recognizer(
            experiment(cfg, "recognize", "ctc", cfg.steps, seed, MAIN_FOLD),
            train_items,
            out / "runs" / f"ctc_{MAIN_FOLD}_{seed}",
            reuse=True,
        )
        attention_cfg = experiment(cfg, "recognize", "attention", cfg.attention_steps, seed, MAIN_FOLD)
        attention = train_recognizer(
            attention_cfg,
            train_items,
            out / "runs" / f"attention_{seed}",
            reuse=True,
        )
        assert isinstance(ctc, CTCRecognizer)  # the ctc config builds one
        judges[seed] = (ctc, classifier)
        for condition, items in main_tests.items():
            mels = [it.mel for it in items]
            add(
                "oracle",
                condition,
                score(
                    items,
                    classify_segments(classifier, mels, [oracle_segments(it.bounds, it.mel.shape[1]) for it in items]),
                ),
            )
            add("vad", condition, score(items, classify_segments(classifier, mels, [vad_segments(m) for m in mels])))
            add("ctc_greedy", condition, score(items, decode_items(ctc, mels, beam=0)))
            add("ctc_beam", condition, score(items, decode_items(ctc, mels, beam=cfg.beam)))
            add("ctc_adapted", condition, score(items, decode_items(adapt_to_speaker(ctc, mels), mels, beam=cfg.beam)))
            add("attention", condition, score(items, decode_items(attention, mels)))
            joint = decode_items(attention, mels, beam=cfg.beam, ctc_weight=attention_cfg.model.decode_ctc_weight)
            add("attention_joint", condition, score(items, joint))
        assert isinstance(attention, JointCTCAttention)  # the attention config builds one
        alignment, maps = attention_alignment(attention, main_tests["clean"])
        add("attention_alignment", "clean", alignment)
        if seed == cfg.seeds[0]:
            attention_maps = maps
    results["recognition"] = rec

    # --- six folds: the CTC recogniser once per held-out speaker (the main fold's first seed reused)
    folds: dict[str, dict[str, float]] = {}
    for fold in cfg.folds:
        if fold == MAIN_FOLD:
            folds[fold] = {
                f"{c}{adapted}": rec[system][c][0]["wer"]
                for c in ("clean", "noisy")
                for adapted, system in (("", "ctc_beam"), ("_adapted", "ctc_adapted"))
            }
            continue
        fold_cfg = experiment(cfg, "recognize", "ctc", cfg.steps, cfg.seeds[0], fold)
        model = train_recognizer(
            fold_cfg,
            partial(recognizer_items, fold_cfg.data, cfg.data_root, logmel),
            out / "runs" / f"ctc_{fold}_{cfg.seeds[0]}",
            reuse=True,
        )
        assert isinstance(model, CTCRecognizer)  # the ctc config builds one
        folds[fold] = {}
        for c, items in test_sets(cfg, fold, logmel).items():
            mels = [it.mel for it in items]
            folds[fold][c] = score(items, decode_items(model, mels, beam=cfg.beam))["wer"]
            adapted = adapt_to_speaker(model, mels)
            folds[fold][f"{c}_adapted"] = score(items, decode_items(adapted, mels, beam=cfg.beam))["wer"]
    results["folds"] = folds

    # --- 3. synthesis in the main fold's voice, judged by the main fold's recognisers (never heard it)
    voice, others, texts = synthesis_data(cfg, logmel)
    reference = DigitStrings(cfg.data_root, split="test", size=1, test_speakers=(MAIN_FOLD,), pause_s=(0.05, 0.3))
    tts: list[dict[str, float]] = []
    example: dict[str, Any] = {}
    for seed in cfg.seeds:
        tagger, items = synthesize_unseen(cfg, seed, voice, others, texts, out / "runs", logmel)
        mels = [it.mel for it in items]
        ctc, classifier = judges[seed]
        judged = score(items, decode_items(ctc, mels, beam=cfg.beam))
        spans = align_items(tagger, mels, texts)
        segments = [np.stack([s, e], axis=1) for s, e in spans]
        named = classify_segments(classifier, mels, segments)
        digit_acc = float(np.mean([p == t for ps, ts in zip(named, texts) for p, t in zip(ps, ts)]))
        rng = np.random.default_rng(seed)
        mcd, mcd_real, mcd_other = [], [], []
        for d, mel in zip(texts[: cfg.mcd_strings], mels):
            real = logmel(reference.utterance(d, MAIN_FOLD, rng)["audio"])
            again = logmel(reference.utterance(d, MAIN_FOLD, rng)["audio"])
            other = logmel(reference.utterance(d, "jackson", rng)["audio"])
            mcd.append(mel_cepstral_distortion(mel, real))
            mcd_real.append(mel_cepstral_distortion(again, real))
            mcd_other.append(mel_cepstral_distortion(other, real))
            if not example:
                example = {"text": digits_to_text(d), "real": real.numpy(), "synth": mel.numpy()}
        tts.append(
            {
                "wer": judged["wer"],
                "string_error": judged["ser"],
                "segment_digit_acc": digit_acc,
                "mcd": float(np.mean(mcd)),
                "mcd_real_same_speaker": float(np.mean(mcd_real)),
                "mcd_real_other_speaker": float(np.mean(mcd_other)),
            }
        )
    results["tts"] = tts
    results["tts_texts"] = len(texts)

    write_tables(cfg, report, attention_maps, main_tests["clean"], example)


def synthesis_experiment(cfg: Config, seed: int) -> SpeechExperiment:
    """The synthesiser of seed ``seed`` in the main fold's voice, trained on ``cfg.tts_train_size`` of its strings."""
    tts_cfg = experiment(cfg, "synthesize", "ctc", cfg.tts_steps, seed, MAIN_FOLD)
    tts_cfg.data.train_size = cfg.tts_train_size
    return tts_cfg


def synthesis_data(cfg: Config, logmel: LogMel) -> tuple[list[SpeechItem], list[SpeechItem], list[list[int]]]:
    """(the main fold's voice: the synthesiser's training strings; the other speakers' strings, for the aligner;
    ``cfg.tts_strings`` digit strings whose text the synthesiser never saw)."""
    tts_cfg = synthesis_experiment(cfg, cfg.seeds[0])
    voice = voice_items(tts_cfg, cfg.data_root, logmel)
    others = load_strings(tts_cfg.data.strings(cfg.data_root, "train", cfg.tts_train_size, seed_offset=3), logmel)
    return voice, others, unseen_strings(cfg.tts_strings, {it.text for it in voice}, seed=11)


def synthesize_unseen(
    cfg: Config,
    seed: int,
    voice: list[SpeechItem],
    others: list[SpeechItem],
    texts: list[list[int]],
    runs: Path,
    logmel: LogMel,
) -> tuple[FrameTagger, list[SpeechItem]]:
    """Train seed ``seed``'s aligner (on ``others``) and synthesiser (on ``voice``) into ``runs``, and speak ``texts``:
    (the aligner, one item per text with the synthesised wave, its log-mel and the transcript)."""
    tts_cfg = synthesis_experiment(cfg, seed)
    tagger = train_aligner(others, cfg.aligner_steps, runs / f"aligner_{seed}", seed)
    synth = train_synthesizer(tts_cfg, voice, align_voice(tagger, voice), runs / f"tts_{seed}")
    waves = [synthesize_wave(synth, d, cfg.griffin_lim_iters, seed) for d in texts]
    with torch.no_grad():
        mels = [logmel(w) for w in waves]
    return tagger, [
        SpeechItem(m, torch.tensor(d), digits_to_text(d), np.zeros((len(d), 2)), torch.zeros(0), "tts", w)
        for m, w, d in zip(mels, waves, texts, strict=True)
    ]


def unseen_strings(count: int, seen: set[str], seed: int, digits: tuple[int, int] = (1, 7)) -> list[list[int]]:
    """``count`` random digit strings whose text is not in ``seen`` (the synthesiser's training transcripts)."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = []
    while len(out) < count:
        d = rng.integers(0, 10, size=rng.integers(digits[0], digits[1] + 1)).tolist()
        if digits_to_text(d) not in seen:
            out.append(d)
    return out


def _ms(runs: list[dict[str, Any]], key: str, scale: float = 100.0) -> str:
    values = [r[key] for r in runs]
    return fmt_mean_std(values, scale=scale, digits=1) if len(values) > 1 else f"{values[0] * scale:.1f}"


def write_tables(
    cfg: Config, report: Report, maps: list[np.ndarray], clean: list[SpeechItem], example: dict[str, Any]
) -> None:
    r = report.results
    rec, folds, tts = r["recognition"], r["folds"], r["tts"]
    names = {
        "oracle": "baseline (a): isolated-digit classifier on oracle word segments",
        "vad": "baseline (b): isolated-digit classifier on energy-VAD segments",
        "ctc_greedy": "CTC recogniser, greedy",
        "ctc_beam": f"CTC recogniser, beam {cfg.beam} + length prior",
        "ctc_adapted": f"CTC recogniser, beam {cfg.beam} + length prior, adapted to the speaker without transcripts",
        "attention": "joint CTC-attention recogniser, greedy (decoder alone)",
        "attention_joint": f"joint CTC-attention recogniser, joint decoding (beam {cfg.beam}, CTC weight "
        f"{SpeechModelConfig.decode_ctc_weight:g})",
    }
    rows = [
        [
            label,
            _ms(rec[k]["clean"], "wer"),
            _ms(rec[k]["clean"], "ser"),
            _ms(rec[k]["noisy"], "wer"),
            _ms(rec[k]["noisy"], "ser"),
        ]
        for k, label in names.items()
    ]
    report.table(
        f"Recognition, held-out speaker {MAIN_FOLD} ({len(clean)} strings of 1–7 digits; "
        f"{len(cfg.seeds)} seed(s), mean ± std)",
        [
            "system",
            "WER clean (%)",
            "SER clean (%)",
            f"WER {cfg.noisy_snr_db:g} dB (%)",
            f"SER {cfg.noisy_snr_db:g} dB (%)",
        ],
        rows,
        note=f"Chance (random 1–7 digit strings): WER {100 * r['chance_wer']:.1f} %.",
    )
    columns = ("clean", "clean_adapted", "noisy", "noisy_adapted")
    fold_rows = [[f, *(f"{100 * v[c]:.1f}" for c in columns)] for f, v in folds.items()]
    if len(folds) > 1:
        fold_rows.append(["mean", *(f"{100 * np.mean([v[c] for v in folds.values()]):.1f}" for c in columns)])
    db = f"{cfg.noisy_snr_db:g} dB"
    report.table(
        f"CTC recogniser (beam) by held-out speaker (seed {cfg.seeds[0]})",
        ["held-out speaker", "WER clean (%)", "adapted", f"WER {db} (%)", "adapted"],
        fold_rows,
        note=f"'adapted': after unsupervised speaker adaptation on the speaker's test utterances; its settings were "
        f"chosen on {ADAPT_TUNING_FOLD} (so that row is not a held-out figure for it), never on {MAIN_FOLD}.",
    )
    att = rec["attention_alignment"]["clean"]
    report.table(
        "Implicit alignment: attention peaks inside the right word (teacher-forced, clean)",
        ["read-out", "peaks in the right word (%)"],
        [
            ["chance (word length / utterance length)", _ms(att, "chance")],
            ["uniform peaks (centre of the k-th equal part)", _ms(att, "uniform_peak_hit")],
            ["joint CTC-attention decoder, last layer, heads averaged", _ms(att, "peak_hit")],
        ],
    )
    confusion = np.asarray(rec["ctc_beam"]["clean"][0]["confusion"])
    labels = list(DIGIT_WORDS) + ["<ins>"]
    report.table(
        f"CTC (beam) per-digit confusion, {MAIN_FOLD} clean, seed {cfg.seeds[0]} (rows: spoken; "
        "columns: recognised; last column = deleted, last row = inserted)",
        ["spoken \\ recognised", *DIGIT_WORDS, "<del>"],
        [[labels[i], *[str(v) for v in row]] for i, row in enumerate(confusion)],
    )
    report.table(
        f"Synthesis in {MAIN_FOLD}'s voice: {r['tts_texts']} unseen digit strings "
        f"({len(cfg.seeds)} seed(s), mean ± std)",
        ["measure", "value"],
        [
            ["WER by the CTC recogniser (never heard the voice) (%)", _ms(tts, "wer")],
            ["round trip text → speech → text, string error rate (%)", _ms(tts, "string_error")],
            ["isolated-digit classifier on forced-aligned segments, digit accuracy (%)", _ms(tts, "segment_digit_acc")],
            [f"MCD synthesised vs real {MAIN_FOLD}, same text (dB)", _ms(tts, "mcd", 1.0)],
            [
                f"MCD real {MAIN_FOLD} vs real {MAIN_FOLD} (other takes), same text (dB)",
                _ms(tts, "mcd_real_same_speaker", 1.0),
            ],
            [f"MCD real jackson vs real {MAIN_FOLD}, same text (dB)", _ms(tts, "mcd_real_other_speaker", 1.0)],
        ],
        note="Reference for the WER: the same recogniser on real speech of this speaker, first table.",
    )
    report.text(
        "Round trip",
        f"Text → speech → text string error rate on {r['tts_texts']} random strings: **{_ms(tts, 'string_error')} %**.",
    )
    with report.figure("wer_by_fold", figsize=(7, 3)) as (_, ax):
        x = np.arange(len(folds))
        for k, (c, label) in enumerate((c, c.replace("noisy", db).replace("_", ", ")) for c in columns):
            hatch = "//" if c.endswith("adapted") else None
            ax.bar(x - 0.3 + 0.2 * k, [100 * v[c] for v in folds.values()], 0.2, label=label, hatch=hatch)
        ax.set_xticks(x, list(folds))
        ax.set_ylabel("WER (%)")
        ax.set_title("CTC recogniser by held-out speaker")
        ax.legend(fontsize="small")
    with report.figure("attention_map", figsize=(7, 3)) as (_, ax):
        item = clean[0]
        ax.imshow(maps[0], aspect="auto", cmap="magma", origin="lower")
        for start, end in item.bounds / 4:
            ax.axvline(start - 0.5, color="cyan", lw=0.8)
            ax.axvline(end - 0.5, color="white", lw=0.8, ls="--")
        ax.set_yticks(range(len(item.digits) + 1), [*item.text.split(), "<eos>"])
        ax.set_xlabel("encoder frame (40 ms); lines: true word start (solid) / end (dashed)")
        ax.set_title("decoder cross-attention, teacher-forced")
    with report.figure("mel_real_vs_synth", nrows=2, figsize=(7, 4)) as (_, axes):
        for ax, key in zip(axes, ("real", "synth")):
            ax.imshow(example[key], aspect="auto", origin="lower", cmap="viridis")
            ax.set_title(f'{"real " + MAIN_FOLD if key == "real" else "synthesised"}: "{example["text"]}"')
            ax.set_ylabel("mel band")
        axes[-1].set_xlabel("frame (10 ms)")
    cards(cfg, report)


def cards(cfg: Config, report: Report) -> None:
    r = report.results
    rec, tts, folds = r["recognition"], r["tts"], r["folds"]
    fold_mean = 100 * np.mean([v["clean"] for v in folds.values()])
    published = (
        "TIDIGITS connected digits: HMM systems reach ≈ 0.5–1 % WER (e.g. Leonard 1984's corpus; "
        "Hirsch & Pearce 2000 / Aurora-2 clean-trained ≈ 1 % on clean speech) with 112 adult training "
        "speakers (326 in the corpus) and 8,623 training strings. Here 5 training speakers (all male) give the model five voices to "
        "generalise from and the test voice is the sixth: the gap is mostly speaker variability "
        "the training set cannot span, not the model family."
    )
    report.card(
        MethodCard(
            "CTC digit-string recogniser",
            "CTC sums over every frame labelling that collapses to the transcript, so the recogniser learns to name "
            "the words without ever being told where they are; the blank class absorbs pauses and word interiors.",
            "speaker-robust log-mel front end (40 dB floor, per-band mean removal, SpecAugment) → 2 conv blocks "
            "(stride 2 each, 40 ms frames) → 2-layer pre-LN Transformer, width 96 → linear over blank + 10 digit words; "
            f"multi-condition training (clean + {', '.join(f'{s:g}' for s in cfg.train_snr_db)} dB copies)"
            + (f", speeds {' / '.join(f'{f:g}' for f in cfg.speed_factors)}" if cfg.speed_factors != (1.0,) else "")
            + (f", VTLP warps within 1 ± {cfg.vtlp:g}" if cfg.vtlp else ""),
            f"isolated-digit classifier on oracle segments: {_ms(rec['oracle']['clean'], 'wer')} % WER; on energy-VAD "
            f"segments {_ms(rec['vad']['clean'], 'wer')} %",
            f"{MAIN_FOLD}: {_ms(rec['ctc_beam']['clean'], 'wer')} % WER clean (greedy {_ms(rec['ctc_greedy']['clean'], 'wer')}), "
            f"{_ms(rec['ctc_beam']['noisy'], 'wer')} % at {cfg.noisy_snr_db:g} dB; six-fold mean {fold_mean:.1f} % "
            f"(target ≤ 12 % on {MAIN_FOLD} and no worse than baseline (a))",
            published,
        )
    )
    adapted_mean = 100 * np.mean([v["clean_adapted"] for f, v in folds.items() if f != ADAPT_TUNING_FOLD])
    unadapted_mean = 100 * np.mean([v["clean"] for f, v in folds.items() if f != ADAPT_TUNING_FOLD])
    adapt = AdaptConfig()
    report.card(
        MethodCard(
            "Unsupervised speaker adaptation of the CTC recogniser",
            "A new voice's errors are mostly substitutions, and some voices confuse two words systematically; over "
            "that voice's untranscribed frames the two words' posteriors overlap. Minimum class confusion (Jin et al. "
            "2020) plus entropy minimisation (SUTA) on the frames the recogniser calls words, adapting only the "
            "encoder's LayerNorms, pulls the confused words apart; the blank stays the unadapted model's, so where "
            "the words are does not change, only which word each one is.",
            f"the CTC recogniser above; {adapt.steps} AdamW steps (lr {adapt.lr:g}, {adapt.batch_size} utterances "
            f"each, entropy weight {adapt.entropy_weight:g}, temperature {adapt.temperature:g}) on the held-out "
            f"speaker's test utterances without their transcripts; settings chosen on {ADAPT_TUNING_FOLD}",
            f"the same recogniser unadapted: {MAIN_FOLD} {_ms(rec['ctc_beam']['clean'], 'wer')} % WER clean, "
            f"{_ms(rec['ctc_beam']['noisy'], 'wer')} % at {cfg.noisy_snr_db:g} dB; mean over the held-out speakers "
            f"other than {ADAPT_TUNING_FOLD} {unadapted_mean:.1f} %",
            f"{MAIN_FOLD}: {_ms(rec['ctc_adapted']['clean'], 'wer')} % WER clean, "
            f"{_ms(rec['ctc_adapted']['noisy'], 'wer')} % at {cfg.noisy_snr_db:g} dB; mean over the held-out "
            f"speakers other than {ADAPT_TUNING_FOLD} {adapted_mean:.1f} %",
            "Lin et al. 2022 (SUTA) adapt a wav2vec 2.0 CTC model per utterance: e.g. CHiME-3 31.2 → 25.0 % WER, "
            "Common Voice 36.8 → 31.2 %. Here the shift is one new voice of six and the adaptation sees all of its "
            "utterances at once, as classical unsupervised speaker adaptation (MLLR on first-pass transcripts) does.",
        )
    )
    att = rec["attention_alignment"]["clean"]
    report.card(
        MethodCard(
            "Joint CTC-attention recogniser",
            "An autoregressive decoder cross-attends to the encoder frames; the CTC loss on the same encoder "
            "(weight 0.3, Watanabe et al. 2017) forces monotonic, word-localised frame features from the first steps, "
            "so the attention finds the words instead of wandering; label smoothing 0.1 and teacher forcing as usual.",
            "the CTC recogniser's encoder + 2-layer Transformer decoder (causal self-attention, 4-head "
            f"cross-attention); joint decoding: the decoder's beam ({cfg.beam}) and the CTC head's best path rescored "
            f"by {SpeechModelConfig.decode_ctc_weight:g} · log P_CTC + {1 - SpeechModelConfig.decode_ctc_weight:g} "
            "· log P_attention",
            f"CTC recogniser (beam): {_ms(rec['ctc_beam']['clean'], 'wer')} % WER; uniform attention peaks "
            f"{_ms(att, 'uniform_peak_hit')} % in the right word, chance {_ms(att, 'chance')} %",
            f"joint decoding {_ms(rec['attention_joint']['clean'], 'wer')} % WER clean, "
            f"{_ms(rec['attention_joint']['noisy'], 'wer')} % at {cfg.noisy_snr_db:g} dB (target within 3 points of "
            f"CTC); the decoder alone (greedy) {_ms(rec['attention']['clean'], 'wer')} % clean, "
            f"{_ms(rec['attention']['noisy'], 'wer')} %; {_ms(att, 'peak_hit')} % of attention peaks inside the "
            "right word",
            "Watanabe et al. 2017 (hybrid CTC/attention) and Chorowski et al. 2015 show attention ASR aligning "
            "with the words; no peak-hit figure on digits to compare with. " + published,
        )
    )
    report.card(
        MethodCard(
            "FastSpeech-style digit-string synthesiser with Griffin-Lim",
            "Durations come from Viterbi forced alignment (a frame tagger trained on the other speakers), so each "
            "frame's target is a known part of a known word and an L1 regression learns per-word spectral templates "
            "that follow the word's timing; a length regulator makes any string of words.",
            "token conv encoder (pause token around every word) → duration head → length regulator with "
            "within-token position sinusoids → 4 residual conv layers → 40-band log-mel → Griffin-Lim "
            f"({cfg.griffin_lim_iters} iterations); trained on {cfg.tts_train_size} strings of {MAIN_FOLD}",
            f"real {MAIN_FOLD} speech read by the same recogniser: {_ms(rec['ctc_beam']['clean'], 'wer')} % WER; "
            f"MCD between two real {MAIN_FOLD} utterances of the same text {_ms(tts, 'mcd_real_same_speaker', 1.0)} dB",
            f"{_ms(tts, 'wer')} % WER on {r['tts_texts']} unseen strings (target ≤ 10 %), round-trip string error "
            f"{_ms(tts, 'string_error')} %, digit accuracy on aligned segments {_ms(tts, 'segment_digit_acc')} %, "
            f"MCD {_ms(tts, 'mcd', 1.0)} dB",
            "Ren et al. 2019 (FastSpeech) report MOS 3.84 vs 4.41 for real speech on LJSpeech with a WaveGlow "
            "vocoder; MCD of Tacotron-class systems is typically 4–7 dB on SPTK mel-cepstra. Our log-mel MCD is not "
            "on that scale (see the real-vs-real rows), and Griffin-Lim is audibly buzzier than a neural vocoder "
            "(not built here).",
        )
    )
