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

Image tower (``encoder``, default ``scattering_descriptors``): fixed
front ends with no learned or pretrained weights — a wavelet scattering
transform of the 64 px image and HOG / LBP / colour-histogram descriptors of
the 96 px image — followed by a small learned head trained from scratch (a
convolutional head on the scattering maps, Oyallon et al.'s hybrid network,
plus an MLP on the descriptors with heavy input dropout), chosen on the
validation split (``docs/benchmarks/caltech_zeroshot.md`` has the figures).
``scattering`` alone and any other ``chorus.encoders`` image encoder
(``resnet``, ``cnn``, ``vit``) work too.

Speed: the frozen text tower is a pure function of the prompt, so every
(class, template) prompt is embedded once into a
:class:`~chorus.contrastive.text_cache.CachedTextEncoder` and a training step
costs only the image tower. Likewise the scattering transform is a pure
function of the image: its coefficients are computed once for ``views``
augmented views of every training image (plain, mirrored, random resized
crops with colour jitter) and the head trains on a random cached view per
step. Images are decoded once into a uint8 tensor; for pixel encoders the
augmentation runs batched inside the image tower in training mode.

Prompts (``prompts``): the training captions and the zero-shot classifier
use the class name in templates (``names``), short visual descriptions of
each class (``descriptions``, ``configs/caltech_descriptions.yaml``: CuPL,
Pratt et al. 2023, and Menon & Vondrick 2023 — a language model's account of
what the class looks like, here written once for all 101 classes), or
``both``. A bare name places an unseen class only as well as the text
tower's sense of the *word*; a description also says what it looks like
("a cup: a small open container with a handle"), which can land it near seen
classes that share its shape or colour. A class's score is the cosine to its
mean prompt embedding, or to its best prompt (``reduce=max``). By default
(``reduce=conse``) an image is first re-expressed as the convex combination
of its 10 likeliest seen classes' mean prompt embeddings (ConSE, Norouzi et
al. 2014) before it meets the unseen classes' prompts; seen classes are
scored directly; ConSE was chosen on the class-level validation split.

Loss (``loss``): the captions are class prompts, so a batch of 128 over 81
classes holds many same-class pairs that CLIP's InfoNCE (``clip``) treats as
negatives. ``unicl`` (the default, :mod:`chorus.contrastive.unicl`) makes every
same-label pair a positive; ``classes`` scores each image against one prompt
of every seen class. UniCL is the default because it removes the false
negatives at no cost (the validation comparison is in the docs).

Reported (mean ± std over seeds): unseen 20-way zero-shot top-1/top-5 (all 600
images), seen 81-way zero-shot top-1 on the 6 held-out images per class, and a
linear probe (LinearProbe, C chosen on its own split) on the image tower's
pooled features, seen classes; plus the zero-shot top-1 on the (un-augmented)
training images, whose gap to the held-out top-1 is the overfitting.
Test-time augmentation (default; ``tta=false`` turns it off): an image's
embedding is the mean of its plain and mirrored views'. ``ensemble=K``
trains K image towers per seed and averages their zero-shot scores.

Two validation protocols, where all settings are chosen (never on test
images; neither reads the unseen classes' images or the held-out images):
``select=true`` trains on 20 images per seen class and reports the other 4
(image-side settings); ``select_unseen=true`` also holds 20 seen classes out of
training (``val_unseen`` in the split file; Xian et al. 2018's class-level
validation) and reports zero-shot accuracy on them (text-side settings).
Both also report every evaluation-only variant of the same trained models
(prompt set × mean/max × with/without TTA).

Baseline: the same image tower and recipe with a BPE ``text_transformer``
trained from scratch (its tokenizer learnt from the seen-class captions).
Chance: 5 % (unseen top-1), 25 % (top-5), 1.2 % (seen top-1).
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from chorus.bench._clip_common import METHODS, fit, method_table, run_seeds, summarize
from chorus.bench.driver import Report
from chorus.config import CONFIG_DIR
from chorus.contrastive import CLIP_TEMPLATES, ContrastiveModel, conse_embed
from chorus.contrastive.text_cache import CachedTextEncoder
from chorus.contrastive.unicl import LabelContrastiveModel
from chorus.data import BPETokenizer, Collate, build_dataset
from chorus.data.augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, TensorImages, cached_views, preload_images
from chorus.data.captions import PromptedDataset, fill_template
from chorus.data.text import TextTokenizer
from chorus.encoders import augmented_image_encoder, build_encoder
from chorus.encoders.descriptors import ScatteringDescriptorEncoder
from chorus.encoders.scattering import ScatteringEncoder
from chorus.errors import ConfigError, DataError
from chorus.eval.metrics import topk_accuracy
from chorus.eval.mode import evaluating
from chorus.eval.probe import LinearProbe, extract_features
from chorus.eval.report import MethodCard, fmt_mean_std, mean_std, summary_percent
from chorus.train import seed_everything

SPLIT_FILE = CONFIG_DIR / "caltech_split.yaml"
DESCRIPTIONS_FILE = CONFIG_DIR / "caltech_descriptions.yaml"

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

PROMPT_MODES = ("names", "descriptions", "both")

FIXED_FRONT_ENDS = ("scattering", "scattering_descriptors")
"""Image encoders whose ``transform`` is fixed: it is cached for ``views`` views and only the ``head`` trains."""


@dataclass(frozen=True)
class Config:
    """Every setting of the benchmark; defaults are the ones chosen on the validation split."""

    seeds: tuple[int, ...] = (0, 1, 2)
    data_root: str | None = None
    # Validation protocols (never read the unseen classes): ``select`` trains on 20 images per seen class and
    # reports the other 4 (image-side settings); ``select_unseen`` also holds the split's 20 val_unseen seen
    # classes out of training and scores them zero-shot (text-side settings).
    select: bool = False
    select_unseen: bool = False
    # Training captions and zero-shot classifier: class names in templates, the visual descriptions of
    # configs/caltech_descriptions.yaml, or both.
    prompts: Literal["names", "descriptions", "both"] = "descriptions"
    # A class's score: cosine to its mean prompt embedding, or to its best prompt; conse: unseen classes scored
    # from the image re-expressed through its 10 likeliest seen classes' prompts (ConSE, Norouzi et al. 2014).
    reduce: Literal["mean", "max", "conse"] = "conse"
    tta: bool = True  # average the plain and mirrored views' embeddings
    ensemble: int = 1  # image towers trained per seed (seeds seed + 1000·k); their zero-shot scores are averaged
    cache_dir: str | None = None  # keep the fixed front end's cached views here across runs (e.g. runs/cache)
    methods: tuple[Literal["lit", "scratch"], ...] = ("lit", "scratch")
    encoder: str = "scattering_descriptors"
    encoder_size: str = "small"
    # Size of the views the image tower reads (None: 96 for scattering_descriptors, whose descriptors read
    # 96 px and its scattering ``scattering_size``; 64 for the other encoders).
    image_size: int | None = None
    epochs: int = 60
    batch_size: int = 128
    # clip: in-batch InfoNCE; unicl: same-class captions in the batch are positives too; classes: each image
    # against the prompt-mean embedding of every seen class.
    loss: Literal["clip", "unicl", "classes"] = "unicl"
    label_smoothing: float = 0.0  # unicl/classes only
    mixup: float = 0.0  # unicl/classes only: Beta(α, α) parameter (0 = off), mixes inputs and targets
    lr: float = 2e-3
    weight_decay: float = 0.05
    embed_dim: int = 256
    freeze_text_projection: bool = False  # LiT only: keep the text projection at its random init
    views: int = 8  # fixed front ends: augmented views per training image whose transform is cached
    dropout: float = 0.0  # scattering encoders: channel dropout on the scattering coefficients
    descriptor_dropout: float = 0.8  # scattering_descriptors only
    scattering_size: int = 64  # scattering_descriptors only: the scattering reads the view resized to this
    crop_min: float = 0.35  # smallest crop area of random resized crop
    jitter: float = 0.3  # colour jitter strength (0 = off)
    train_per_class: int | None = None  # train on only the first N training images of each seen class
    probe: bool = True
    fp32: bool = False  # train in float32 instead of bf16 autocast
    train_templates: tuple[str, ...] = TRAIN_TEMPLATES
    eval_templates: tuple[str, ...] | None = None  # None: the training templates and CLIP's
    split_file: str = str(SPLIT_FILE)
    descriptions_file: str = str(DESCRIPTIONS_FILE)

    def __post_init__(self) -> None:
        if self.select and self.select_unseen:
            raise ConfigError("select and select_unseen are two different validation protocols: pick one")
        if self.loss == "clip" and (self.mixup or self.label_smoothing):
            raise ConfigError("mixup and label_smoothing act on the label-aware targets: use loss=unicl or classes")

    @property
    def mode(self) -> str:
        return "select" if self.select else "select_unseen" if self.select_unseen else "test"

    @property
    def grid(self) -> bool:
        """Validation runs also score every evaluation-only variant of the same trained models."""
        return self.mode != "test"

    @property
    def view_size(self) -> int:
        return self.image_size or (96 if self.encoder == "scattering_descriptors" else 64)

    @property
    def classifier_templates(self) -> list[str]:
        return list(self.eval_templates or dict.fromkeys(self.train_templates + tuple(CLIP_TEMPLATES)))

    @property
    def descriptions(self) -> dict[str, list[str]]:
        return load_descriptions(self.descriptions_file)

    @property
    def encoder_options(self) -> dict[str, Any]:
        if self.encoder == "scattering":
            return {"dropout": self.dropout}
        if self.encoder == "scattering_descriptors":
            return {
                "dropout": self.dropout,
                "descriptor_dropout": self.descriptor_dropout,
                "scattering_size": self.scattering_size,
                "mean": IMAGENET_MEAN,
                "std": IMAGENET_STD,
            }
        return {"stem_stride": 2} if self.encoder == "resnet" and self.view_size > 48 else {}


PRESETS = {
    "full": Config(),
    # One seed, the encoder's tiny size at 32 px, 4 epochs (4 cached views) on 12 images per class,
    # 4 templates, no probe.
    "quick": replace(
        Config(),
        seeds=(0,),
        encoder_size="tiny",
        image_size=32,
        scattering_size=32,
        epochs=4,
        views=4,
        train_per_class=12,
        probe=False,
        train_templates=QUICK_TEMPLATES,
        eval_templates=QUICK_TEMPLATES,
    ),
}


def load_split(path: str | Path = SPLIT_FILE) -> dict[str, Any]:
    """``{"seed", "unseen": [names], "val_unseen": [names], "seen": {name: {"heldout": [n], "val": [n]}}}``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"caltech split file {path} is missing")
    split = yaml.safe_load(path.read_text())
    for key in ("unseen", "val_unseen", "seen"):
        if key not in split:
            raise ConfigError(f"{path}: missing key {key!r}")
    overlap = set(split["unseen"]) & set(split["seen"])
    if overlap:
        raise ConfigError(f"{path}: classes both seen and unseen: {sorted(overlap)}")
    stray = set(split["val_unseen"]) - set(split["seen"])
    if stray:
        raise ConfigError(f"{path}: val_unseen classes must be seen classes, not {sorted(stray)}")
    return split


@functools.cache
def load_descriptions(path: str | Path = DESCRIPTIONS_FILE) -> dict[str, list[str]]:
    """``{class name: [visual descriptions]}``, the same number for every class (the classifier stacks them)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"caltech descriptions file {path} is missing")
    descriptions = yaml.safe_load(path.read_text())
    counts = {len(v) for v in descriptions.values()}
    if len(counts) != 1 or any(not isinstance(d, str) or not d.strip() for v in descriptions.values() for d in v):
        raise ConfigError(f"{path}: every class needs the same number of non-empty descriptions")
    return descriptions


def _image_number(path: str) -> int:
    return int(Path(path).stem.split("_")[-1])


MODES = ("test", "select", "select_unseen")


def load_caltech(data_root: str | None, split: dict[str, Any], size: int, mode: str) -> dict[str, Any]:
    """Preloaded uint8 images by source, and each part as ``(source, indices into it, labels)``.

    Sources: ``pool`` = the 24 non-held-out images of every seen class (in
    every mode, so that one cache of their views serves all modes), plus in
    ``"test"`` mode ``heldout`` (6 per seen class) and ``unseen`` (all 30 of
    each unseen class). Parts — ``"test"``: ``train`` = the pool, ``eval_seen``
    = heldout, ``unseen`` = unseen. ``"select"``: ``train`` = 20 per seen
    class, ``eval_seen`` = their 4 ``val`` images, no ``unseen`` part.
    ``"select_unseen"`` (class-level validation): as ``"select"`` over the
    seen classes outside ``val_unseen``, and ``unseen`` = the 24 pool images of
    each ``val_unseen`` class. Only ``"test"`` reads the unseen classes' images
    or the seen classes' held-out images. ``seen_names`` / ``unseen_names``
    name the label indices.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    dataset = build_dataset("caltech101", root=data_root, split="all")
    names = dataset.classes
    missing = sorted((set(split["unseen"]) | set(split["seen"])) - set(names))
    if missing:
        raise DataError(f"split classes not in caltech101/classes.txt: {missing}")
    held_classes = split["val_unseen"] if mode == "select_unseen" else []
    seen = sorted(set(split["seen"]) - set(held_classes))
    unseen = list(split["unseen"]) if mode == "test" else list(held_classes)
    sources: dict[str, list[int]] = {"pool": [], "heldout": [], "unseen": []}
    parts: dict[str, tuple[str, list[int], list[int]]] = {}
    for i, record in enumerate(dataset.records):
        name = names[dataset.labels[i]]
        if name not in split["seen"]:
            source = part = "unseen" if mode == "test" else None
        else:
            held = split["seen"][name]
            number = _image_number(record["path"])
            if number in held["heldout"]:
                source, part = ("heldout", "eval_seen") if mode == "test" else (None, None)
            elif name in held_classes:
                source, part = "pool", "unseen"
            elif number in held["val"] and mode != "test":
                source, part = "pool", "eval_seen"
            else:
                source, part = "pool", "train"
        if source is not None:
            assert part is not None  # set together with source
            sources[source].append(i)
            _, index, labels = parts.setdefault(part, (source, [], []))
            index.append(len(sources[source]) - 1)
            labels.append((unseen if part == "unseen" else seen).index(name))
    images = {
        source: preload_images([dataset.load(i)["image"] for i in indices], size)
        for source, indices in sources.items()
        if indices
    }
    return {
        "seen_names": seen,
        "unseen_names": unseen,
        "images": images,
        **{
            part: (source, torch.tensor(index), torch.tensor(labels)) for part, (source, index, labels) in parts.items()
        },
    }


def class_prompts(
    classes: Sequence[str], mode: str, templates: Sequence[str], descriptions: dict[str, list[str]]
) -> list[list[str]]:
    """Every class's prompts: its name in ``templates`` (``names``), its visual ``descriptions``, or ``both``."""
    if mode not in PROMPT_MODES:
        raise ConfigError(f"prompts must be one of {PROMPT_MODES}, got {mode!r}")
    missing = [c for c in classes if mode != "names" and c not in descriptions]
    if missing:
        raise ConfigError(f"no descriptions for classes {missing}")
    return [
        ([fill_template(t, c) for t in templates] if mode != "descriptions" else [])
        + (list(descriptions[c]) if mode != "names" else [])
        for c in classes
    ]


@torch.no_grad()
def embed_views(model: ContrastiveModel, views: Tensor, batch_size: int = 256) -> Tensor:
    """Normalised image embeddings of every view: [N, V, ...] → [N, V, embed_dim] (eval mode)."""
    with evaluating(model):
        out = [
            model.encode("image", views[s : s + batch_size].flatten(0, 1)).float()
            for s in range(0, views.shape[0], batch_size)
        ]
    return torch.cat(out).view(views.shape[0], views.shape[1], -1)


@torch.no_grad()
def embed_prompts(model: ContrastiveModel, tokenize, prompts: Sequence[Sequence[str]]) -> Tensor:
    """Normalised text embeddings [classes, prompts per class, embed_dim] (every class has as many prompts)."""
    flat = [text for class_prompts in prompts for text in class_prompts]
    with evaluating(model):
        ids, mask = tokenize(flat)
        z = model.encode("text", ids, mask).float()
    return z.view(len(prompts), -1, z.shape[-1])


def zero_shot_logits(
    images: Tensor, texts: Tensor, tta: bool, reduce: str, seen: Tensor | None = None, logit_scale: float = 1.0
) -> Tensor:
    """Class scores [N, classes] of image embeddings [N, V, D] against prompt embeddings [C, P, D].

    ``tta``: average the normalised embeddings of all V views (plain and
    mirrored), else view 0 only. ``reduce="mean"``: cosine to the renormalised
    mean prompt embedding of each class (CLIP's prompt ensemble); ``"max"``: the
    best-matching single prompt of each class; ``"conse"``: as ``"mean"``, after
    re-expressing each image through its likeliest seen classes' mean prompt
    embeddings ``seen`` [C_seen, P, D] at the model's ``logit_scale``
    (:func:`~chorus.contrastive.zeroshot.conse_embed`; for unseen classes).
    """
    z = F.normalize(images.mean(1), dim=-1) if tta else images[:, 0]
    if reduce == "conse":
        if seen is None:
            raise ConfigError("reduce='conse' needs the seen classes' prompt embeddings")
        z = conse_embed(z, F.normalize(seen.mean(1), dim=-1), logit_scale)
    if reduce in ("mean", "conse"):
        return z @ F.normalize(texts.mean(1), dim=-1).T
    if reduce == "max":
        return torch.einsum("nd,cpd->ncp", z, texts).amax(-1)
    raise ConfigError(f"reduce must be 'mean', 'max' or 'conse', got {reduce!r}")


def _scores(logits: Tensor, labels: Tensor, classes: Sequence[str]) -> dict[str, float]:
    """``{"top1", "top5", f"top1/{class}" for every class}``: which classes transfer, not only how many."""
    correct = logits.argmax(1) == labels
    per_class = {f"top1/{name}": float(correct[labels == c].float().mean()) for c, name in enumerate(classes)}
    return topk_accuracy(logits, labels, (1, 5)) | per_class


def _probe(
    models: Sequence[ContrastiveModel], train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], seed: int
) -> float:
    """Linear-probe accuracy on the image towers' pooled features (concatenated over ``models``), plain views."""

    def features(x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
        batches = [{"image": x[s : s + 256, 0], "label": y[s : s + 256]} for s in range(0, len(y), 256)]
        out = [extract_features(model.encoders["image"], batches, "image") for model in models]
        return np.concatenate([f for f, _ in out], axis=1), out[0][1]

    x_train, y_train = features(*train)
    x_test, y_test = features(*test)
    probe = LinearProbe(Cs=(0.01, 0.1, 1.0), max_iter=300, random_state=seed).fit(x_train, y_train)
    return float(probe.score(x_test, y_test))


def _augment(cfg: Config) -> BatchAugment:
    return BatchAugment(cfg.view_size, scale=(cfg.crop_min, 1.0), jitter=cfg.jitter)


def prepare_views(cfg: Config, data: dict[str, Any]) -> None:
    """Replace every part's ``(source, indices, labels)`` by ``(views [N, V, ...], labels)``.

    Evaluation parts get V = 2 (plain, mirrored: test-time augmentation
    averages them); ``train`` keeps ``views`` views for training and
    ``train_eval`` is its first two. Scattering: the views hold the fixed
    transform's coefficients, computed once per source
    (:func:`~chorus.bench._clip_common.cached_views`, kept under
    ``cache_dir`` if given; the pool's ``views`` views serve training and
    the pool's evaluation parts alike). Pixel encoders: the views are images
    (training augmentation then runs inside the tower), evaluation views the
    image and its mirror.
    """
    start = time.perf_counter()
    images = data.pop("images")
    parts = [part for part in ("train", "eval_seen", "unseen") if part in data]
    for source in images:  # drop images no part uses (train_per_class), renumbering the indices
        used = torch.cat([data[part][1] for part in parts if data[part][0] == source]).unique()
        if len(used) < len(images[source]):
            images[source] = images[source][used]
            for part in parts:
                if data[part][0] == source:
                    data[part] = (source, torch.searchsorted(used, data[part][1]), data[part][2])
    if cfg.encoder in FIXED_FRONT_ENDS:
        encoder = build_encoder(cfg.encoder, cfg.encoder_size, image_size=cfg.view_size, **cfg.encoder_options)
        assert isinstance(encoder, (ScatteringEncoder, ScatteringDescriptorEncoder))  # FIXED_FRONT_ENDS
        augment = _augment(cfg)
        views = {
            source: cached_views(
                encoder.transform,
                augment,
                x,
                cfg.views if source == "pool" else 2,
                seed=0,
                cache_dir=cfg.cache_dir,
                key=encoder.transform.key,
            )
            for source, x in images.items()
        }
        print(
            f"{cfg.encoder} front end: {tuple(views['pool'].shape)} pool views in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    else:
        views = {source: torch.stack([x, x.flip(-1)], 1) for source, x in images.items()}
    for part in parts:
        source, index, labels = data[part]
        data[part] = (views[source][index][:, :2], labels)
        if part == "train":
            data["train_eval"] = data[part]
            data[part] = (views[source][index] if cfg.encoder in FIXED_FRONT_ENDS else images[source][index], labels)


def train_model(
    cfg: Config, data: dict[str, Any], method: str, seed: int, cache: CachedTextEncoder | None, run_dir: Path
) -> tuple[ContrastiveModel, Callable[[list[str]], tuple[Tensor, Tensor]]]:
    """One trained model (``lit`` or ``scratch``, seeded by ``seed``) in eval mode, and its tokenizer."""
    seed_everything(seed)
    seen = data["seen_names"]
    train_images, train_labels = data["train"]
    label = lambda i: {"label": int(train_labels[i])}  # noqa: E731
    if cfg.encoder in FIXED_FRONT_ENDS:  # fixed front end cached: train its head on precomputed augmented views
        front = build_encoder(cfg.encoder, cfg.encoder_size, image_size=cfg.view_size, **cfg.encoder_options)
        assert isinstance(front, (ScatteringEncoder, ScatteringDescriptorEncoder))  # FIXED_FRONT_ENDS
        tower: nn.Module = front.head
        base = TensorImages(train_images, label, seen, views=True)
    else:
        tower = augmented_image_encoder(
            cfg.encoder, cfg.encoder_size, cfg.view_size, _augment(cfg), **cfg.encoder_options
        )
        base = TensorImages(train_images, label, seen)
    train_prompts = class_prompts(seen, cfg.prompts, cfg.train_templates, cfg.descriptions)
    train_set = PromptedDataset(base, train_prompts)
    text: nn.Module
    tokenizer: TextTokenizer
    frozen: tuple[str, ...]
    if method == "lit":
        assert cache is not None  # built whenever "lit" is among the methods
        text, frozen, context = cache, ("text",), 1
        tokenizer = cache.tokenizer
    else:
        bpe = BPETokenizer.train(train_set.captions(), vocab_size=1000, min_frequency=1)
        # Long enough for the longest training caption (descriptions run to ~40 tokens), at least 32.
        longest = int(bpe(train_set.captions(), 128)[1].sum(1).max())
        context = max(32, -(-longest // 8) * 8)
        text = build_encoder("text_transformer", "tiny", vocab_size=bpe.vocab_size, context_length=context)
        tokenizer, frozen = bpe, ()
    model = ContrastiveModel(
        {"image": tower, "text": text},
        cfg.embed_dim,
        frozen=frozen,
        freeze_projection=cfg.freeze_text_projection and method == "lit",
    )
    tokenize = lambda texts: tokenizer(texts, context)  # noqa: E731
    soft: dict[str, Any] = {"smoothing": cfg.label_smoothing, "mixup": cfg.mixup}
    trained: nn.Module
    if cfg.loss == "clip":
        trained = model
    elif cfg.loss == "unicl":
        trained = LabelContrastiveModel(model, **soft)
    else:
        trained = LabelContrastiveModel(
            model,
            class_prompts=tokenize([t for p in train_prompts for t in p]),
            prompts_per_class=len(train_prompts[0]),
            **soft,
        )
    fit(
        trained,
        train_set,
        Collate(tokenizer, context),
        run_dir,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=seed,
        bf16=not cfg.fp32,
    )
    return model.eval(), tokenize


def run_one(
    cfg: Config, data: dict[str, Any], method: str, seed: int, cache: CachedTextEncoder | None, run_dir: Path
) -> dict[str, float]:
    """Train ``ensemble`` models (``lit`` or ``scratch``) from ``seed`` and evaluate them as one classifier.

    An ensemble's zero-shot score of a class is the mean over members of
    each member's score (members have their own embedding spaces, so scores
    are averaged, not embeddings); its probe reads the members' concatenated
    features.
    """
    seen, unseen = data["seen_names"], data["unseen_names"]
    start = time.perf_counter()
    members = [
        train_model(cfg, data, method, seed + 1000 * k, cache, run_dir / f"member{k}") for k in range(cfg.ensemble)
    ]
    train_seconds = time.perf_counter() - start
    classes = {"seen": seen, "unseen": unseen}
    parts: list[str] = [part for part in ("train_eval", "eval_seen", "unseen") if part in data]
    modes = PROMPT_MODES if cfg.grid else (cfg.prompts,)
    embedded = [
        (
            {part: embed_views(model, data[part][0]) for part in parts},
            {
                (names, mode): embed_prompts(
                    model, tokenize, class_prompts(classes[names], mode, cfg.classifier_templates, cfg.descriptions)
                )
                for names in classes
                for mode in modes
                if names == "seen" or "unseen" in data
            },
        )
        for model, tokenize in members
    ]

    def scores(
        part: str,
        names: str,
        mode: str = cfg.prompts,
        tta: bool = cfg.tta,
        reduce: str = cfg.reduce,
        first: int = cfg.ensemble,
    ) -> dict[str, float]:
        """Zero-shot scores of ``part`` among ``names`` classes, by the ensemble's ``first`` members."""
        reduce = "mean" if reduce == "conse" and names == "seen" else reduce  # ConSE transfers to unseen classes
        logits = torch.stack(
            [
                zero_shot_logits(
                    images[part],
                    texts[(names, mode)],
                    tta,
                    reduce,
                    texts[("seen", mode)],
                    float(model.current_logit_scale().detach()),
                )
                for (images, texts), (model, _) in zip(embedded[:first], members)
            ]
        ).mean(0)
        return _scores(logits, data[part][1], classes[names])

    # Choosing settings (select=true) must not see the unseen test images, not even their scores.
    unseen_scores = scores("unseen", "unseen") if "unseen" in data else {"top1": float("nan"), "top5": float("nan")}
    seen_scores = scores("eval_seen", "seen")
    # The same classifier on the (un-augmented) training images: the gap to seen_top1 is the overfitting.
    train_scores = scores("train_eval", "seen")
    probe = _probe([model for model, _ in members], data["train_eval"], data["eval_seen"], seed) if cfg.probe else None
    result = {
        "unseen_top1": unseen_scores["top1"],
        "unseen_top5": unseen_scores["top5"],
        "seen_top1": seen_scores["top1"],
        "seen_top5": seen_scores["top5"],
        "train_top1": train_scores["top1"],
        "probe_seen_top1": float("nan") if probe is None else probe,
        "train_seconds": train_seconds,
        **{f"unseen_{k}": v for k, v in unseen_scores.items() if k.startswith("top1/")},
    }
    if cfg.grid:  # every evaluation-only variant of the same trained models (validation modes only)
        for part, names in (("eval_seen", "seen"), ("unseen", "unseen")):
            reduces = ("mean", "max", "conse") if names == "unseen" else ("mean", "max")
            for mode, reduce, tta in itertools.product(PROMPT_MODES, reduces, (False, True)):
                if part in data:
                    top = scores(part, names, mode, tta, reduce)
                    variant = f"{mode}/{reduce}/{'tta' if tta else 'plain'}"
                    result |= {f"grid/{names}/{variant}/top1": top["top1"], f"grid/{names}/{variant}/top5": top["top5"]}
        if cfg.ensemble > 1:  # the first member alone: what the ensemble adds
            result["seen_top1_member0"] = scores("eval_seen", "seen", first=1)["top1"]
    return result


METRICS = (
    ("unseen_top1", "{unseen} zero-shot top-1 ({n_unseen}-way)"),
    ("unseen_top5", "{unseen} zero-shot top-5 ({n_unseen}-way)"),
    ("seen_top1", "{seen} zero-shot top-1 ({n_seen}-way)"),
    ("probe_seen_top1", "{seen} linear probe top-1 ({n_seen}-way)"),
    ("train_top1", "training images zero-shot top-1 ({n_seen}-way)"),
)


def _plot(report: Report, results: dict[str, Any]) -> None:
    with report.figure("caltech_zeroshot", figsize=(7, 3.2)) as (_, ax):
        width = 0.8 / len(results["methods"])
        for m, method in enumerate(results["methods"]):
            stats = [mean_std(results["per_seed"][method][key]) for key, _ in METRICS]
            ax.bar(
                np.arange(len(METRICS)) + m * width,
                [100 * s[0] for s in stats],
                width,
                yerr=[100 * s[1] for s in stats],
                label=METHODS[method],
                capsize=3,
            )
        for i, (key, _) in enumerate(METRICS):
            ax.hlines(
                100 * results["chance"][key],
                i - width / 2,
                i + width * (len(results["methods"]) - 0.5),
                colors="k",
                linestyles=":",
                label="chance" if i == 0 else None,
            )
        ax.set_xticks(np.arange(len(METRICS)) + width * (len(results["methods"]) - 1) / 2)
        ax.set_xticklabels(["unseen top-1", "unseen top-5", "seen top-1", "seen probe", "train top-1"])
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
        ax.set_title("Caltech-101: 81 seen / 20 unseen classes", fontsize=9)


def run(cfg: Config, report: Report) -> None:
    """Train both text-tower variants per seed, score seen and unseen classes zero-shot, report against chance."""
    split = load_split(cfg.split_file)
    data = load_caltech(cfg.data_root, split, 96, cfg.mode)
    if cfg.train_per_class is not None:
        source, index, labels = data["train"]
        rank = torch.tensor([int((labels[:i] == y).sum()) for i, y in enumerate(labels)])
        data["train"] = (source, index[rank < cfg.train_per_class], labels[rank < cfg.train_per_class])
    prepare_views(cfg, data)
    classes = data["seen_names"] + data["unseen_names"]
    templates = list(dict.fromkeys(list(cfg.train_templates) + cfg.classifier_templates))
    prompts = [
        text for mode in PROMPT_MODES for p in class_prompts(classes, mode, templates, cfg.descriptions) for text in p
    ]
    cache = CachedTextEncoder.minilm(prompts) if "lit" in cfg.methods else None
    per_seed = run_seeds(cfg, data, cache, run_one, "caltech_zeroshot")
    n_seen, n_unseen = len(data["seen_names"]), len(data["unseen_names"])
    chance = {
        "unseen_top1": 1 / n_unseen if n_unseen else float("nan"),
        "unseen_top5": 5 / n_unseen if n_unseen else float("nan"),
        "seen_top1": 1 / n_seen,
        "probe_seen_top1": 1 / n_seen,
        "train_top1": 1 / n_seen,
    }
    seen_eval = {"test": "heldout (6/class)", "select": "val (4/class)", "select_unseen": "val (4/class)"}[cfg.mode]
    results = report.results
    results.update(
        {
            "seen_eval": seen_eval,
            "seen_classes": data["seen_names"],
            "unseen_classes": data["unseen_names"],
            "methods": list(cfg.methods),
            "per_seed": per_seed,
            "chance": chance,
            "summary": summarize(per_seed),
        }
    )
    labels = {
        "test": ("unseen", "seen held-out"),
        "select": ("unseen", "seen val"),
        "select_unseen": ("val-unseen", "seen val"),
    }[cfg.mode]
    headers, rows = method_table(
        "metric (%)",
        per_seed,
        cfg.methods,
        [
            (label.format(unseen=labels[0], seen=labels[1], n_unseen=n_unseen, n_seen=n_seen), key, chance[key])
            for key, label in METRICS
            if n_unseen or not key.startswith("unseen")
        ],
    )
    print(report.table(f"Caltech-101 zero-shot ({len(cfg.seeds)} seeds, {cfg.mode})", headers, rows))
    if cfg.mode == "test":
        per_class = [
            [name] + [fmt_mean_std(per_seed[m][f"unseen_top1/{name}"]) for m in cfg.methods]
            for name in data["unseen_names"]
        ]
        report.table(
            "Unseen classes: zero-shot top-1 per class (%, 30 images each)",
            ["class"] + [METHODS[m] for m in cfg.methods],
            per_class,
        )
    if cfg.grid:
        variants = sorted(
            {key.split("/", 2)[2].rsplit("/", 1)[0] for key in per_seed[cfg.methods[0]] if key.startswith("grid/")}
        )
        columns = [
            (m, names, k)
            for m in cfg.methods
            for names in ("unseen", "seen")
            for k in ("top1", "top5")
            if any(f"grid/{names}/{variant}/{k}" in per_seed[m] for variant in variants)
        ]
        grid_rows = [
            [variant]
            + [
                fmt_mean_std(per_seed[m][f"grid/{names}/{variant}/{k}"])
                if f"grid/{names}/{variant}/{k}" in per_seed[m]
                else "–"
                for m, names, k in columns
            ]
            for variant in variants
        ]
        header = ["classifier prompts / reduce / views"] + [
            f"{m} {labels[0] if names == 'unseen' else labels[1]} {k}" for m, names, k in columns
        ]
        report.table("Evaluation variants of the same trained models (%)", header, grid_rows)
    _plot(report, results)
    report.card(_method_card(cfg, results))


def _method_card(cfg: Config, results: dict[str, Any]) -> MethodCard:
    summary = results["summary"]
    conse = "ConSE (Norouzi et al. 2014) for the unseen classes, " if cfg.reduce == "conse" else ""

    def pct(method: str, key: str) -> str:
        return summary_percent(summary, method, key)

    return MethodCard(
        method="LiT-style contrastive training with a locked pretrained text tower (frozen all-MiniLM-L6-v2), "
        f"image tower from scratch, {cfg.loss} loss, "
        f"{cfg.prompts} prompts (training captions and classifier), "
        f"{conse}"
        f"{'plain + mirrored view' if cfg.tta else 'plain view'} at evaluation",
        why="the frozen sentence encoder already embeds text semantically; training the image tower "
        "into that fixed space on 81 classes lets the prompts of unseen classes, placed near related seen "
        "ones, act as classifiers (zero-shot transfer). Visual descriptions of each class (CuPL) say what "
        "it looks like, so an unseen class lands near seen classes of similar shape, parts or colour even "
        "when its bare name has no visually related neighbour.",
        backbone=f"{cfg.encoder}/{cfg.encoder_size} at "
        f"{cfg.view_size} px"
        + (
            f" (scattering at {cfg.scattering_size} px; HOG, LBP and colour histograms: "
            "Dalal & Triggs 2005, Ojala et al. 2002, fused as in Gehler & Nowozin 2009)"
            if cfg.encoder == "scattering_descriptors"
            else ""
        )
        + f", embed dim {cfg.embed_dim}",
        baseline="same image tower and recipe with a BPE text_transformer (tiny) trained from scratch; "
        "chance 5 % unseen top-1",
        result=f"unseen top-1 {pct('lit', 'unseen_top1')} vs baseline {pct('scratch', 'unseen_top1')}; "
        f"seen top-1 {pct('lit', 'seen_top1')} vs {pct('scratch', 'seen_top1')}",
        reference="LiT (Zhai et al. 2022) and CLIP (Radford et al. 2021); descriptions as prompts: CuPL (Pratt "
        "et al., ICCV 2023) and Menon & Vondrick (ICLR 2023), both with GPT-3 prompts and a pretrained "
        "CLIP (here: descriptions written once by the assistant, and a from-scratch image "
        "tower); class-level validation as in Xian et al. (TPAMI 2018). OpenCLIP's results table lists "
        "ViT-B/32 zero-shot Caltech-101 at 87.6 % (OpenAI WIT-400M) to 91.1 % (LAION-2B) over all "
        "101 classes. The gap is data and scale: ~1,900 training images of 81 classes vs 400M+ "
        "image–text pairs, and a "
        f"from-scratch {cfg.encoder} at {cfg.view_size} px vs a "
        "pretrained ViT-B/32 at 224 px. Supervised (not zero-shot) with 30 images per class, "
        "roto-translation scattering + SVM reaches ~80 % on all 101 classes (Oyallon & Mallat, "
        "CVPR 2015); our scattering is translation-only, 64 px, 24 images per class; hybrid "
        "scattering + learned head as in Oyallon et al. (ICCV 2017).",
    )
