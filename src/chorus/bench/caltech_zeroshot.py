"""``chorus bench caltech_zeroshot``: Caltech-101 zero-shot transfer to 20 classes never trained on (LiT).

What: an image tower trained from scratch on 81 "seen" classes (24 images
each) against the FROZEN pretrained all-MiniLM-L6-v2 text tower, with the class
names written into varied prompt templates as captions — LiT, "Locked-image
text Tuning" turned around (Zhai et al. 2022): here the *text* tower is the
locked, pretrained one. It is then asked to classify the 20 unseen classes
(``configs/caltech_split.yaml``) from their names alone, CLIP-style (Radford
et al. 2021, §3.1.4: prompt-ensembled class embeddings as a linear classifier).

Why it can work: MiniLM already places "okapi" near "zebra"/"giraffe"-like
words and "helicopter" near "airplanes". The image tower learns to map photos
into that fixed space from 81 classes; an unseen class whose name lands near
related seen classes inherits their visual region. A text tower trained from
scratch on 81 class names has no such prior: unseen names are unseen strings.

Image tower (``--encoder``, default ``scattering``): a fixed wavelet
scattering transform (no learned or pretrained weights) followed by a small
learned convolutional head, trained from scratch — Oyallon et al.'s hybrid
network, which wins with few images per class. On the validation split it
beat the from-scratch ResNet by ~20 points of seen-class top-1
(docs/benchmarks/caltech_zeroshot.md). Any other ``chorus.encoders`` image
encoder (``resnet``, ``cnn``, ``vit``) works too.

Speed: the frozen text tower is a pure function of the prompt, so every
(class, template) prompt is embedded once into a
:class:`~chorus.contrastive.text_cache.CachedTextEncoder` and a training step
costs only the image tower. Likewise the scattering transform is a pure
function of the image: its coefficients are computed once for ``--views``
augmented views of every training image (plain, mirrored, random resized
crops with colour jitter) and the head trains on a random cached view per
step. Images are decoded once into a uint8 tensor; for pixel encoders the
augmentation runs batched inside the image tower in training mode.

Loss (``--loss``): the captions are class prompts, so a batch of 128 over 81
classes holds many same-class pairs that CLIP's InfoNCE (``clip``) treats as
negatives. ``unicl`` (the default, :mod:`chorus.contrastive.unicl`) makes every
same-label pair a positive; ``classes`` scores each image against one prompt
of every seen class. On the validation split the three were within noise of
each other (docs/benchmarks/caltech_zeroshot.md); UniCL is kept because it
removes the false negatives at no cost.

Reported (mean ± std over seeds): unseen 20-way zero-shot top-1/top-5 (all 600
images), seen 81-way zero-shot top-1 on the 6 held-out images per class, and a
linear probe (LinearProbe, C chosen on its own split) on the image tower's
pooled features, seen classes; plus the zero-shot top-1 on the (un-augmented)
training images, whose gap to the held-out top-1 is the overfitting.
``--select`` trains on 20 images per class and reports the 4-per-class
validation images instead, and does not evaluate the unseen classes at all:
settings are chosen there, never on test images.

Baseline: the same image tower and recipe with a BPE ``text_transformer``
trained from scratch (its tokenizer learnt from the seen-class captions).
Chance: 5 % (unseen top-1), 25 % (top-5), 1.2 % (seen top-1).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from chorus.bench._clip_common import (
    METHODS, BatchAugment, TensorImages, cached_views, fit, image_tower, lit_text_tower, method_table, preload_images,
    run_seeds, save_report,
)
from chorus.config import CONFIG_DIR
from chorus.contrastive import CLIP_TEMPLATES, ContrastiveModel, build_zero_shot_classifier, zero_shot_predict
from chorus.contrastive.unicl import LabelContrastiveModel
from chorus.data import BPETokenizer, Collate, build_dataset
from chorus.data.captions import CaptionedDataset, fill_template
from chorus.encoders import build_encoder
from chorus.errors import ConfigError, DataError
from chorus.eval.metrics import topk_accuracy
from chorus.eval.probe import LinearProbe, extract_features
from chorus.eval.report import (
    environment, fmt_mean_std, invocation, markdown_table, mean_std, MethodCard, summary_percent,
)
from chorus.train import seed_everything

SPLIT_FILE = CONFIG_DIR / "caltech_split.yaml"

TRAIN_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image showing a {}.",
    "a photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of the {}.",
    "a low resolution photo of a {}.",
    "a photo of one {}.",
    "a blurry photo of a {}.",
    "a good photo of a {}.",
    "{}",
    "this is a {}.",
)
"""Caption templates for training (drawn at random per image and epoch)."""

QUICK_TEMPLATES = TRAIN_TEMPLATES[:4]


def load_split(path: str | Path = SPLIT_FILE) -> dict[str, Any]:
    """``{"seed", "unseen": [names], "seen": {name: {"heldout": [n], "val": [n]}}}`` from the split YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"caltech split file {path} is missing")
    split = yaml.safe_load(path.read_text())
    for key in ("unseen", "seen"):
        if key not in split:
            raise ConfigError(f"{path}: missing key {key!r}")
    overlap = set(split["unseen"]) & set(split["seen"])
    if overlap:
        raise ConfigError(f"{path}: classes both seen and unseen: {sorted(overlap)}")
    return split


def _image_number(path: str) -> int:
    return int(Path(path).stem.split("_")[-1])


def load_caltech(data_root: str | None, split: dict[str, Any], size: int, train_from: str) -> dict[str, Any]:
    """Preloaded tensors for each part: ``train``, ``eval_seen`` (heldout or val), ``unseen``.

    ``train_from="all"`` trains on the 24 non-held-out images of each seen class
    and evaluates seen classes on ``heldout``; ``"select"`` trains on 20 and
    evaluates on the 4 ``val`` images.
    """
    dataset = build_dataset("caltech101", root=data_root, split="all")
    names = dataset.classes
    missing = sorted((set(split["unseen"]) | set(split["seen"])) - set(names))
    if missing:
        raise DataError(f"split classes not in caltech101/classes.txt: {missing}")
    seen = sorted(split["seen"])
    unseen = list(split["unseen"])
    parts: dict[str, list[int]] = {"train": [], "eval_seen": [], "unseen": []}
    labels: dict[str, list[int]] = {"train": [], "eval_seen": [], "unseen": []}
    for i, record in enumerate(dataset.records):
        name = names[dataset.labels[i]]
        if name in unseen:
            parts["unseen"].append(i)
            labels["unseen"].append(unseen.index(name))
            continue
        number, held = _image_number(record["path"]), split["seen"][name]
        if number in held["heldout"]:
            part = "eval_seen" if train_from == "all" else None
        elif number in held["val"]:
            part = "eval_seen" if train_from == "select" else "train"
        else:
            part = "train"
        if part is not None:
            parts[part].append(i)
            labels[part].append(seen.index(name))
    out: dict[str, Any] = {"seen_names": seen, "unseen_names": unseen}
    for part, indices in parts.items():
        images = [dataset.load(i)["image"] for i in indices]
        out[part] = (preload_images(images, size), torch.tensor(labels[part]))
    return out


def _batches(images: Tensor, labels: Tensor, batch_size: int = 256) -> list[dict[str, Tensor]]:
    return [{"image": images[s : s + batch_size], "label": labels[s : s + batch_size]}
            for s in range(0, len(labels), batch_size)]


def _zero_shot(model: ContrastiveModel, tokenize, classes: Sequence[str], templates: Sequence[str],
               images: Tensor, labels: Tensor) -> dict[str, float]:
    """``{"top1", "top5", f"top1/{class}" for every class}``: which classes transfer, not only how many."""
    classifier = build_zero_shot_classifier(model, tokenize, classes, templates)
    logits = zero_shot_predict(model, _batches(images, labels), classifier).cpu()
    correct = logits.argmax(1) == labels
    per_class = {f"top1/{name}": float(correct[labels == c].float().mean()) for c, name in enumerate(classes)}
    return topk_accuracy(logits, labels, (1, 5)) | per_class


def _probe(model: ContrastiveModel, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], seed: int) -> float:
    """Linear-probe accuracy of the image tower's pooled features (eval mode: no augmentation)."""
    x_train, y_train = extract_features(model.encoders["image"], _batches(*train), "image")
    x_test, y_test = extract_features(model.encoders["image"], _batches(*test), "image")
    probe = LinearProbe(Cs=(0.01, 0.1, 1.0), max_iter=300, random_state=seed).fit(x_train, y_train)
    return float(probe.score(x_test, y_test))


def _augment(args: argparse.Namespace) -> BatchAugment:
    return BatchAugment(args.image_size, scale=(args.crop_min, 1.0), jitter=args.jitter)


def cache_front_end(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Replace every image tensor in ``data`` by the ``scattering`` encoder's fixed transform of it, once.

    ``train_views`` gets ``--views`` augmented views per training image (see
    :func:`~chorus.bench._clip_common.cached_views`); the evaluation parts and
    ``train`` (for the training-image diagnostic) get the plain view. Unseen
    images are not touched in ``--select`` mode.
    """
    transform = build_encoder(args.encoder, args.encoder_size, image_size=args.image_size,
                              **args.encoder_options).transform
    augment = _augment(args)
    start = time.perf_counter()
    views = cached_views(transform, augment, data["train"][0], args.views, seed=0)
    data["train_views"] = views
    data["train"] = (views[:, 0], data["train"][1])
    for part in ("eval_seen",) if args.select else ("eval_seen", "unseen"):
        data[part] = (cached_views(transform, augment, data[part][0], 1, seed=0)[:, 0], data[part][1])
    print(f"{args.encoder} front end: {tuple(views.shape)} training views in {time.perf_counter() - start:.0f} s",
          flush=True)


def run_one(args: argparse.Namespace, data: dict[str, Any], method: str, seed: int,
            cache: nn.Module | None, run_dir: Path) -> dict[str, float]:
    """Train one model (``lit`` or ``scratch``) with ``seed`` and evaluate it."""
    seed_everything(seed)
    seen, unseen = data["seen_names"], data["unseen_names"]
    train_images, train_labels = data["train"]
    label = lambda i: {"label": int(train_labels[i])}  # noqa: E731
    if "train_views" in data:  # fixed front end cached: train its head on precomputed augmented views
        tower = build_encoder(args.encoder, args.encoder_size, image_size=args.image_size, **args.encoder_options).head
        base = TensorImages(data["train_views"], label, seen, views=True)
    else:
        tower = image_tower(args.encoder, args.encoder_size, args.image_size, _augment(args), **args.encoder_options)
        base = TensorImages(train_images, label, seen)
    train_set = CaptionedDataset(base, args.train_templates, seen)
    if method == "lit":
        text, frozen, context = cache, ("text",), 1
        tokenizer = cache.tokenizer
    else:
        tokenizer = BPETokenizer.train(train_set.captions(), vocab_size=1000, min_frequency=1)
        context = 32
        text = build_encoder("text_transformer", "tiny", vocab_size=tokenizer.vocab_size, context_length=context)
        frozen = ()
    model = ContrastiveModel({"image": tower, "text": text}, args.embed_dim, frozen=frozen,
                             freeze_projection=args.freeze_text_projection and method == "lit")
    tokenize = lambda texts: tokenizer(texts, context)  # noqa: E731
    if args.loss == "clip":
        trained = model
    elif args.loss == "unicl":
        trained = LabelContrastiveModel(model)
    else:
        prompts = [fill_template(t, c) for c in seen for t in args.train_templates]
        trained = LabelContrastiveModel(model, class_prompts=tokenize(prompts),
                                        prompts_per_class=len(args.train_templates))
    start = time.perf_counter()
    fit(trained, train_set, Collate(tokenizer, context), run_dir, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, seed=seed, bf16=not args.fp32)
    train_seconds = time.perf_counter() - start
    model.eval()
    # Choosing settings (--select) must not see the unseen test images, not even their scores.
    unseen_scores = ({"top1": float("nan"), "top5": float("nan")} if args.select
                     else _zero_shot(model, tokenize, unseen, args.eval_templates, *data["unseen"]))
    per_class = {f"unseen_{k}": v for k, v in unseen_scores.items() if k.startswith("top1/")}
    seen_scores = _zero_shot(model, tokenize, seen, args.eval_templates, *data["eval_seen"])
    # The same classifier on the (un-augmented) training images: the gap to seen_top1 is the overfitting.
    train_scores = _zero_shot(model, tokenize, seen, args.eval_templates, *data["train"])
    return {
        "unseen_top1": unseen_scores["top1"], "unseen_top5": unseen_scores["top5"],
        "seen_top1": seen_scores["top1"], "seen_top5": seen_scores["top5"], "train_top1": train_scores["top1"],
        "probe_seen_top1": _probe(model, data["train"], data["eval_seen"], seed) if args.probe else float("nan"),
        "train_seconds": train_seconds, **per_class,
    }


METRICS = (
    ("unseen_top1", "unseen zero-shot top-1 (20-way)"),
    ("unseen_top5", "unseen zero-shot top-5 (20-way)"),
    ("seen_top1", "seen zero-shot top-1 (81-way)"),
    ("probe_seen_top1", "seen linear probe top-1 (81-way)"),
    ("train_top1", "training images zero-shot top-1 (81-way)"),
)
CHANCE = {"unseen_top1": 1 / 20, "unseen_top5": 5 / 20, "seen_top1": 1 / 81, "probe_seen_top1": 1 / 81,
          "train_top1": 1 / 81}


def configure(parser: argparse.ArgumentParser) -> None:
    """Options; defaults are the setting chosen on the validation split, sized to the 2-core machine (see the docs)."""
    parser.add_argument("--out", default="runs/bench/caltech_zeroshot", help="output folder")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (0 with --quick)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, the encoder's tiny size at 32 px, 4 epochs (≤ 4 cached views) on 12 images/class, "
                             "4 templates, no probe")
    parser.add_argument("--select", action="store_true",
                        help="train on 20 images/class and report the 4/class validation images (choosing settings)")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=["lit", "scratch"])
    parser.add_argument("--encoder", default="scattering")
    parser.add_argument("--encoder-size", default="small")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--loss", choices=("clip", "unicl", "classes"), default="unicl",
                        help="clip: in-batch InfoNCE; unicl: same-class captions in the batch are positives too; "
                             "classes: each image against the prompt-mean embedding of every seen class")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--freeze-text-projection", action="store_true",
                        help="LiT only: keep the text projection at its random init, so the 81 seen class names "
                             "cannot move away from the unseen ones in the shared space")
    parser.add_argument("--views", type=int, default=8,
                        help="scattering only: augmented views per training image whose fixed transform is cached "
                             "(plain, mirrored, and random crops)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="scattering only: channel dropout on its coefficients")
    parser.add_argument("--crop-min", type=float, default=0.35, help="smallest crop area of random resized crop")
    parser.add_argument("--jitter", type=float, default=0.3, help="colour jitter strength (0 = off)")
    parser.add_argument("--train-per-class", type=int, default=None,
                        help="train on only the first N training images of each seen class (default: all)")
    parser.add_argument("--no-probe", dest="probe", action="store_false")
    parser.add_argument("--fp32", action="store_true", help="train in float32 instead of bf16 autocast")
    parser.add_argument("--split-file", default=str(SPLIT_FILE))


def _settle(args: argparse.Namespace) -> None:
    """Fill derived settings (``--quick`` overrides; templates; encoder options)."""
    args.train_templates = list(TRAIN_TEMPLATES)
    args.eval_templates = list(dict.fromkeys(TRAIN_TEMPLATES + CLIP_TEMPLATES))
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.quick:
        args.encoder_size, args.image_size = "tiny", 32
        args.epochs, args.views = min(args.epochs, 4), min(args.views, 4)
        args.train_per_class = args.train_per_class or 12
        args.probe = False
        args.train_templates = args.eval_templates = list(QUICK_TEMPLATES)
    if args.encoder == "scattering":
        args.encoder_options = {"dropout": args.dropout}
    else:
        args.encoder_options = {"stem_stride": 2} if args.encoder == "resnet" and args.image_size > 48 else {}


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    width = 0.8 / len(results["methods"])
    for m, method in enumerate(results["methods"]):
        stats = [mean_std(results["per_seed"][method][key]) for key, _ in METRICS]
        ax.bar(np.arange(len(METRICS)) + m * width, [100 * s[0] for s in stats], width,
               yerr=[100 * s[1] for s in stats], label=METHODS[method], capsize=3)
    for i, (key, _) in enumerate(METRICS):
        ax.hlines(100 * CHANCE[key], i - width / 2, i + width * (len(results["methods"]) - 0.5), colors="k",
                  linestyles=":", label="chance" if i == 0 else None)
    ax.set_xticks(np.arange(len(METRICS)) + width * (len(results["methods"]) - 1) / 2)
    ax.set_xticklabels(["unseen top-1", "unseen top-5", "seen top-1", "seen probe", "train top-1"])
    ax.set_ylabel("accuracy (%)")
    ax.legend(fontsize=7)
    ax.set_title("Caltech-101: 81 seen / 20 unseen classes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(args: argparse.Namespace) -> dict[str, Any]:
    _settle(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = load_split(args.split_file)
    data = load_caltech(args.data_root, split, 96, "select" if args.select else "all")
    if args.train_per_class is not None:
        images, labels = data["train"]
        rank = torch.tensor([int((labels[:i] == y).sum()) for i, y in enumerate(labels)])
        data["train"] = (images[rank < args.train_per_class], labels[rank < args.train_per_class])
    if args.encoder == "scattering":
        cache_front_end(args, data)
    prompts = [fill_template(t, c) for c in data["seen_names"] + data["unseen_names"]
               for t in dict.fromkeys(args.train_templates + args.eval_templates)]
    cache = lit_text_tower(prompts) if "lit" in args.methods else None
    per_seed = run_seeds(args, data, cache, run_one, "caltech_zeroshot")
    settings = {k: v for k, v in vars(args).items() if k not in ("out",)}
    results = {"benchmark": "caltech_zeroshot", "command": invocation(), "settings": settings,
               "seen_eval": "val (4/class)" if args.select else "heldout (6/class)", "methods": list(args.methods),
               "per_seed": per_seed, "chance": CHANCE, "environment": environment()}
    seen_label = "seen val" if args.select else "seen held-out"
    table = method_table("metric (%)", per_seed, args.methods,
                         [(label.replace("seen", seen_label, 1) if key.startswith("seen") else label, key, CHANCE[key])
                          for key, label in METRICS])
    report = f"# Caltech-101 zero-shot ({len(args.seeds)} seeds)\n\n{table}"
    if not args.select:
        per_class = [[name] + [fmt_mean_std(per_seed[m][f"unseen_top1/{name}"]) for m in args.methods]
                     for name in data["unseen_names"]]
        report += ("\n\n## Unseen classes: zero-shot top-1 per class (%, 30 images each)\n\n"
                   + markdown_table(["class"] + [METHODS[m] for m in args.methods], per_class))
    save_report(out, "caltech_zeroshot", results, report, _plot, _method_card)
    print(table)
    return results


def _method_card(results: dict[str, Any]) -> MethodCard:
    summary = results["summary"]

    def pct(method: str, key: str) -> str:
        return summary_percent(summary, method, key)

    return MethodCard(
        method="LiT-style contrastive training with a locked pretrained text tower (frozen all-MiniLM-L6-v2), "
               f"image tower from scratch, {results['settings']['loss']} loss",
        why="the frozen sentence encoder already embeds class names semantically; training the image tower "
            "into that fixed space on 81 classes lets unseen class names, placed near related seen ones, "
            "act as classifiers (zero-shot transfer). Prompt ensembling averages template wording out.",
        backbone=f"{results['settings']['encoder']}/{results['settings']['encoder_size']} at "
                 f"{results['settings']['image_size']} px, embed dim {results['settings']['embed_dim']}",
        baseline="same image tower and recipe with a BPE text_transformer (tiny) trained from scratch; "
                 "chance 5 % unseen top-1",
        result=f"unseen top-1 {pct('lit', 'unseen_top1')} vs baseline {pct('scratch', 'unseen_top1')}; "
               f"seen top-1 {pct('lit', 'seen_top1')} vs {pct('scratch', 'seen_top1')}",
        reference="LiT (Zhai et al. 2022) and CLIP (Radford et al. 2021); OpenCLIP's results table lists "
                  "ViT-B/32 zero-shot Caltech-101 at 87.6 % (OpenAI WIT-400M) to 91.1 % (LAION-2B) over all "
                  "101 classes. The gap is data and scale: ~1,900 training images of 81 classes vs 400M+ "
                  "image–text pairs, and a "
                  f"from-scratch {results['settings']['encoder']} at {results['settings']['image_size']} px vs a "
                  "pretrained ViT-B/32 at 224 px. Supervised (not zero-shot) with 30 images per class, "
                  "roto-translation scattering + SVM reaches ~80 % on all 101 classes (Oyallon & Mallat, "
                  "CVPR 2015); our scattering head is translation-only, 64 px, 24 images per class.",
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    configure(parser)
    run(parser.parse_args())
