"""``chorus demo``: a small CLIP trained offline on scikit-learn's digits in about a minute.

What it shows, end to end on real (embedded) data: captions written from labels
with several templates train an image tower and a text tower with the symmetric
contrastive loss; the trained pair then classifies held-out images *zero-shot*
from prompt templates the text tower never saw, and retrieves images from text.
Needs no network and no files beyond scikit-learn's bundled dataset.

The demo is an ordinary experiment (:func:`demo_config`) trained by
:func:`chorus.experiment.train_experiment`, so ``runs/demo`` is a normal run
folder: ``chorus eval``, ``chorus zeroshot``, ``chorus predict``, ``chorus index
build`` and ``chorus serve`` work on it like on any trained run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from chorus.contrastive import ContrastiveModel, build_zero_shot_classifier, retrieval_metrics, zero_shot_accuracy
from chorus.data import Collate
from chorus.data.captions import DIGIT_WORDS, fill_template
from chorus.eval.mode import evaluating
from chorus.eval.plots import figure
from chorus.experiment import (
    DataConfig,
    EncoderConfig,
    ExperimentConfig,
    ModelConfig,
    build_eval_dataset,
    load_run,
    train_experiment,
)
from chorus.train import TrainConfig

TRAIN_TEMPLATES = (
    "a photo of the digit {}.",
    "a handwritten {}.",
    "the number {}.",
    "a scan of a handwritten {}.",
    "{}",
    "a tiny image of the digit {}.",
    "a blurry {}.",
    "someone wrote the number {}.",
)
"""Caption templates used for training."""

TEST_TEMPLATES = (
    "a drawing of the number {}.",
    "an image of a {}.",
    "a picture showing the digit {}.",
)
"""Zero-shot prompt templates, disjoint from :data:`TRAIN_TEMPLATES`."""

IMAGE_SIZE = 16
CONTEXT_LENGTH = 24


def demo_config(*, seed: int = 0, epochs: int = 20, progress: bool = True) -> ExperimentConfig:
    """The demo as an experiment: a tiny CNN image tower and a BPE text transformer on digit captions."""
    data = DataConfig(
        name="digits",
        image_size=IMAGE_SIZE,
        image_channels=1,
        flip=False,
        crop_scale=(0.8, 1.0),  # digits are not mirror-symmetric: crops, no flips
        vocab_size=400,
        context_length=CONTEXT_LENGTH,
        class_names=list(DIGIT_WORDS),
        caption_templates=list(TRAIN_TEMPLATES),
    )
    towers = {"image": EncoderConfig("cnn", "tiny"), "text": EncoderConfig("text_transformer", "tiny")}
    model = ModelConfig(task="contrastive", encoders=towers, embed_dim=64, zero_shot_templates=list(TEST_TEMPLATES))
    train = TrainConfig(
        epochs=epochs,
        batch_size=64,
        lr=2e-3,
        warmup_steps=50,
        weight_decay=0.05,
        seed=seed,
        log_every=20,
        progress=progress,
        tensorboard=False,
    )
    return ExperimentConfig(name="demo", data=data, model=model, train=train)


def _embed(model: ContrastiveModel, loader: DataLoader, modality: str) -> tuple[torch.Tensor, torch.Tensor]:
    embeddings, labels = [], []
    with evaluating(model), torch.no_grad():
        for batch in loader:
            embeddings.append(model.encode(modality, batch[modality], batch.get(f"{modality}_mask")))
            labels.append(batch["label"])
    return torch.cat(embeddings), torch.cat(labels)


def _plot(run_dir: Path, image_emb: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor) -> None:
    from sklearn.decomposition import PCA

    order = torch.argsort(labels, stable=True)
    similarity = (image_emb[order] @ class_emb).numpy()
    with figure(run_dir / "similarity.png", figsize=(5, 6)) as (fig, ax):
        im = ax.imshow(similarity, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xticks(range(len(DIGIT_WORDS)), DIGIT_WORDS, rotation=60)
        ax.set_ylabel("held-out images (sorted by true digit)")
        ax.set_title("cosine similarity: images × zero-shot class prompts")
        fig.colorbar(im, ax=ax)

    pca = PCA(n_components=2).fit(image_emb.numpy())
    points, anchors = pca.transform(image_emb.numpy()), pca.transform(class_emb.T.numpy())
    with figure(run_dir / "embeddings.png", figsize=(6, 5)) as (_, ax):
        scatter = ax.scatter(points[:, 0], points[:, 1], c=labels.numpy(), cmap="tab10", s=8, alpha=0.7)
        ax.scatter(anchors[:, 0], anchors[:, 1], c=range(10), cmap="tab10", marker="*", s=250, edgecolors="black")
        for digit, (x, y) in enumerate(anchors):
            ax.annotate(DIGIT_WORDS[digit], (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.legend(*scatter.legend_elements(), title="digit", fontsize=7, loc="best")
        ax.set_title("image embeddings (dots) and class prompts (stars), PCA")


def run_demo(
    run_dir: str | os.PathLike = "runs/demo", *, seed: int = 0, epochs: int = 20, progress: bool = True
) -> dict[str, Any]:
    """Train the demo CLIP, evaluate it zero-shot, write plots and ``metrics.json``; return the metrics."""
    run_dir = Path(run_dir)
    train_metrics = train_experiment(demo_config(seed=seed, epochs=epochs, progress=progress), run_dir, overwrite=True)
    cfg, model, _, tokenizer = load_run(run_dir)
    assert isinstance(model, ContrastiveModel) and tokenizer is not None  # what demo_config builds
    test = build_eval_dataset(cfg)

    def tokenize(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenizer(texts, CONTEXT_LENGTH)

    test_loader = DataLoader(test, batch_size=256, collate_fn=Collate())
    classifier = build_zero_shot_classifier(model, tokenize, DIGIT_WORDS, TEST_TEMPLATES)
    zero_shot = zero_shot_accuracy(model, test_loader, classifier)
    image_emb, labels = _embed(model, test_loader, "image")

    # Text → image retrieval: one query per (class, unseen template); every image of that class is correct.
    queries = [(digit, fill_template(t, word)) for digit, word in enumerate(DIGIT_WORDS) for t in TEST_TEMPLATES]
    with evaluating(model), torch.no_grad():
        text_emb = model.encode("text", *tokenize([q for _, q in queries]))
    positives = [set(torch.nonzero(labels == digit).flatten().tolist()) for digit, _ in queries]
    recall = retrieval_metrics(text_emb, image_emb, positives, ks=(1, 5))

    metrics = {
        "zero_shot_top1": zero_shot["top1"],
        "zero_shot_top5": zero_shot["top5"],
        "recall_at_1": recall["R@1"],
        "recall_at_5": recall["R@5"],
        "train_loss": float(train_metrics["loss"]),
        "n_train_images": len(build_eval_dataset(cfg, split=cfg.data.train_split)),
        "n_test_images": len(test),
        "epochs": epochs,
        "seed": seed,
        "chance_top1": 1 / len(DIGIT_WORDS),
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _plot(run_dir, image_emb, labels, classifier)
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    """The demo's metrics as a small aligned text table."""
    rows = [
        (
            "zero-shot top-1 (unseen prompts)",
            f"{metrics['zero_shot_top1']:.3f}",
            f"chance {metrics['chance_top1']:.2f}",
        ),
        ("zero-shot top-5", f"{metrics['zero_shot_top5']:.3f}", ""),
        ("text→image Recall@1", f"{metrics['recall_at_1']:.3f}", ""),
        ("text→image Recall@5", f"{metrics['recall_at_5']:.3f}", ""),
        ("final training loss", f"{metrics['train_loss']:.3f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value:>6}  {note}".rstrip() for name, value, note in rows)
