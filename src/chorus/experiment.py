"""Config-driven experiments: what ``chorus train CONFIG`` and ``chorus eval RUN_DIR`` run.

An experiment YAML (see ``configs/``) names a dataset, the encoders and a task,
and carries a :class:`~chorus.train.TrainConfig`. Two tasks cover the common
cases with one code path each:

- ``classify``: one encoder + linear head, cross-entropy (the unimodal baseline);
- ``contrastive``: CLIP-style towers trained on captions written from the class
  names (a labelled dataset) or on real captions (COCO), evaluated zero-shot;
- ``vqa``: an image and a question (``text``) encoder joined by the fusion
  ``model.fusion`` (e.g. ``relation_network``), classifying the answer
  (:class:`~chorus.fusion.vqa.VQAModel`); the BPE tokenizer is trained on the
  dataset's ``texts()``.

The run directory receives ``experiment.yaml`` (the full validated config),
``tokenizer.json`` (when a BPE tokenizer was trained), ``model.safetensors``,
``classes.json``, ``metrics.json`` and the Trainer's ``metrics.jsonl`` /
checkpoints, so ``chorus eval RUN_DIR`` can rebuild everything from the folder
alone, and :func:`load_trained` rebuilds the model without any data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from chorus.classifier import Classifier
from chorus.config import load_config, save_config
from chorus.contrastive import ContrastiveModel, SigmoidLoss, build_zero_shot_classifier, zero_shot_accuracy
from chorus.contrastive.retrieval import dataset_retrieval
from chorus.data import BPETokenizer, Collate, ImageTransform, LogMel, SampleTransform, WordPieceTokenizer, build_dataset
from chorus.data.base import Sample
from chorus.data.captions import CaptionedDataset
from chorus.data.text import SubwordTokenizer
from chorus.encoders import build_encoder, encoder_modality
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating
from chorus.fusion.vqa import VQAModel, vqa_accuracy
from chorus.train import Trainer, TrainConfig, distributed, seed_everything


@dataclass
class DataConfig:
    """Which dataset, and how each modality is turned into tensors."""

    name: str
    root: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, Any] = field(default_factory=dict)  # override ``options`` for the eval split
    on_error: Literal["raise", "skip"] = "raise"
    image_size: int = 32
    image_channels: int = 3
    augment: bool = True
    flip: bool = True
    sample_rate: int = 8000
    n_mels: int = 40
    tokenizer: Literal["bpe", "minilm"] = "bpe"
    vocab_size: int = 1000
    context_length: int = 32
    class_names: list[str] | None = None
    caption_templates: list[str] = field(default_factory=list)


@dataclass
class EncoderConfig:
    """An encoder by registry name and size; ``options`` override size defaults."""

    name: str
    size: str = "small"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    task: Literal["classify", "contrastive", "vqa"]
    encoders: dict[str, EncoderConfig]
    fusion: str = "relation_network"  # task vqa: a registered fusion (chorus.fusion.FUSIONS)
    fusion_options: dict[str, Any] = field(default_factory=dict)
    embed_dim: int = 128
    dropout: float = 0.0
    frozen: list[str] = field(default_factory=list)
    loss: Literal["infonce", "siglip"] = "infonce"
    zero_shot_templates: list[str] = field(default_factory=lambda: ["{}"])


@dataclass
class ExperimentConfig:
    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        modalities = list(self.model.encoders)
        for modality, enc in self.model.encoders.items():
            if encoder_modality(enc.name) != modality:
                raise ConfigError(
                    f"model.encoders.{modality}: encoder {enc.name!r} reads {encoder_modality(enc.name)!r}, "
                    f"not {modality!r}"
                )
        if self.model.task == "classify" and len(modalities) != 1:
            raise ConfigError(f"model.encoders: task 'classify' takes exactly one encoder, got {modalities}")
        if self.model.task == "contrastive" and len(modalities) < 2:
            raise ConfigError(f"model.encoders: task 'contrastive' needs two or more encoders, got {modalities}")
        if self.model.task == "vqa" and sorted(modalities) != ["image", "text"]:
            raise ConfigError(f"model.encoders: task 'vqa' takes an image and a text encoder, got {modalities}")


def load_experiment(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Validate an experiment YAML (plus ``key=value`` overrides) into an :class:`ExperimentConfig`."""
    return load_config(ExperimentConfig, path, overrides)


# ---------------------------------------------------------------------------- data


class SampleFeatures:
    """Per-sample transform: images → normalised tensors, waveforms → log-mel [n_mels, frames]."""

    def __init__(self, cfg: DataConfig, train: bool) -> None:
        self.sample_rate = cfg.sample_rate
        self.modalities = SampleTransform({
            "image": ImageTransform(cfg.image_size, channels=cfg.image_channels, train=train and cfg.augment,
                                    flip=cfg.flip),
            "audio": LogMel(sample_rate=cfg.sample_rate, n_mels=cfg.n_mels),
        })

    def __call__(self, sample: Sample) -> Sample:
        if "audio" in sample and sample.get("sample_rate", self.sample_rate) != self.sample_rate:
            raise DataError(
                f"{sample.get('path', 'audio')}: sample rate {sample['sample_rate']} Hz, "
                f"the experiment expects data.sample_rate={self.sample_rate}"
            )
        with torch.no_grad():
            return self.modalities(sample)


def build_datasets(cfg: ExperimentConfig, data_root: str | None = None) -> tuple[Dataset, Dataset, list[str]]:
    """(train, eval, class names) with transforms attached; captions added for contrastive tasks."""
    data = cfg.data
    root = data_root if data_root is not None else data.root

    def split(name: str, train: bool) -> Dataset:
        options = data.options if train else data.options | data.eval_options
        return build_dataset(data.name, root=root, split=name, transform=SampleFeatures(data, train),
                             on_error=data.on_error, **options)

    train, evaluation = split(data.train_split, True), split(data.eval_split, False)
    classes = list(data.class_names or train.classes)
    if len(classes) != len(train.classes):
        raise ConfigError(f"data.class_names has {len(classes)} names, dataset {data.name!r} has {len(train.classes)} classes")
    if cfg.model.task == "contrastive" and "text" in cfg.model.encoders and "text" not in train.modalities:
        if not data.caption_templates:
            raise ConfigError(f"data.caption_templates: dataset {data.name!r} has no text; give templates to caption it")
        train = CaptionedDataset(train, data.caption_templates, classes)
    return train, evaluation, classes


def build_tokenizer(cfg: ExperimentConfig, train: Dataset, run_dir: Path | None) -> SubwordTokenizer | None:
    """The text tokenizer: MiniLM's WordPiece, or a BPE trained on the training captions (saved to the run)."""
    if "text" not in cfg.model.encoders:
        return None
    if cfg.data.tokenizer == "minilm":
        return WordPieceTokenizer.from_minilm()
    saved = run_dir / "tokenizer.json" if run_dir is not None else None
    if saved is not None and saved.is_file():
        return BPETokenizer.load(saved)
    if isinstance(train, CaptionedDataset):
        corpus = train.captions()
    elif callable(getattr(train, "texts", None)):  # datasets with their own text, e.g. VQA questions
        corpus = train.texts()
    else:
        raise ConfigError("a BPE tokenizer is trained on captions: use a captioned dataset or data.tokenizer=minilm")
    tokenizer = BPETokenizer.train(corpus, vocab_size=cfg.data.vocab_size, min_frequency=1)
    if saved is not None and distributed.is_main():  # under torchrun every rank trains the same merges
        temporary = saved.with_suffix(".json.tmp")
        tokenizer.save(temporary)
        os.replace(temporary, saved)  # atomic: another rank never reads half a file
    return tokenizer


# ---------------------------------------------------------------------------- model


def _encoder(modality: str, enc: EncoderConfig, cfg: ExperimentConfig, tokenizer: SubwordTokenizer | None) -> nn.Module:
    implied: dict[str, Any] = {}
    if modality == "image":
        implied = {"in_channels": cfg.data.image_channels, "image_size": cfg.data.image_size}
    elif modality == "audio":
        implied = {"n_mels": cfg.data.n_mels}
    elif modality == "text" and enc.name != "minilm":
        implied = {"vocab_size": tokenizer.vocab_size, "context_length": cfg.data.context_length}
    return build_encoder(enc.name, enc.size, **{**implied, **enc.options})


def build_model(cfg: ExperimentConfig, num_classes: int, tokenizer: SubwordTokenizer | None) -> nn.Module:
    encoders = {m: _encoder(m, e, cfg, tokenizer) for m, e in cfg.model.encoders.items()}
    if cfg.model.task == "classify":
        (modality, encoder), = encoders.items()
        return Classifier(encoder, num_classes, modality, dropout=cfg.model.dropout)
    if cfg.model.task == "vqa":
        shape = (cfg.data.image_channels, cfg.data.image_size, cfg.data.image_size)
        return VQAModel.build(encoders["image"], encoders["text"], cfg.model.fusion, num_classes, shape,
                              **cfg.model.fusion_options)
    siglip = cfg.model.loss == "siglip"
    return ContrastiveModel(encoders, cfg.model.embed_dim, frozen=cfg.model.frozen,
                            bias=-10.0 if siglip else None, loss=SigmoidLoss() if siglip else None)


# ---------------------------------------------------------------------------- evaluation


def evaluate(model: nn.Module, cfg: ExperimentConfig, dataset: Dataset, classes: list[str],
             tokenizer: SubwordTokenizer | None, batch_size: int = 256) -> dict[str, float]:
    """Accuracy (classify); zero-shot top-1/top-5 from class-name prompts (contrastive, labelled data); or
    Recall@1/5/10 both ways (contrastive on a dataset without classes, e.g. COCO captions)."""
    # The training precision: a run evaluated later (`chorus eval`) scores exactly as during training.
    device = next(model.parameters()).device
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16"):
        return _evaluate(model, cfg, dataset, classes, tokenizer, batch_size)


def _evaluate(model: nn.Module, cfg: ExperimentConfig, dataset: Dataset, classes: list[str],
              tokenizer: SubwordTokenizer | None, batch_size: int) -> dict[str, float]:
    if isinstance(model, VQAModel):
        return vqa_accuracy(model, DataLoader(dataset, batch_size, collate_fn=Collate(tokenizer, cfg.data.context_length)))
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=Collate())
    if isinstance(model, Classifier):
        correct = total = 0
        device = next(model.parameters()).device
        with evaluating(model), torch.no_grad():
            for batch in loader:
                x, mask = batch[model.modality].to(device), batch.get(f"{model.modality}_mask")
                pred = model.logits(x, None if mask is None else mask.to(device)).argmax(-1).cpu()
                correct += int((pred == batch["label"]).sum())
                total += len(pred)
        return {"accuracy": correct / max(total, 1), "n": total}
    if tokenizer is None or "text" not in model.encoders:
        return {}
    query = next(m for m in model.encoders if m != "text")
    context = cfg.data.context_length
    if not classes:
        scores = dataset_retrieval(model, dataset, lambda t: tokenizer(t, context), query, batch_size=batch_size)
        return scores["metrics"] | {"n": scores["n"]}
    classifier = build_zero_shot_classifier(model, lambda t: tokenizer(t, context), classes,
                                            cfg.model.zero_shot_templates)
    scores = zero_shot_accuracy(model, loader, classifier, modality=query)
    return {f"zero_shot_{k}": v for k, v in scores.items()} | {"n": len(dataset)}


# ---------------------------------------------------------------------------- entry points


def train_experiment(cfg: ExperimentConfig, run_dir: str | os.PathLike, *, resume: bool = False,
                     data_root: str | None = None) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (resuming from its last checkpoint if asked); return final metrics."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    distributed.init_distributed()  # under torchrun: ranks known before anything is written
    seed_everything(cfg.train.seed)
    train, evaluation, classes = build_datasets(cfg, data_root)
    tokenizer = build_tokenizer(cfg, train, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    if distributed.is_main():
        save_config(cfg, run_dir / "experiment.yaml")
    collate = Collate(tokenizer, cfg.data.context_length)
    trainer = Trainer(model, train, cfg.train, run_dir, collate_fn=collate, resume=resume,
                      eval_fn=lambda m: evaluate(m, cfg, evaluation, classes, tokenizer))
    metrics = trainer.fit()
    if distributed.is_main():  # the ranks hold identical weights after DDP training
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(run_dir / "model.safetensors"))
        (run_dir / "classes.json").write_text(json.dumps(classes) + "\n")
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


def load_run(run_dir: str | os.PathLike, data_root: str | None = None, split: str | None = None):
    """Rebuild (config, model with trained weights, eval dataset, class names, tokenizer) from a run folder."""
    run_dir = Path(run_dir)
    for needed in ("experiment.yaml", "model.safetensors"):
        if not (run_dir / needed).is_file():
            raise ConfigError(f"{run_dir} is not a finished Chorus run: {needed} is missing")
    cfg = load_experiment(run_dir / "experiment.yaml")
    if split is not None:
        cfg.data.eval_split = split
    train, evaluation, classes = build_datasets(cfg, data_root)
    tokenizer = build_tokenizer(cfg, train, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    return cfg, model, evaluation, classes, tokenizer


def load_trained(run_dir: str | os.PathLike) -> tuple[ExperimentConfig, nn.Module, list[str], SubwordTokenizer | None]:
    """(config, model with trained weights in eval mode, class names, tokenizer) from the run folder alone.

    Needs no dataset: class names come from ``classes.json`` and a BPE
    tokenizer from ``tokenizer.json`` (what predicting from a moved run needs).
    """
    run_dir = Path(run_dir)
    for needed in ("experiment.yaml", "model.safetensors", "classes.json"):
        if not (run_dir / needed).is_file():
            raise ConfigError(f"{run_dir} is not a finished Chorus run: {needed} is missing")
    cfg = load_experiment(run_dir / "experiment.yaml")
    classes = json.loads((run_dir / "classes.json").read_text())
    tokenizer = None
    if "text" in cfg.model.encoders:
        tokenizer = WordPieceTokenizer.from_minilm() if cfg.data.tokenizer == "minilm" else BPETokenizer.load(run_dir / "tokenizer.json")
    model = build_model(cfg, len(classes), tokenizer)
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    return cfg, model.eval(), classes, tokenizer


def evaluate_run(run_dir: str | os.PathLike, data_root: str | None = None, split: str | None = None) -> dict[str, Any]:
    """``chorus eval``: rebuild a run and evaluate it on its eval split (or ``split``)."""
    cfg, model, evaluation, classes, tokenizer = load_run(run_dir, data_root, split)
    return {"run_dir": str(run_dir), "dataset": cfg.data.name, "split": cfg.data.eval_split} | evaluate(
        model, cfg, evaluation, classes, tokenizer
    )
