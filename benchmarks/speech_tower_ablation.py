"""Which speaker-robust input makes ``audio_cnn`` recognise digits from a voice it never heard?

Run: ``python benchmarks/speech_tower_ablation.py [--val jackson nicolas] [--seeds 0 1] [--steps 300]``.
A supervised ``audio_cnn`` classifier (``--size``, default tiny; the colearn / judge recipe: batch 64,
lr 3e-3, 300 steps, dropout 0.1) is trained on four FSDD speakers and scored on a fifth, the
**validation speaker**; ``theo``,
the benchmarks' test speaker, is never read. Every variant is the same tower with different
``audio_cnn`` input options (:mod:`chorus.encoders.speaker_robust`). Writes
``benchmarks/results/speech_tower_ablation_<steps>steps[_<size>].{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import tempfile
import time
from pathlib import Path

from chorus.classifier import Classifier
from chorus.data import Collate
from chorus.encoders import build_encoder
from chorus.encoders.speaker_robust import MelAugment
from chorus.train import TrainConfig, Trainer, seed_everything
from chorus.translate.digits import TEST_SPEAKERS, load_digit_data
from chorus.translate.judges import LabelledInputs, judge_predictions

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict] = {  # name -> audio_cnn options; "augment": MelAugment's settings, "dropout": the head's
    "plain log-mel": {},
    "CMN": {"cmn": True},
    "floor 40 dB": {"top_db": 40.0},
    "floor 40 dB + CMN": {"top_db": 40.0, "cmn": True},
    "floor 50 dB + CMN": {"top_db": 50.0, "cmn": True},
    "floor 45 dB + CMN": {"top_db": 45.0, "cmn": True},
    "floor 35 dB + CMN": {"top_db": 35.0, "cmn": True},
    "floor 30 dB + CMN": {"top_db": 30.0, "cmn": True},
    "floor 20 dB + CMN": {"top_db": 20.0, "cmn": True},
    "floor 40 dB + CMN + SpecAugment masks": {"top_db": 40.0, "cmn": True, "augment": {}},
    "floor 40 dB + CMN + masks + mel warp ±10 %": {"top_db": 40.0, "cmn": True, "augment": {"warp": 0.1}},
    "floor 40 dB + CMN + masks + mel warp ±5 %": {"top_db": 40.0, "cmn": True, "augment": {"warp": 0.05}},
    "floor 40 dB + CMN + masks + mel warp ±5 % + dropout 0.3": {
        "top_db": 40.0,
        "cmn": True,
        "augment": {"warp": 0.05},
        "dropout": 0.3,
    },
}


def accuracy(data, options: dict, val: str, seed: int, steps: int, size: str) -> float:
    train = [i for i, s in enumerate(data.speaker_of_clip) if s not in (*TEST_SPEAKERS, val)]
    test = [i for i, s in enumerate(data.speaker_of_clip) if s == val]
    seed_everything(seed)
    options = dict(options)
    augment, dropout = options.pop("augment", None), options.pop("dropout", 0.1)
    encoder = build_encoder("audio_cnn", size, n_mels=data.logmel.n_mels, **options)
    if augment is not None:
        encoder.augment = MelAugment(**augment)
    model = Classifier(encoder, 10, "audio", dropout=dropout)
    cfg = TrainConfig(
        max_steps=steps,
        batch_size=64,
        lr=3e-3,
        warmup_steps=20,
        precision="bf16",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=steps,
    )
    items = LabelledInputs("audio", [data.mels[i] for i in train], data.digit_of_clip[train])
    with tempfile.TemporaryDirectory() as run_dir:  # checkpoints of a throw-away run
        Trainer(model, items, cfg, run_dir, collate_fn=Collate()).fit()
    predicted = judge_predictions(model.eval(), [data.mels[i] for i in test])
    return float((predicted == data.digit_of_clip[test]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--val", nargs="+", default=["jackson", "nicolas"], help="validation speakers (never theo)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--size", default="tiny", help="audio_cnn size")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()
    if set(args.val) & set(TEST_SPEAKERS):
        parser.error(f"{TEST_SPEAKERS} is the test speaker; validate on another")
    data = load_digit_data()
    t0 = time.time()
    rows = {}
    for name in args.variants:
        scores = {
            f"{v}/{s}": accuracy(data, VARIANTS[name], v, s, args.steps, args.size)
            for v in args.val
            for s in args.seeds
        }
        rows[name] = {"options": VARIANTS[name], "scores": scores, "mean": statistics.mean(scores.values())}
        print(name, json.dumps(rows[name]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    command = "python benchmarks/speech_tower_ablation.py " + " ".join(
        f"--{k} {' '.join(shlex.quote(str(x)) for x in v) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if k != "variants" or len(v) < len(VARIANTS)
    )
    stem = RESULTS / f"speech_tower_ablation_{args.steps}steps{'' if args.size == 'tiny' else '_' + args.size}"
    stem.with_suffix(".json").write_text(
        json.dumps(
            {
                "command": command,
                "steps": args.steps,
                "val": args.val,
                "seeds": args.seeds,
                "rows": rows,
                "seconds": time.time() - t0,
            },
            indent=1,
        )
    )
    cols = list(next(iter(rows.values()))["scores"])
    lines = [
        f"Command: `{command}` — accuracy % on the validation speaker (trained on the other four; theo never read)\n",
        "| input | " + " | ".join(cols) + " | mean |",
        "|---" * (len(cols) + 2) + "|",
    ]
    lines += [
        f"| {n} | " + " | ".join(f"{r['scores'][c] * 100:.1f}" for c in cols) + f" | **{r['mean'] * 100:.1f}** |"
        for n, r in rows.items()
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
