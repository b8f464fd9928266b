"""``chorus bench translate``: retrieval and generative translation between speech, text and handwritten digits.

Per seed: train the MNIST image–text space (towers of ``configs/mnist_clip.yaml``)
and bind a speech tower to it once per **speech protocol**
(:data:`~chorus.translate.digits.PROTOCOLS`: ``speaker`` — FSDD speaker
``theo`` held out; ``official`` — FSDD's own split, takes 0–4 of every
speaker held out); then

1. **retrieval** through the space — speech↔image, text↔image, speech↔text —
   Recall@1/5/10 at class level (a hit is any item of the query's digit),
   against exact chance and the same towers at random initialisation, with
   each protocol's held-out recordings as the speech side;
2. **text/speech → image** with a conditional VAE and a conditional GAN
   conditioned on the shared embedding (trained once per seed, on caption and
   image conditions only), judged by an independent MNIST classifier (share
   recognised as the intended digit) plus a diversity ratio, against the same
   generators fed shuffled conditions; speech conditions come from each
   protocol's held-out recordings through that protocol's speech tower;
3. **image → speech**: a log-mel decoder from the image embedding, inverted
   with Griffin-Lim and judged by an independent FSDD classifier (speaker
   held out), against shuffled conditions.

The judges are trained once (seed 0) on data disjoint from all generators'
(see :mod:`chorus.translate.digits`). Besides the tables: sample grids, a
spectrogram plot and WAVs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
import torch

from chorus.bench.driver import Report
from chorus.config import CONFIG_DIR
from chorus.data.captions import fill_template
from chorus.encoders.speaker_robust import SPEECH_TOWER
from chorus.eval.report import MethodCard, fmt_mean_std, mean_std
from chorus.experiment import load_experiment
from chorus.train import TrainConfig, Trainer, seed_everything
from chorus.translate.cgan import train_cgan
from chorus.translate.conditions import generator_bank, nearest_image_prior
from chorus.translate.cvae import train_cvae
from chorus.translate.digits import PROTOCOLS, DigitData, load_digit_data
from chorus.translate.griffinlim import log_mel_to_audio
from chorus.translate.judges import diversity, judge_predictions, train_judge
from chorus.translate.mel_decoder import MelDecoder, SpeechTargets, speaker_normalise
from chorus.translate.retrieval import chance_recall, class_retrieval
from chorus.translate.space import SharedSpace, SpaceConfig, bind_audio, train_space

CONFIG = CONFIG_DIR / "mnist_clip.yaml"
KS = (1, 5, 10)


@dataclass(frozen=True)
class Config:
    """Every setting of the benchmark: seeds, towers, and the training budget of every model."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data_root: str | None = None
    image_encoder_size: str = "tiny"  # image tower size (mnist_clip.yaml says small)
    # Frozen pretrained MiniLM (LiT) or mnist_clip.yaml's text transformer trained from scratch.
    text_tower: Literal["minilm", "scratch"] = "minilm"
    space_steps: int = 1000
    bind_steps: int = 1000
    judge_steps: int = 1500
    cvae_steps: int = 8000
    cvae_temperature: float = 0.9
    gan_steps: int = 3000
    gan_ema_half_life: float = 69
    mel_steps: int = 2000
    mel_frames: int = 48  # time-normalised spectrogram length of the mel decoder (FSDD words: 15-229 frames)
    samples_per_prompt: int = 20
    griffin_lim_iters: int = 64


PRESETS = {
    "full": Config(),
    # One seed, short training (a smoke run).
    "quick": replace(
        Config(),
        seeds=(0,),
        space_steps=80,
        bind_steps=60,
        judge_steps=80,
        cvae_steps=300,
        gan_steps=300,
        gan_ema_half_life=30,
        mel_steps=150,
        samples_per_prompt=5,
        griffin_lim_iters=16,
    ),
}


# ------------------------------------------------------------------------------------------- retrieval


def retrieval(
    space: SharedSpace, data: DigitData, templates: list[str], clips: torch.Tensor
) -> dict[str, dict[str, float]]:
    """Class-level Recall@K for every direction between held-out speech ``clips``, unseen prompts and MNIST test images."""
    images = space.embed_images(data.pixels[data.mnist_test])
    image_y = data.digit_of_image[data.mnist_test]
    speech, speech_y = space.embed_audio([data.mels[i] for i in clips]), data.digit_of_clip[clips]
    text = space.embed_texts(space.prompts(templates, range(10)))
    text_y = torch.arange(10).repeat(len(templates))
    views = {"speech": (speech, speech_y), "text": (text, text_y), "image": (images, image_y)}
    directions = [
        ("speech", "image"),
        ("image", "speech"),
        ("text", "image"),
        ("image", "text"),
        ("speech", "text"),
        ("text", "speech"),
    ]
    out = {}
    for a, b in directions:
        out[f"{a}->{b}"] = class_retrieval(*views[a], *views[b], KS)
        out[f"{a}->{b}:chance"] = chance_recall(views[a][1], views[b][1], KS)
    return out


# ------------------------------------------------------------------------------------------- generators


def test_conditions(
    spaces: dict[str, SharedSpace],
    data: DigitData,
    templates: list[str],
    per_prompt: int,
    generator_images: torch.Tensor,
) -> dict[str, tuple]:
    """Held-out conditions per source: unseen prompt templates (repeated), and per speech protocol its held-out
    clips through its own speech tower, as embedded (``speech_<protocol>``) and moved onto the image side by
    :func:`nearest_image_prior` over the generators' own training images (``speech_<protocol>_prior``)."""
    space = spaces[PROTOCOLS[0]]
    text = space.embed_texts(space.prompts(templates, range(10))).repeat_interleave(per_prompt, 0)
    text_y = torch.arange(10).repeat(len(templates)).repeat_interleave(per_prompt)
    out = {"text": (text, text_y)}
    for protocol, bound in spaces.items():
        clips = data.speech_split(protocol)[1]
        speech, y = bound.embed_audio([data.mels[i] for i in clips]), data.digit_of_clip[clips]
        out[f"speech_{protocol}"] = (speech, y)
        out[f"speech_{protocol}_prior"] = (nearest_image_prior(speech, generator_images), y)
    return out


def judge_generator(
    sample, conditions: dict[str, tuple], judge, data: DigitData, seed: int
) -> dict[str, float | list[float]]:
    """Judge agreement per source (overall and per digit), with shuffled-condition baseline, and diversity."""
    g = torch.Generator().manual_seed(seed)
    real = data.pixels[data.mnist_test]
    real_y = data.digit_of_image[data.mnist_test]
    out: dict[str, float | list[float]] = {}
    for source, (cond, y) in conditions.items():
        images = sample(cond, g)
        hit = judge_predictions(judge, images) == y
        out[f"{source}_accuracy"] = float(hit.float().mean())
        out[f"{source}_per_digit_accuracy"] = [float(hit[y == d].float().mean()) for d in range(10)]
        shuffled = sample(cond[torch.randperm(len(cond), generator=g)], g)
        out[f"{source}_shuffled_accuracy"] = float((judge_predictions(judge, shuffled) == y).float().mean())
        out[f"{source}_diversity"] = diversity(images, y, real, real_y)
    return out


def sample_grid(
    sample, digit_conditions: torch.Tensor, report: Report, name: str, title: str, per_digit: int = 10
) -> None:
    """Rows 0-9, ``per_digit`` samples each, from one condition row per digit [10, D]."""
    cond = digit_conditions.repeat_interleave(per_digit, 0)
    images = sample(cond, torch.Generator().manual_seed(0)).view(10, per_digit, 28, 28)
    grid = images.permute(0, 2, 1, 3).reshape(10 * 28, per_digit * 28).add(1).div(2).clamp(0, 1).numpy()
    with report.figure(name, figsize=(4, 4.3)) as (_, ax):
        ax.imshow(grid, cmap="gray")
        ax.set_axis_off()
        ax.set_title(title, fontsize=8)


# ------------------------------------------------------------------------------------------- image → speech


def image_to_speech(
    space: SharedSpace, data: DigitData, judge, cfg: Config, seed: int, run_dir: Path, report: Report | None
) -> dict[str, float]:
    """Log-mel decoder from image embeddings, inverted by Griffin-Lim, judged against shuffled conditions;
    with ``report``, also saves a spectrogram plot and one WAV per digit."""
    train_pairs = data.pairs_train[data.repetition_of_clip[data.pairs_train[:, 0]] % 2 == 1]
    cond = space.embed_images(data.pixels[train_pairs[:, 1]])
    rows = SpeechTargets(
        speaker_normalise([data.mels[c] for c in train_pairs[:, 0].tolist()], SPEECH_TOWER["top_db"]),
        cond,
        cfg.mel_frames,
    )
    seed_everything(seed)
    decoder = MelDecoder.from_targets(rows)
    train_cfg = TrainConfig(
        max_steps=cfg.mel_steps,
        batch_size=64,
        lr=1e-3,
        warmup_steps=20,
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=cfg.mel_steps,
    )
    Trainer(decoder, rows, train_cfg, run_dir).fit()
    decoder.eval()
    test_images = data.pairs_test[:, 1]
    y = data.digit_of_image[test_images]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # decode from the mean of the 10 nearest training conditions: a test image's embedding moved into the
        # dense part of its digit's region, where the decoder was trained (the image side's nearest-image prior)
        test_cond = nearest_image_prior(space.embed_images(data.pixels[test_images]), cond)
        results = {}
        for name, c in (("", test_cond), ("shuffled_", test_cond[torch.randperm(len(test_cond), generator=g)])):
            mels = decoder.generate(c)
            waves = [log_mel_to_audio(m, data.logmel, cfg.griffin_lim_iters, generator=g) for m in mels]
            remel = [data.logmel(w) for w in waves]
            results[f"{name}accuracy"] = float((judge_predictions(judge, remel) == y).float().mean())
            results[f"{name}mel_accuracy"] = float((judge_predictions(judge, mels) == y).float().mean())
            if report is not None and not name:
                _save_speech(report, mels, waves, y, data)
    return results


def _save_speech(
    report: Report, mel: list[torch.Tensor], waves: list[torch.Tensor], y: torch.Tensor, data: DigitData
) -> None:
    (report.out / "wav").mkdir(parents=True, exist_ok=True)
    with report.figure("image_to_speech_mels", nrows=2, ncols=5, figsize=(10, 3.6)) as (fig, axes):
        for digit in range(10):
            i = int((y == digit).nonzero()[0])
            wave = waves[i] / waves[i].abs().max().clamp_min(1e-6) * 0.9
            sf.write(report.out / "wav" / f"image_to_speech_{digit}.wav", wave.numpy(), data.logmel.sample_rate)
            ax = axes[digit // 5, digit % 5]
            ax.imshow(mel[i].numpy(), origin="lower", aspect="auto", cmap="magma")
            ax.set_title(f"image of {digit}", fontsize=8)
            ax.set_axis_off()
        fig.suptitle("log-mel generated from MNIST test image embeddings (40 mels × predicted duration)", fontsize=9)


# ------------------------------------------------------------------------------------------- driver


def run(cfg: Config, report: Report) -> None:
    """Judges once, then per seed: the shared space, one speech tower per protocol, retrieval, generators."""
    exp = load_experiment(CONFIG)
    train_templates, test_templates = exp.data.caption_templates, exp.model.zero_shot_templates
    data = load_digit_data(cfg.data_root, n_mels=exp.data.n_mels)
    work = report.out / "work"

    image_judge = train_judge(
        "image",
        data.pixels[data.judge_images],
        data.digit_of_image[data.judge_images],
        cfg.judge_steps,
        work / "image_judge",
        size="small",
    )
    judge_clips = data.clips(test=False, repetition_parity=0)
    audio_judge = train_judge(
        "audio",
        [data.mels[i] for i in judge_clips],
        data.digit_of_clip[judge_clips],
        cfg.judge_steps,
        work / "audio_judge",
    )
    test_clips = data.clips(test=True)
    judges = {
        "image_judge_test_accuracy": float(
            (judge_predictions(image_judge, data.pixels[data.mnist_test]) == data.digit_of_image[data.mnist_test])
            .float()
            .mean()
        ),
        "audio_judge_heldout_speaker_accuracy": float(
            (judge_predictions(audio_judge, [data.mels[i] for i in test_clips]) == data.digit_of_clip[test_clips])
            .float()
            .mean()
        ),
    }

    # the frozen MiniLM is cached over every prompt the benchmark embeds (the training captions are added)
    class_names = exp.data.class_names
    assert class_names is not None  # the pivot's experiment names its digit classes
    prompts = [fill_template(t, n) for t in test_templates for n in class_names] if cfg.text_tower == "minilm" else None
    space_cfg = SpaceConfig.from_experiment(exp)
    random_space = bind_audio(
        train_space(
            space_cfg, data, 0, work / "random", image_size=cfg.image_encoder_size, frozen_text_prompts=prompts
        ),
        data,
        data.pairs_train,
        0,
        work / "random",
    )
    per_seed = []
    for seed in cfg.seeds:
        sdir = work / f"seed{seed}"
        space = train_space(
            space_cfg,
            data,
            cfg.space_steps,
            sdir / "space",
            seed,
            image_size=cfg.image_encoder_size,
            frozen_text_prompts=prompts,
        )
        spaces = {
            p: bind_audio(space, data, data.speech_split(p)[0], cfg.bind_steps, sdir / f"bind_{p}", seed)
            for p in PROTOCOLS
        }
        result: dict = {
            "seed": seed,
            "retrieval": {p: retrieval(spaces[p], data, test_templates, data.speech_split(p)[1]) for p in PROTOCOLS},
        }
        generator_images, bank, mu, sigma = generator_bank(space, data, train_templates)
        conditions = {
            k: ((c - mu) / sigma, y)
            for k, (c, y) in test_conditions(
                spaces, data, test_templates, cfg.samples_per_prompt, generator_images
            ).items()
        }
        cvae = train_cvae(bank, cfg.cvae_steps, seed, sdir / "cvae")
        cvae_sample = partial(cvae.sample, temperature=cfg.cvae_temperature)
        gen, gan_losses = train_cgan(
            bank, bank.bank.shape[1], cfg.gan_steps, seed=seed, ema_half_life=cfg.gan_ema_half_life
        )
        result["cvae"] = judge_generator(cvae_sample, conditions, image_judge, data, seed)
        result["cgan"] = judge_generator(gen.sample, conditions, image_judge, data, seed) | gan_losses
        first = seed == cfg.seeds[0]
        if first:
            grid_cond = (space.embed_texts(space.prompts(test_templates[:1], range(10))) - mu) / sigma
            sample_grid(
                cvae_sample,
                grid_cond,
                report,
                "cvae_text_samples",
                f"CVAE, condition = '{test_templates[0]}' (unseen template), rows 0-9",
            )
            sample_grid(
                gen.sample,
                grid_cond,
                report,
                "cgan_text_samples",
                f"cGAN, condition = '{test_templates[0]}' (unseen template), rows 0-9",
            )
        result["image_to_speech"] = image_to_speech(
            space, data, audio_judge, cfg, seed, sdir / "mel", report if first else None
        )
        per_seed.append(result)

    random_retrieval = {p: retrieval(random_space, data, test_templates, data.speech_split(p)[1]) for p in PROTOCOLS}
    report.results.update({"judges": judges, "per_seed": per_seed, "random_space_retrieval": random_retrieval})
    _tables(report, random_retrieval, per_seed, judges)
    _retrieval_plot(report, random_retrieval, per_seed)
    report.card(_cards(per_seed, judges))


def _values(per_seed: list[dict], *path: str) -> list[float]:
    vals = []
    for r in per_seed:
        node: Any = r
        for p in path:
            node = node[p]
        vals.append(node)
    return vals


SOURCES = {
    "text": "text → image (unseen prompt wording)",
    "speech_speaker": "speech → image (speaker protocol: theo held out)",
    "speech_speaker_prior": "speech → image, nearest-image prior (speaker protocol)",
    "speech_official": "speech → image (official split: takes 0–4 held out)",
    "speech_official_prior": "speech → image, nearest-image prior (official split)",
}


def _tables(report: Report, random_retrieval: dict, per_seed: list[dict], judges: dict) -> None:
    first = per_seed[0]["retrieval"]
    directions = [k for k in first[PROTOCOLS[0]] if not k.endswith(":chance")]
    rows = []
    for d in directions:
        for k in KS:
            rows.append(
                [
                    d,
                    f"R@{k}",
                    *[fmt_mean_std(_values(per_seed, "retrieval", p, d, f"R@{k}")) for p in PROTOCOLS],
                    *[f"{random_retrieval[p][d][f'R@{k}'] * 100:.1f}" for p in PROTOCOLS],
                    f"{first[PROTOCOLS[0]][d + ':chance'][f'R@{k}'] * 100:.1f}",
                ]
            )
    report.table(
        "Retrieval through the shared space (class-level Recall@K, %, mean ± std over seeds)",
        [
            "direction",
            "metric",
            "trained (speaker)",
            "trained (official)",
            "random-init (speaker)",
            "random-init (official)",
            "chance",
        ],
        rows,
        note="Speech protocols: *speaker* = FSDD speaker theo held out (500 clips); *official* = FSDD's own "
        "split, takes 0–4 of all six speakers held out (300 clips). Text↔image rows do not involve "
        "speech and are the same under both.",
    )
    gen_rows = []
    for method in ("cvae", "cgan"):
        for source, label in SOURCES.items():
            gen_rows.append(
                [
                    method,
                    label,
                    fmt_mean_std(_values(per_seed, method, f"{source}_accuracy")),
                    fmt_mean_std(_values(per_seed, method, f"{source}_shuffled_accuracy")),
                    fmt_mean_std(_values(per_seed, method, f"{source}_diversity"), scale=1.0, digits=2),
                ]
            )
    for key, label in (("accuracy", "Griffin-Lim waveform"), ("mel_accuracy", "log-mel (no inversion)")):
        gen_rows.append(
            [
                "mel decoder",
                f"image → speech ({label})",
                fmt_mean_std(_values(per_seed, "image_to_speech", key)),
                fmt_mean_std(_values(per_seed, "image_to_speech", f"shuffled_{key}")),
                "—",
            ]
        )
    report.table(
        "Generative translation (judge agreement with the intended digit, %)",
        ["method", "translation", "judge agreement", "shuffled-condition baseline", "diversity (gen/real pairwise L2)"],
        gen_rows,
        note=f"Judges: MNIST CNN on held-out test images {judges['image_judge_test_accuracy'] * 100:.1f} %; "
        f"FSDD audio CNN on the held-out speaker "
        f"{judges['audio_judge_heldout_speaker_accuracy'] * 100:.1f} %. "
        "Targets: ≥ 90 % (image), ≥ 80 % (speech).",
    )


def _retrieval_plot(report: Report, random_retrieval: dict, per_seed: list[dict]) -> None:
    first = per_seed[0]["retrieval"][PROTOCOLS[0]]
    directions = [k for k in first if not k.endswith(":chance")]
    x = np.arange(len(directions))
    with report.figure("retrieval_recall", figsize=(8, 3)) as (_, ax):
        width = 0.2
        for i, p in enumerate(PROTOCOLS):
            trained = [mean_std(_values(per_seed, "retrieval", p, d, "R@1")) for d in directions]
            ax.bar(
                x + (i - 1.5) * width,
                [m * 100 for m, _ in trained],
                width,
                yerr=[s * 100 for _, s in trained],
                label=f"trained space ({p} protocol)",
            )
        ax.bar(
            x + 0.5 * width,
            [random_retrieval[PROTOCOLS[0]][d]["R@1"] * 100 for d in directions],
            width,
            label="random-init space (speaker)",
        )
        ax.bar(x + 1.5 * width, [first[d + ":chance"]["R@1"] * 100 for d in directions], width, label="chance")
        ax.set_xticks(x, directions, fontsize=8)
        ax.set_ylabel("class-level R@1 (%)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)


def _cards(per_seed: list[dict], judges: dict) -> MethodCard:
    def m(*path: str) -> str:
        return fmt_mean_std(_values(per_seed, *path))

    return MethodCard(
        method="Translation through a shared space: retrieval, conditional VAE / GAN (text, speech → image), "
        "log-mel decoder + Griffin-Lim (image → speech)",
        why="A CLIP space aligns images and captions; an audio tower bound to the frozen image side puts speech in the "
        "same digit clusters, so nearest neighbours translate and generators conditioned on the embedding accept "
        "any source modality.",
        backbone="cnn tiny (image) + frozen all-MiniLM-L6-v2 (text, LiT; text_tower=scratch: text transformer); "
        "audio_cnn tiny with the speaker-robust input (per-clip 40 dB floor, CMN, SpecAugment masks in "
        "training), bound to the frozen image side (colearn.bind_to_pivot), one per speech protocol; MLP CVAE, "
        "DCGAN-style generator (sampled from the EMA of its weights) + projection discriminator (speech "
        "conditions also through a 10-nearest-image prior), MLP mel decoder on speaker-normalised targets, "
        "decoding from the mean of the 10 nearest training conditions",
        baseline="retrieval: chance and random-init towers; generators: same model with shuffled conditions",
        result=f"speech→image R@1 {m('retrieval', 'speaker', 'speech->image', 'R@1')} % (theo held out) / "
        f"{m('retrieval', 'official', 'speech->image', 'R@1')} % (official split); "
        f"CVAE text→image {m('cvae', 'text_accuracy')} %, speech→image {m('cvae', 'speech_speaker_accuracy')} / "
        f"{m('cvae', 'speech_official_accuracy')} %; cGAN text→image {m('cgan', 'text_accuracy')} %, "
        f"speech→image {m('cgan', 'speech_speaker_accuracy')} / {m('cgan', 'speech_official_accuracy')} % "
        f"(theo / official; with the nearest-image prior {m('cgan', 'speech_speaker_prior_accuracy')} / "
        f"{m('cgan', 'speech_official_prior_accuracy')} %); image→speech (Griffin-Lim) "
        f"{m('image_to_speech', 'accuracy')} % (judges: {judges['image_judge_test_accuracy'] * 100:.1f} % / "
        f"{judges['audio_judge_heldout_speaker_accuracy'] * 100:.1f} %)",
        reference="ImageBind (Girdhar et al., CVPR 2023) binds audio to images at scale (no digit numbers to compare); "
        "Sohn et al. 2015 (CVAE), Miyato & Koyama 2018 (projection cGAN) report conditional MNIST/ImageNet "
        "generation with class labels, not embeddings; Yazıcı et al. 2019 / Karras et al. 2018 (generator "
        "weight averaging); Griffin & Lim 1984 / Perraudin et al. 2013 for inversion.",
    )
