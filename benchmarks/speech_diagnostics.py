"""Where the recognisers of ``chorus bench speech`` lose words: the unseen voice, or the string task.

Run after the benchmark: ``python benchmarks/speech_diagnostics.py runs/bench/speech``. Loads its main-fold
run folders (``runs/ctc_theo_<seed>``, ``runs/attention_<seed>``) and decodes, with the benchmark's decoding:

- the benchmark's clean ``theo`` test strings (the reported condition), and
- new strings by the five *training* speakers (``DigitStrings`` seed 77: combinations never trained on, but
  made of the same clips) — the recogniser's error when the voice is not the problem.

The gap between the two is the cost of the unseen voice; what remains on the training voices is the cost of
the string task itself at this training length. Writes ``benchmarks/results/speech_diagnostics.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from chorus.bench.speech import PRESETS, test_sets
from chorus.data.audio import LogMel
from chorus.data.sequences import digits_to_text
from chorus.eval.report import fmt_mean_std, markdown_table
from chorus.eval.wer import error_counts
from chorus.translate.speech_data import load_strings
from chorus.translate.speech_runs import StringsConfig, decode_items, load_speech_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_out", help="output folder of `chorus bench speech`")
    parser.add_argument("--size", type=int, default=200, help="strings per condition")
    parser.add_argument("--out", default="benchmarks/results/speech_diagnostics")
    args = parser.parse_args()
    cfg = PRESETS["full"]
    logmel = LogMel()
    theo = test_sets(cfg, "theo", logmel)["clean"][: args.size]
    seen = load_strings(StringsConfig(gain_db=cfg.gain_db, seed=77).strings(None, "train", args.size), logmel)
    runs = Path(args.bench_out) / "runs"
    rows, record = [], {}
    for system in ("ctc", "attention"):
        folders = sorted(runs.glob("ctc_theo_*" if system == "ctc" else "attention_*"))
        scores: dict[str, list[dict[str, float]]] = {"theo": [], "training voices": []}
        for folder in folders:
            run_cfg, model = load_speech_run(folder, "recognize")
            beam = run_cfg.model.beam if system == "ctc" else 0
            for name, items in (("theo", theo), ("training voices", seen)):
                hyps = decode_items(model, [it.mel for it in items], beam=beam)
                c = error_counts([it.text for it in items], [digits_to_text(h) for h in hyps])
                scores[name].append(
                    {
                        "wer": c.wer,
                        "sub": c.substitutions / c.words,
                        "del": c.deletions / c.words,
                        "ins": c.insertions / c.words,
                    }
                )
        record[system] = scores
        for name, values in scores.items():
            rows.append(
                [system, name, len(values)]
                + [fmt_mean_std([v[k] for v in values], scale=100.0, digits=1) for k in ("wer", "sub", "del", "ins")]
            )
    table = markdown_table(
        ["recogniser", "speakers", "seeds", "WER (%)", "substitutions (%)", "deletions (%)", "insertions (%)"], rows
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    out.with_suffix(".md").write_text(
        f"# Speech recognisers: unseen voice vs training voices\n\n`python benchmarks/speech_diagnostics.py "
        f"{args.bench_out}` ({args.size} strings per condition; rates per reference word).\n\n{table}\n"
    )
    print(table)


if __name__ == "__main__":
    main()
