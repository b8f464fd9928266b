"""Training and decoding probe for the CTC recogniser: one seed, theo held out, the benchmark's data and decoding.

Two steps, so that decoding variants never retrain a model:

``python benchmarks/speech_probe.py train TAG --steps 500 [--speed 0.9,1.0,1.1] [--vtlp 0.1] [--seed 0] [--train-size 500] [--adversary 0.3] [--width 192] [--fold jackson]``
    trains the benchmark's CTC recogniser (``chorus.bench.speech.experiment``, theo held out unless ``--fold`` names
    another speaker: 500 clean training strings plus
    15 and 5 dB copies, batch 16, cosine schedule with 10 % warm-up) with the given number of steps, training-data
    perturbation, training seed (the strings stay the benchmark's) and number of clean training strings, into
    ``runs/speech_probe/TAG`` (a ``chorus transcribe`` run folder).
``python benchmarks/speech_probe.py evaluate TAG [TAG ...] --out benchmarks/results/speech_probe_perturb``
    picks the blank penalty of each run on new strings by the five training voices
    (:func:`chorus.translate.speech_runs.tune_blank_penalty`; never on the held-out voice), then decodes the
    benchmark's 200 clean and 200 10-dB strings of the run's held-out speaker (theo unless trained with
    ``--fold``) greedily and with beam 8 + length prior, with penalty 0 and the picked one; writes ``OUT.json``
    and ``OUT.md`` (WER, SER and substitution / deletion / insertion counts).
``python benchmarks/speech_probe.py joint RUN [RUN ...] --out benchmarks/results/speech_probe_joint``
    decodes with each joint CTC-attention run folder (e.g. the benchmark's ``runs/attention_<seed>``) greedily and
    with joint decoding (beam 8) at CTC weights 0, 0.3, 0.5, 0.7 and 1, on new strings by the five training voices
    and on the benchmark's 200 clean theo strings: how much the fixed weight of the benchmark (0.5) matters, and
    whether the training voices would have picked another.
``python benchmarks/speech_probe.py adapt TAG [TAG ...] --out benchmarks/results/speech_probe_adapt``
    decodes each CTC run's held-out speaker (200 clean and 200 10-dB strings, beam 8 + length prior) before and
    after unsupervised speaker adaptation (:func:`chorus.translate.speaker_adapt.adapt_to_speaker` on the same
    untranscribed utterances, each condition on its own), and the adapted decoding of the 200 clean strings when
    the adaptation saw only ``--enrol`` other strings of the speaker (a disjoint draw of its clips into strings).
``python benchmarks/speech_probe.py tts JUDGE [JUDGE ...] --steps 300 --seeds 0 --out benchmarks/results/speech_probe_tts``
    trains the benchmark's synthesiser in theo's voice (its aligner, data and unseen texts; ``--steps`` synthesiser
    steps) for each seed and reads its 500 synthesised strings with each judge, a CTC run trained above on the other
    five speakers: how much of the synthesis WER is the judge's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from chorus.bench.speech import (
    MAIN_FOLD,
    Config,
    experiment,
    score,
    synthesis_data,
    synthesize_unseen,
    test_sets,
)
from chorus.data.audio import LogMel
from chorus.translate.recognizer import CTCRecognizer, JointCTCAttention
from chorus.translate.speaker_adapt import adapt_to_speaker
from chorus.translate.speech_data import SPEAKER_FOLDS, SpeechItem, load_strings
from chorus.translate.speech_runs import (
    SpeechModelConfig,
    StringsConfig,
    decode_items,
    load_speech_run,
    recognizer_items,
    train_recognizer,
    tune_blank_penalty,
)

RUNS = Path("runs/speech_probe")
WIDTH = SpeechModelConfig.width
DEV_SEED = 77  # new strings by the training voices, as benchmarks/speech_diagnostics.py


def train(
    tag: str,
    steps: int,
    speed: list[float],
    vtlp: float,
    seed: int,
    train_size: int,
    dropout: float,
    window: int,
    adversary: float,
    width: int,
    fold: str,
) -> None:
    cfg = experiment(Config(train_size=train_size), "recognize", "ctc", steps, seed, fold)
    cfg.model.width = width
    cfg.model.dropout = dropout
    cfg.model.window = window
    cfg.model.speaker_adversary = adversary
    cfg.data.speed_factors = speed
    cfg.data.vtlp = vtlp
    started = time.time()
    items = recognizer_items(cfg.data)
    print(tag, "data", len(items), "utterances", round(time.time() - started), "s", flush=True)
    started = time.time()
    train_recognizer(cfg, items, RUNS / tag)
    elapsed = time.time() - started
    print(tag, "train", round(elapsed), "s,", round(100 * elapsed / steps, 1), "s per 100 steps", flush=True)
    (RUNS / tag / "timing.json").write_text(json.dumps({"train_s": elapsed, "steps": steps}))


def evaluate(tags: list[str], out: Path, dev_size: int) -> None:
    logmel = LogMel()
    results: dict[str, Any] = (
        json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    )
    # held-out speaker → (its test sets, dev strings by the training voices), built once however many runs share it
    by_fold: dict[str, tuple[dict[str, list[SpeechItem]], list[SpeechItem]]] = {}
    for tag in tags:
        cfg, model = load_speech_run(RUNS / tag, "recognize")
        assert isinstance(model, CTCRecognizer)
        fold = cfg.data.test_speakers[0]  # the run's held-out speaker
        if fold not in by_fold:
            strings = StringsConfig(test_speakers=[fold], gain_db=Config.gain_db, seed=DEV_SEED)
            by_fold[fold] = (
                test_sets(Config(), fold, logmel),
                load_strings(strings.strings(None, "train", dev_size), logmel),
            )
        tests, dev = by_fold[fold]
        timing = json.loads((RUNS / tag / "timing.json").read_text())
        record: dict[str, Any] = {
            "steps": cfg.train.max_steps,
            "seed": cfg.train.seed,
            "speed_factors": cfg.data.speed_factors,
            "vtlp": cfg.data.vtlp,
            "train_size": cfg.data.train_size,
            "dropout": cfg.model.dropout,
            "window": cfg.model.window,
            "speaker_adversary": cfg.model.speaker_adversary,
            "width": cfg.model.width,
            "train_s": round(timing["train_s"]),
            "s_per_100_steps": round(100 * timing["train_s"] / timing["steps"], 1),
            "decoding": {},
        }
        for beam in (0, 8):
            penalty, sweep = tune_blank_penalty(model, [it.mel for it in dev], [it.text for it in dev], beam=beam)
            record[f"dev_sweep_beam{beam}"] = sweep
            for p in sorted({0.0, penalty}):
                key = f"{'greedy' if beam == 0 else f'beam{beam}'}_penalty{p:g}"
                record["decoding"][key] = {
                    "beam": beam,
                    "blank_penalty": p,
                    "picked_on_training_voices": p == penalty,
                    **{
                        condition: _counts(
                            score(items, decode_items(model, [it.mel for it in items], beam=beam, blank_penalty=p))
                        )
                        for condition, items in tests.items()
                    },
                }
                print(tag, key, {c: record["decoding"][key][c]["wer"] for c in tests}, flush=True)
        results[tag] = record
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(_markdown(results, out))


def adapt(tags: list[str], out: Path, enrol: list[int]) -> None:
    logmel = LogMel()
    path = out.with_suffix(".json")
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    for tag in tags:
        cfg, model = load_speech_run(RUNS / tag, "recognize")
        assert isinstance(model, CTCRecognizer)
        fold = cfg.data.test_speakers[0]
        tests = test_sets(Config(), fold, logmel)
        record: dict[str, Any] = {"fold": fold, "seed": cfg.train.seed, "steps": cfg.train.max_steps}
        for condition, items in tests.items():
            mels = [it.mel for it in items]
            record[condition] = _counts(score(items, decode_items(model, mels, beam=8)))
            started = time.time()
            adapted = adapt_to_speaker(model, mels)
            record[f"{condition}_adapt_s"] = round(time.time() - started, 1)
            record[f"{condition}_adapted"] = _counts(score(items, decode_items(adapted, mels, beam=8)))
        other = StringsConfig(test_speakers=[fold], gain_db=Config.gain_db, seed=DEV_SEED)
        clean = tests["clean"]
        for n in enrol:
            enrolment = [it.mel for it in load_strings(other.strings(None, "test", n), logmel)]
            adapted = adapt_to_speaker(model, enrolment)
            record[f"clean_adapted_enrol{n}"] = _counts(
                score(clean, decode_items(adapted, [it.mel for it in clean], beam=8))
            )
        print(tag, fold, {k: round(100 * v["wer"], 1) for k, v in record.items() if isinstance(v, dict)}, flush=True)
        results[tag] = record
        path.write_text(json.dumps(results, indent=1))
    rows = [
        "| run | held-out speaker | seed | clean | clean, adapted | S / D / I before → after | "
        + " | ".join(f"clean, adapted on {n} other strings" for n in enrol)
        + " | 10 dB | 10 dB, adapted |",
        "|---|---|---|---|---|---|" + "---|" * len(enrol) + "---|---|",
    ]
    for tag, rec in results.items():
        c, a = rec["clean"], rec["clean_adapted"]
        rows.append(
            f"| {tag} | {rec['fold']} | {rec['seed']} | {100 * c['wer']:.1f} | **{100 * a['wer']:.1f}** | "
            f"{c['substitutions']} / {c['deletions']} / {c['insertions']} → "
            f"{a['substitutions']} / {a['deletions']} / {a['insertions']} | "
            + " | ".join(f"{100 * rec[f'clean_adapted_enrol{n}']['wer']:.1f}" for n in enrol)
            + f" | {100 * rec['noisy']['wer']:.1f} | {100 * rec['noisy_adapted']['wer']:.1f} |"
        )
    out.with_suffix(".md").write_text(
        "# Unsupervised speaker adaptation of the CTC recogniser\n\n"
        "WER (%) on each run's held-out speaker (the benchmark's 200 strings, beam 8 + length prior) before and after "
        "adapting the encoder's LayerNorms to that speaker's untranscribed utterances (`adapt_to_speaker`, default "
        "`AdaptConfig`: settings chosen on `jackson`, never on `theo`). 'Adapted' adapts on the test utterances "
        "themselves (each condition on its own); 'adapted on N other strings' adapts on N other strings of the "
        f"speaker (DigitStrings seed {DEV_SEED}; the same 500 clips, drawn into other strings) and decodes the "
        "clean test strings.\n\n" + "\n".join(rows) + "\n\nCommand:\n\n```text\n"
        f"python benchmarks/speech_probe.py adapt {' '.join(results)} --enrol {','.join(map(str, enrol))} --out {out}\n```\n"
    )


JOINT_WEIGHTS = (0.0, 0.3, 0.5, 0.7, 1.0)


def joint(runs: list[Path], out: Path, dev_size: int) -> None:
    logmel = LogMel()
    sets = {
        "training voices": load_strings(
            StringsConfig(gain_db=Config.gain_db, seed=DEV_SEED).strings(None, "train", dev_size), logmel
        ),
        f"{MAIN_FOLD} clean": test_sets(Config(), MAIN_FOLD, logmel)["clean"],
    }
    results: dict[str, Any] = {}
    for run in runs:
        cfg, model = load_speech_run(run, "recognize")
        assert isinstance(model, JointCTCAttention)
        record: dict[str, Any] = {"steps": cfg.train.max_steps, "seed": cfg.train.seed}
        for name, items in sets.items():
            mels = [it.mel for it in items]
            row = {"greedy": score(items, decode_items(model, mels))["wer"]}
            for weight in JOINT_WEIGHTS:
                row[f"{weight:g}"] = score(items, decode_items(model, mels, beam=8, ctc_weight=weight))["wer"]
            record[name] = row
            print(run, name, {k: round(100 * v, 1) for k, v in row.items()}, flush=True)
        results[str(run)] = record
        out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    header = (
        "| run | steps | strings | greedy | " + " | ".join(f"joint, CTC weight {w:g}" for w in JOINT_WEIGHTS) + " |"
    )
    rows = [header, "|" + "---|" * (4 + len(JOINT_WEIGHTS))]
    for run, rec in results.items():
        for name in sets:
            r = rec[name]
            rows.append(
                f"| {Path(run).name} | {rec['steps']} | {name} | {100 * r['greedy']:.1f} | "
                + " | ".join(f"{100 * r[f'{w:g}']:.1f}" for w in JOINT_WEIGHTS)
                + " |"
            )
    for name in sets:
        means = [
            np.mean([rec[name][k] for rec in results.values()]) for k in ("greedy", *(f"{w:g}" for w in JOINT_WEIGHTS))
        ]
        rows.append(f"| mean | | {name} | " + " | ".join(f"{100 * m:.1f}" for m in means) + " |")
    out.with_suffix(".md").write_text(
        "# Joint CTC-attention decoding: the CTC weight\n\n"
        f"WER (%) of each joint CTC-attention recogniser decoded greedily (the decoder alone) and by joint decoding "
        f"(beam 8: the decoder's beam and the CTC head's best path, rescored by w · log P_CTC + (1 − w) · log P_att) "
        f"on {dev_size} new strings by the five training voices (DigitStrings seed {DEV_SEED}) and the benchmark's "
        f"{len(sets[f'{MAIN_FOLD} clean'])} clean {MAIN_FOLD} strings. The benchmark fixes w = 0.5 without looking "
        "at either.\n\n" + "\n".join(rows) + "\n\nCommand:\n\n```text\n"
        f"python benchmarks/speech_probe.py joint {' '.join(results)} --out {out}\n```\n"
    )


def tts(judges: list[str], steps: int, seeds: list[int], griffin_lim_iters: int, out: Path) -> None:
    cfg = Config(tts_steps=steps, seeds=tuple(seeds), griffin_lim_iters=griffin_lim_iters)
    logmel = LogMel()
    voice, others, texts = synthesis_data(cfg, logmel)
    path = out.with_suffix(".json")
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    models = {tag: load_speech_run(RUNS / tag, "recognize")[1] for tag in judges}
    for seed in seeds:
        name = f"tts{steps}_gl{griffin_lim_iters}_seed{seed}"
        _, items = synthesize_unseen(cfg, seed, voice, others, texts, RUNS / name, logmel)
        record = results.setdefault(
            name, {"steps": steps, "griffin_lim_iters": griffin_lim_iters, "seed": seed, "texts": len(texts)}
        )
        for tag, model in models.items():
            record[tag] = _counts(score(items, decode_items(model, [it.mel for it in items], beam=cfg.beam)))
            print(name, tag, record[tag]["wer"], flush=True)
        path.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(_tts_markdown(results, out))


def _tts_markdown(results: dict[str, Any], out: Path) -> str:
    rows = [
        "| synthesiser steps | Griffin-Lim iterations | seed | judge | WER (%) | SER (%) | S / D / I |",
        "|---|---|---|---|---|---|---|",
    ]
    commands = []
    for rec in results.values():
        judges = [k for k in rec if k not in ("steps", "griffin_lim_iters", "seed", "texts")]
        for tag in judges:
            j = rec[tag]
            rows.append(
                f"| {rec['steps']} | {rec['griffin_lim_iters']} | {rec['seed']} | {tag} | {100 * j['wer']:.1f} | {100 * j['ser']:.1f} | "
                f"{j['substitutions']} / {j['deletions']} / {j['insertions']} |"
            )
        commands.append(
            f"python benchmarks/speech_probe.py tts {' '.join(judges)} --steps {rec['steps']} "
            f"--griffin-lim-iters {rec['griffin_lim_iters']} --seeds {rec['seed']} --out {out}"
        )
    return (
        f"# Synthesis in {MAIN_FOLD}'s voice read by longer-trained recognisers\n\n"
        f"The benchmark's synthesiser (its aligner, training strings and {next(iter(results.values()))['texts']} "
        "digit strings never in its training text), read by CTC recognisers of the probe above: trained on the other "
        f"five speakers, they never heard {MAIN_FOLD}. Beam 8 + length prior, no blank penalty.\n\n"
        + "\n".join(rows)
        + "\n\nCommands:\n\n```text\n"
        + "\n".join(commands)
        + "\n```\n"
    )


def _counts(scored: dict[str, Any]) -> dict[str, Any]:
    return {k: scored[k] for k in ("wer", "ser", "substitutions", "deletions", "insertions", "words")}


def _other_settings(rec: dict[str, Any]) -> str:
    """What a run changed besides length and perturbation (records older than these options changed none)."""
    parts = []
    if rec.get("train_size", Config.train_size) != Config.train_size:
        parts.append(f"{rec['train_size']} training strings")
    if rec.get("dropout"):
        parts.append(f"dropout {rec['dropout']:g}")
    if rec.get("window"):
        parts.append(f"attention window ±{rec['window']} frames")
    if rec.get("speaker_adversary"):
        parts.append(f"speaker adversary {rec['speaker_adversary']:g}")
    if rec.get("width", WIDTH) != WIDTH:
        parts.append(f"encoder width {rec['width']}")
    return ", ".join(parts) or "–"


def _markdown(results: dict[str, Any], out: Path) -> str:
    rows = [
        "| run | steps | speed factors | VTLP | other settings | decoding | blank penalty | WER clean (%) | SER clean (%) | S / D / I clean | WER 10 dB (%) | s / 100 steps |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for tag, rec in results.items():
        for dec in rec["decoding"].values():
            c, n = dec["clean"], dec["noisy"]
            decoding = "greedy" if dec["beam"] == 0 else f"beam {dec['beam']} + length prior"
            rows.append(
                f"| {tag} | {rec['steps']} | {', '.join(f'{f:g}' for f in rec['speed_factors'])} | {rec['vtlp']:g} | "
                f"{_other_settings(rec)} | {decoding} | {dec['blank_penalty']:g}"
                f"{' (picked)' if dec['picked_on_training_voices'] and dec['blank_penalty'] else ''} | "
                f"{100 * c['wer']:.1f} | {100 * c['ser']:.1f} | {c['substitutions']} / {c['deletions']} / {c['insertions']} | "
                f"{100 * n['wer']:.1f} | {rec['s_per_100_steps']} |"
            )
    commands = [
        f"python benchmarks/speech_probe.py train {tag} --steps {rec['steps']}"
        + (f" --speed {','.join(f'{f:g}' for f in rec['speed_factors'])}" if rec["speed_factors"] != [1.0] else "")
        + (f" --vtlp {rec['vtlp']:g}" if rec["vtlp"] else "")
        + (f" --seed {rec['seed']}" if rec.get("seed") else "")
        + (
            f" --train-size {rec['train_size']}"
            if rec.get("train_size", Config.train_size) != Config.train_size
            else ""
        )
        + (f" --dropout {rec['dropout']:g}" if rec.get("dropout") else "")
        + (f" --window {rec['window']}" if rec.get("window") else "")
        + (f" --adversary {rec['speaker_adversary']:g}" if rec.get("speaker_adversary") else "")
        + (f" --width {rec['width']}" if rec.get("width", WIDTH) != WIDTH else "")
        for tag, rec in results.items()
    ]
    commands.append(f"python benchmarks/speech_probe.py evaluate {' '.join(results)} --out {out}")
    return (
        "# CTC recogniser probe: training length, data perturbation, blank penalty\n\n"
        f"Training seed 0 unless the run's command gives another, {MAIN_FOLD} held out, the benchmark's data, model and 200 clean + 200 10-dB test strings. Blank "
        f"penalties are picked on new strings by the five training voices (DigitStrings seed "
        f"{DEV_SEED}), never on {MAIN_FOLD}; 'picked' marks that choice (the sweeps are in the JSON). Timing: one "
        "thread on the shared two-core CPU beside other benchmark processes, so it varies with their load.\n\n"
        + "\n".join(rows)
        + "\n\nCommands (each run's evaluation was appended to the same JSON as it finished):\n\n```text\n"
        + "\n".join(commands)
        + "\n```\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("tag")
    t.add_argument("--steps", type=int, default=500)
    t.add_argument("--speed", default="1.0", help="comma-separated speed-perturbation factors")
    t.add_argument("--vtlp", type=float, default=0.0, help="largest VTLP warp away from 1 (0: none)")
    t.add_argument("--seed", type=int, default=0, help="training seed (the strings stay the benchmark's)")
    t.add_argument("--dropout", type=float, default=0.0, help="dropout on the encoder's frames")
    t.add_argument("--window", type=int, default=0, help="encoder attention window in frames of 40 ms (0: all)")
    t.add_argument(
        "--adversary", type=float, default=0.0, help="speaker-adversarial gradient-reversal weight (0: none)"
    )
    t.add_argument("--width", type=int, default=WIDTH, help="encoder width (the benchmark's: 96)")
    t.add_argument("--fold", default=MAIN_FOLD, choices=SPEAKER_FOLDS, help="the held-out speaker")
    t.add_argument(
        "--train-size", type=int, default=Config.train_size, help="clean training strings (each also at 15 and 5 dB)"
    )
    e = sub.add_parser("evaluate")
    e.add_argument("tags", nargs="+")
    e.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_probe_perturb"))
    e.add_argument("--dev-size", type=int, default=200)
    j = sub.add_parser("joint")
    j.add_argument("runs", nargs="+", type=Path, help="joint CTC-attention run folders")
    j.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_probe_joint"))
    j.add_argument("--dev-size", type=int, default=200)
    a = sub.add_parser("adapt")
    a.add_argument("tags", nargs="+")
    a.add_argument("--enrol", default="20,50,200", help="comma-separated sizes of the other-strings adaptation sets")
    a.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_probe_adapt"))
    s = sub.add_parser("tts")
    s.add_argument("judges", nargs="+", help="CTC runs under runs/speech_probe")
    s.add_argument("--steps", type=int, default=Config.tts_steps, help="synthesiser training steps")
    s.add_argument("--seeds", default="0", help="comma-separated synthesiser seeds")
    s.add_argument("--griffin-lim-iters", type=int, default=Config.griffin_lim_iters, help="vocoder iterations")
    s.add_argument("--out", type=Path, default=Path("benchmarks/results/speech_probe_tts"))
    args = parser.parse_args()
    if args.command == "train":
        train(
            args.tag,
            args.steps,
            [float(f) for f in args.speed.split(",")],
            args.vtlp,
            args.seed,
            args.train_size,
            args.dropout,
            args.window,
            args.adversary,
            args.width,
            args.fold,
        )
    elif args.command == "adapt":
        adapt(args.tags, args.out, [int(n) for n in args.enrol.split(",")])
    elif args.command == "joint":
        joint(args.runs, args.out, args.dev_size)
    elif args.command == "tts":
        tts(args.judges, args.steps, [int(x) for x in args.seeds.split(",")], args.griffin_lim_iters, args.out)
    else:
        evaluate(args.tags, args.out, args.dev_size)


if __name__ == "__main__":
    main()
