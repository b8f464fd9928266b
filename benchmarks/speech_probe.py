"""Training-length probe for the speech recognisers: one seed, theo held out, 100 clean and 100 10-dB strings.

Run: ``python benchmarks/speech_probe.py ctc,attention 800 3e-3`` (systems, optimizer steps, peak lr). Same
data, model and decoding as ``chorus bench speech`` (500 clean training strings plus 15 and 5 dB copies,
batch 16, bf16, cosine schedule with 10 % warm-up); only the number of steps differs. Prints WER / SER with
substitution, deletion and insertion counts per condition and decoder (beam 0 = greedy). The recorded run is
``benchmarks/results/speech_probe.md``.
"""

from __future__ import annotations

import sys
import time

import torch

from chorus.data.audio import LogMel
from chorus.data.sequences import digits_to_text
from chorus.eval.wer import error_counts
from chorus.train import TrainConfig, Trainer
from chorus.translate.speech_data import load_strings, speech_batch
from chorus.translate.speech_runs import (
    SpeechModelConfig,
    StringsConfig,
    build_recognizer,
    decode_items,
    recognizer_items,
)


def main() -> None:
    systems, steps, lr = sys.argv[1].split(","), int(sys.argv[2]), float(sys.argv[3])
    torch.set_num_threads(1)
    logmel = LogMel()
    data = StringsConfig(train_size=500)
    train = recognizer_items(data, None, logmel)
    test = load_strings(data.strings(None, "test", 100, seed_offset=7), logmel)
    noisy = load_strings(data.strings(None, "test", 100, seed_offset=7, snr_db=10.0), logmel)
    for system in systems:
        torch.manual_seed(0)
        model = build_recognizer(SpeechModelConfig(task="recognize", system=system))  # type: ignore[arg-type]
        config = TrainConfig(
            max_steps=steps,
            batch_size=16,
            lr=lr,
            warmup_steps=steps // 10,
            precision="bf16",
            progress=False,
            tensorboard=False,
            log_every=100,
        )
        started = time.time()
        Trainer(model, train, config, f"runs/speech_probe/{system}", collate_fn=speech_batch).fit()
        print(system, "train", round(time.time() - started), "s", flush=True)
        for name, items in (("clean", test), ("10dB", noisy)):
            for beam in (0, 8) if system == "ctc" else (0,):
                hyps = decode_items(model, [it.mel for it in items], beam=beam)
                c = error_counts([it.text for it in items], [digits_to_text(h) for h in hyps])
                print(
                    system,
                    name,
                    beam,
                    "WER",
                    round(c.wer, 3),
                    "SER",
                    c.ser,
                    c.substitutions,
                    c.deletions,
                    c.insertions,
                    flush=True,
                )


if __name__ == "__main__":
    main()
