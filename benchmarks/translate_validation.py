"""Validation ablations of ``chorus bench translate``: settings are chosen here, never on the reported protocol.

Run: ``python benchmarks/translate_validation.py --part cgan|cvae|mel|bind [--seeds 10 11]``.

The benchmark reports seeds 0–2, unseen prompt templates judged by an MNIST judge trained on the odd
MNIST-train positions, and theo's recordings. Here:

- **cgan** — validation seeds (default 10, 11) and a **validation image judge** trained on the 2,000 MNIST
  *test* images (disjoint from the generators' even MNIST-train positions, and from the reported judge's odd
  ones); one cGAN run per seed, the raw generator and moving averages of its weights evaluated every
  1,000 steps (judge agreement on unseen-template captions, per digit, and diversity).
- **cvae** — the same seeds, judge and captions as **cgan**; a CVAE trained for each of
  ``--cvae-steps``, sampled at several temperatures (the prior's standard deviation).
- **mel** — validation seeds; the decoder's conditions at evaluation are 500 MNIST images of the image
  judge's half that the decoder never trained on (not the benchmark's 500 test images), judged by the
  benchmark's audio judge.
- **bind** — validation speakers jackson and nicolas (never theo): a speech tower bound on the four other
  train speakers; speech→image R@1 on the validation speaker, and where the nearest-image prior puts its
  recordings (the digit of the generator image nearest to the prior's output) for several ``k``.

Writes ``benchmarks/results/translate_validation_<part>.json``; the recorded runs are summarised in
``benchmarks/results/translate_validation.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from chorus.bench.translate import PRESETS
from chorus.config import CONFIG_DIR
from chorus.data.captions import fill_template
from chorus.experiment import load_experiment
from chorus.train import TrainConfig, Trainer, seed_everything
from chorus.translate.cgan import ema_copy, train_cgan
from chorus.translate.conditions import generator_bank, nearest_image_prior
from chorus.translate.cvae import train_cvae
from chorus.translate.digits import TEST_SPEAKERS, load_digit_data
from chorus.translate.griffinlim import log_mel_to_audio
from chorus.translate.judges import diversity, judge_predictions, train_judge
from chorus.translate.mel_decoder import MelDecoder, SpeechTargets, speaker_normalise
from chorus.translate.space import SpaceConfig, bind_audio, train_space

RESULTS = Path(__file__).resolve().parent / "results"
FULL = PRESETS["full"]


def setup(seed: int, run_dir: Path):
    cfg = load_experiment(CONFIG_DIR / "mnist_clip.yaml")
    data = load_digit_data(n_mels=cfg.data.n_mels)
    test_templates = cfg.model.zero_shot_templates
    prompts = [fill_template(t, n) for t in test_templates for n in cfg.data.class_names]
    space = train_space(
        SpaceConfig.from_experiment(cfg),
        data,
        FULL.space_steps,
        run_dir / "space",
        seed,
        image_size="tiny",
        frozen_text_prompts=prompts,
    )
    return cfg, data, space


def validation_judge(data, run_dir: Path):
    return train_judge(
        "image",
        data.pixels[data.mnist_test],
        data.digit_of_image[data.mnist_test],
        FULL.judge_steps,
        run_dir / "val_judge",
        size="small",
    )


def agreement(sample, cond, y, judge, data, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    images = sample(cond, g)
    hit = judge_predictions(judge, images) == y
    # diversity against real images the validation judge has not seen is impossible (it saw all test images);
    # the ratio is only a collapse check, so the generators' own MNIST images serve as the reference
    real = data.pixels[data.generator_images]
    return {
        "accuracy": float(hit.float().mean()),
        "per_digit": [round(float(hit[y == d].float().mean()), 3) for d in range(10)],
        "diversity": diversity(images, y, real, data.digit_of_image[data.generator_images]),
    }


def text_generation_setup(seed: int, run_dir: Path):
    """What the image generators' validation needs: data, the validation judge, the training bank, and the
    unseen-template caption conditions with their digits."""
    cfg, data, space = setup(seed, run_dir)
    judge = validation_judge(data, run_dir)
    _, bank, mu, sigma = generator_bank(space, data, cfg.data.caption_templates)
    templates = cfg.model.zero_shot_templates
    text = space.embed_texts(space.prompts(templates, range(10))).repeat_interleave(FULL.samples_per_prompt, 0)
    y = torch.arange(10).repeat(len(templates)).repeat_interleave(FULL.samples_per_prompt)
    return data, judge, bank, (text - mu) / sigma, y


def part_cgan(seed: int, run_dir: Path, steps: int) -> dict:
    data, judge, bank, cond, y = text_generation_setup(seed, run_dir)
    decays = (0.99, 0.995, 0.999)
    emas: dict[float, object] = {}
    out: dict = {}

    def on_step(step: int, gen) -> None:
        if not emas:
            emas.update({d: ema_copy(gen, d) for d in decays})
        for e in emas.values():
            e.update_parameters(gen)
        if step % 1000 == 0:
            row = {"raw": agreement(copy.deepcopy(gen).eval().sample, cond, y, judge, data, seed)}
            for d, e in emas.items():
                row[f"ema {d}"] = agreement(copy.deepcopy(e.module).eval().sample, cond, y, judge, data, seed)
            out[step] = row
            print(step, {k: (round(v["accuracy"], 3), round(v["diversity"], 3)) for k, v in row.items()}, flush=True)

    train_cgan(bank, bank.bank.shape[1], steps, seed=seed, on_step=on_step)
    return out


def part_cvae(seed: int, run_dir: Path, steps: list[int], temperatures: list[float]) -> dict:
    data, judge, bank, cond, y = text_generation_setup(seed, run_dir)
    out: dict = {}
    for n in steps:
        model = train_cvae(bank, n, seed, run_dir / f"cvae_{n}")
        out[n] = {t: agreement(partial(model.sample, temperature=t), cond, y, judge, data, seed) for t in temperatures}
        print(n, {t: (round(r["accuracy"], 3), round(r["diversity"], 3)) for t, r in out[n].items()}, flush=True)
    return out


def part_mel(seed: int, run_dir: Path, variants: list[str]) -> dict:
    cfg, data, space = setup(seed, run_dir)
    judge_clips = data.clips(test=False, repetition_parity=0)
    audio_judge = train_judge(
        "audio",
        [data.mels[i] for i in judge_clips],
        data.digit_of_clip[judge_clips],
        FULL.judge_steps,
        run_dir / "audio_judge",
    )
    train_pairs = data.pairs_train[data.repetition_of_clip[data.pairs_train[:, 0]] % 2 == 1]
    cond = space.embed_images(data.pixels[train_pairs[:, 1]])
    mels = [data.mels[c] for c in train_pairs[:, 0].tolist()]
    val_images = data.judge_images[~torch.isin(data.judge_images, train_pairs[:, 1])][:500]
    val_cond = space.embed_images(data.pixels[val_images])
    y = data.digit_of_image[val_images]
    out = {}
    for name in variants:
        opts = {"steps": 600, "gl": 64, "norm": False, "knn": 0}  # the recipe before these ablations
        opts.update(VARIANTS_MEL[name])
        rows = SpeechTargets(speaker_normalise(mels) if opts["norm"] else mels, cond, FULL.mel_frames)
        seed_everything(seed)
        decoder = MelDecoder.from_targets(rows)
        tc = TrainConfig(
            max_steps=opts["steps"],
            batch_size=64,
            lr=1e-3,
            warmup_steps=20,
            seed=seed,
            progress=False,
            tensorboard=False,
            log_every=opts["steps"],
        )
        Trainer(decoder, rows, tc, run_dir / f"mel_{len(out)}").fit()
        decoder.eval()
        c = nearest_image_prior(val_cond, cond, opts["knn"]) if opts["knn"] else val_cond
        g = torch.Generator().manual_seed(seed)
        t = time.time()
        gen = decoder.generate(c)
        waves = [log_mel_to_audio(m, data.logmel, opts["gl"], generator=g) for m in gen]
        remel = [data.logmel(w) for w in waves]
        hit = judge_predictions(audio_judge, remel) == y
        out[name] = {
            "accuracy": float(hit.float().mean()),
            "mel_accuracy": float((judge_predictions(audio_judge, gen) == y).float().mean()),
            "per_digit": [round(float(hit[y == d].float().mean()), 3) for d in range(10)],
            "gl_seconds": time.time() - t,
        }
        print(seed, name, out[name], flush=True)
    return out


def part_bind(seed: int, run_dir: Path, variants: list[str], speakers: list[str]) -> dict:
    cfg, data, space = setup(seed, run_dir)
    generator_images = space.embed_images(data.pixels[data.generator_images])
    image_y = data.digit_of_image[data.generator_images]
    test_images = space.embed_images(data.pixels[data.mnist_test])
    test_y = data.digit_of_image[data.mnist_test]
    speaker = data.speaker_of_clip
    out: dict = {}
    for val in speakers:
        pairs = torch.tensor([p for p in data.pairs_train.tolist() if speaker[p[0]] != val])
        clips = [i for i, s in enumerate(speaker) if s == val]
        y = data.digit_of_clip[clips]
        embedded: dict[str, torch.Tensor] = {}
        for name in variants:
            parts = []
            for opts in VARIANTS_BIND[name]:
                key = json.dumps(opts, sort_keys=True)
                if key not in embedded:
                    bound = bind_audio(
                        space,
                        data,
                        pairs,
                        opts.get("steps", FULL.bind_steps),
                        run_dir / f"bind_{val}_{len(embedded)}",
                        seed + opts.get("seed", 0),
                        size=opts.get("size", "tiny"),
                    )
                    embedded[key] = torch.nn.functional.normalize(
                        bound.embed_audio([data.mels[i] for i in clips]), dim=-1
                    )
                parts.append(embedded[key])
            speech = torch.nn.functional.normalize(torch.stack(parts).mean(0), dim=-1)
            nearest = (speech @ torch.nn.functional.normalize(test_images, dim=-1).T).argmax(-1)
            row = {"R@1": float((test_y[nearest] == y).float().mean())}
            for k in (1, 5, 10, 20, 50):
                prior = nearest_image_prior(speech, generator_images, k)
                # where the prior lands: the digit of its nearest generator image (what the cGAN is steered by)
                near = (prior @ torch.nn.functional.normalize(generator_images, dim=-1).T).argmax(-1)
                row[f"prior k={k}"] = float((image_y[near] == y).float().mean())
            out[f"{val} / {name}"] = row
            print(seed, val, name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    return out


VARIANTS_BIND = {  # name -> the towers whose unit embeddings are averaged
    "tiny 1000 steps": [{}],
    "tiny 2000 steps": [{"steps": 2000}],
    "small 1000 steps": [{"size": "small"}],
    "ensemble of 2 tiny (1000 steps, 2 seeds)": [{}, {"seed": 100}],
}


VARIANTS_MEL = {
    "base (600 steps, GL 64)": {},
    "2000 steps": {"steps": 2000},
    "GL 256 iterations": {"gl": 256},
    "speaker-normalised targets": {"norm": True},
    "condition: mean of 10 nearest training conditions": {"knn": 10},
    "2000 steps + 10 nearest": {"steps": 2000, "knn": 10},
    "2000 steps + speaker-normalised": {"steps": 2000, "norm": True},
    "2000 steps + speaker-normalised + 10 nearest": {"steps": 2000, "norm": True, "knn": 10},
    "2000 steps + speaker-normalised + 30 nearest": {"steps": 2000, "norm": True, "knn": 30},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("cgan", "cvae", "mel", "bind"), required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 11])
    parser.add_argument("--gan-steps", type=int, default=4000)
    parser.add_argument("--cvae-steps", type=int, nargs="+", default=[1500, 4000, 8000, 12000])
    parser.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.9, 0.8, 0.6])
    parser.add_argument("--bind-variants", nargs="+", default=list(VARIANTS_BIND), choices=list(VARIANTS_BIND))
    parser.add_argument("--val-speakers", nargs="+", default=["jackson", "nicolas"])
    parser.add_argument("--mel-variants", nargs="+", default=list(VARIANTS_MEL), choices=list(VARIANTS_MEL))
    args = parser.parse_args()
    if set(args.val_speakers) & set(TEST_SPEAKERS):
        parser.error(f"{TEST_SPEAKERS} is the test speaker; validate on others")
    if set(args.seeds) & {0, 1, 2}:
        parser.error("seeds 0-2 are the benchmark's reported seeds; validate on others")
    t0 = time.time()
    results = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            if args.part == "cgan":
                results[seed] = part_cgan(seed, Path(tmp), args.gan_steps)
            elif args.part == "cvae":
                results[seed] = part_cvae(seed, Path(tmp), args.cvae_steps, args.temperatures)
            elif args.part == "mel":
                results[seed] = part_mel(seed, Path(tmp), args.mel_variants)
            else:
                results[seed] = part_bind(seed, Path(tmp), args.bind_variants, args.val_speakers)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"translate_validation_{args.part}.json").write_text(
        json.dumps({"args": vars(args), "seconds": time.time() - t0, "results": results}, indent=1)
    )


if __name__ == "__main__":
    main()
