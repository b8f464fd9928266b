"""Config-driven experiments: what ``chorus train CONFIG`` and ``chorus eval RUN_DIR`` run.

An experiment YAML (see ``configs/``) names a dataset, the encoders and a task,
and carries a :class:`~chorus.train.TrainConfig`. Two tasks cover the common
cases with one code path each:

- ``classify``: one encoder + linear head, cross-entropy (the unimodal baseline);
- ``contrastive``: CLIP-style towers trained on captions written from the class
  names (a labelled dataset) or on real captions (COCO), evaluated zero-shot.

The run directory receives ``experiment.yaml`` (the full validated config),
``tokenizer.json`` (when a BPE tokenizer was trained), ``model.safetensors``,
``metrics.json`` and the Trainer's ``metrics.jsonl`` / checkpoints, so
``chorus eval RUN_DIR`` can rebuild everything from the folder alone.

Pretrained CLIP checkpoints become run folders too (``chorus import``,
:mod:`chorus.run_import`): their ``experiment.yaml`` has no dataset
(``data.name: null``), ``data.tokenizer: clip`` reads the checkpoint's BPE
from the folder, and ``data.image_*`` carry its preprocessing. ``model.init_from:
RUN_DIR`` starts training from any such run: its architecture, preprocessing,
tokenizer and weights are taken over, and ``model.frozen`` locks towers (LiT).
"""

from __future__ import annotations

import json
import os
import shutil
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
from chorus.data.text import ClipTokenizer, SubwordTokenizer
from chorus.encoders import build_encoder, encoder_modality
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating
from chorus.train import Trainer, TrainConfig, distributed, seed_everything


@dataclass
class DataConfig:
    """Which dataset, and how each modality is turned into tensors."""

    name: str | None = None  # None: a run with no dataset of its own (an imported checkpoint)
    root: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    options: dict[str, Any] = field(default_factory=dict)
    eval_options: dict[str, Any] = field(default_factory=dict)  # override ``options`` for the eval split
    on_error: Literal["raise", "skip"] = "raise"
    image_size: int = 32
    image_channels: int = 3
    image_resize: int | None = None  # shorter side before the centre crop (default: image_size)
    image_crop_offset: Literal["floor", "round"] = "floor"  # round: OpenCLIP's (torchvision's) centre crop
    image_mean: list[float] | None = None  # per-channel normalisation (default 0.5: pixels to [-1, 1])
    image_std: list[float] | None = None
    augment: bool = True
    flip: bool = True
    sample_rate: int = 8000
    n_mels: int = 40
    tokenizer: Literal["bpe", "minilm", "clip"] = "bpe"  # clip: the run folder's pretrained CLIP BPE
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
    task: Literal["classify", "contrastive"]
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)  # may be omitted with init_from
    embed_dim: int = 128
    dropout: float = 0.0
    frozen: list[str] = field(default_factory=list)
    loss: Literal["infonce", "siglip"] = "infonce"
    zero_shot_templates: list[str] = field(default_factory=lambda: ["{}"])
    init_from: str | None = None  # a run folder to start from (architecture, preprocessing, tokenizer, weights)


@dataclass
class ExperimentConfig:
    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def __post_init__(self) -> None:
        if not self.model.encoders and self.model.init_from is None:
            raise ConfigError("model.encoders: name the encoders, or start from a run with model.init_from")
        if not self.model.encoders:
            return  # taken from the init_from run when training starts
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
                                    flip=cfg.flip, resize=cfg.image_resize, crop_offset=cfg.image_crop_offset,
                                    mean=0.5 if cfg.image_mean is None else cfg.image_mean,
                                    std=0.5 if cfg.image_std is None else cfg.image_std),
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
    data, dataset = cfg.data, cfg.data.name
    if dataset is None:
        raise ConfigError(f"experiment {cfg.name!r} names no dataset (data.name); give one to train or evaluate on")
    root = data_root if data_root is not None else data.root

    def split(name: str, train: bool) -> Dataset:
        options = data.options if train else data.options | data.eval_options
        return build_dataset(dataset, root=root, split=name, transform=SampleFeatures(data, train),
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


def build_tokenizer(cfg: ExperimentConfig, train: Dataset | None, run_dir: Path | None) -> SubwordTokenizer | None:
    """The text tokenizer: MiniLM's WordPiece, a pretrained CLIP BPE (from the run folder), or a BPE trained on
    the training captions (saved to the run)."""
    if "text" not in cfg.model.encoders:
        return None
    if cfg.data.tokenizer == "minilm":
        return WordPieceTokenizer.from_minilm()
    if cfg.data.tokenizer == "clip":
        if run_dir is None:
            raise ConfigError("data.tokenizer=clip reads a pretrained CLIP tokenizer from a run folder (`chorus import`)")
        return ClipTokenizer.load(run_dir)
    saved = run_dir / "tokenizer.json" if run_dir is not None else None
    if saved is not None and saved.is_file():
        return BPETokenizer.load(saved)
    if not isinstance(train, CaptionedDataset):
        raise ConfigError("a BPE tokenizer is trained on captions: use a captioned dataset or data.tokenizer=minilm")
    tokenizer = BPETokenizer.train(train.captions(), vocab_size=cfg.data.vocab_size, min_frequency=1)
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
    siglip = cfg.model.loss == "siglip"
    return ContrastiveModel(encoders, cfg.model.embed_dim, frozen=cfg.model.frozen,
                            bias=-10.0 if siglip else None, loss=SigmoidLoss() if siglip else None)


# ---------------------------------------------------------------------------- starting from a run

# What a run fixes about its inputs: a model started from it must see them exactly so.
_INHERITED_DATA = ("image_size", "image_channels", "image_resize", "image_crop_offset", "image_mean", "image_std",
                   "sample_rate", "n_mels", "tokenizer", "vocab_size", "context_length")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def inherit_run(cfg: ExperimentConfig, run_dir: Path) -> Path | None:
    """For ``model.init_from``: copy the base run's architecture, input preprocessing and tokenizer files into
    ``cfg`` / ``run_dir`` and return its weights file (None without ``init_from``).

    ``model.encoders`` may be omitted (or must equal the base run's); ``embed_dim`` and ``loss`` and the data
    fields in ``_INHERITED_DATA`` are the base run's, because the weights only mean something with them.
    """
    if cfg.model.init_from is None:
        return None
    base_dir = Path(cfg.model.init_from)
    for needed in ("experiment.yaml", "model.safetensors"):
        if not (base_dir / needed).is_file():
            raise ConfigError(f"model.init_from: {base_dir} is not a finished Chorus run ({needed} is missing)")
    base = load_experiment(base_dir / "experiment.yaml")
    if base.model.task != cfg.model.task:
        raise ConfigError(f"model.init_from: {base_dir} is a {base.model.task!r} run, this is {cfg.model.task!r}")
    if cfg.model.encoders and cfg.model.encoders != base.model.encoders:
        raise ConfigError(f"model.encoders differ from those of model.init_from run {base_dir}; omit them to use its")
    cfg.model.encoders, cfg.model.embed_dim, cfg.model.loss = base.model.encoders, base.model.embed_dim, base.model.loss
    for key in _INHERITED_DATA:
        setattr(cfg.data, key, getattr(base.data, key))
    for name in _TOKENIZER_FILES:
        if (base_dir / name).is_file() and base_dir.resolve() != run_dir.resolve():
            temporary = run_dir / f".{name}.{os.getpid()}"  # every rank copies the same bytes; replace is atomic
            shutil.copyfile(base_dir / name, temporary)
            os.replace(temporary, run_dir / name)
    return base_dir / "model.safetensors"


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
    init_weights = inherit_run(cfg, run_dir)
    seed_everything(cfg.train.seed)
    train, evaluation, classes = build_datasets(cfg, data_root)
    tokenizer = build_tokenizer(cfg, train, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    if init_weights is not None:
        try:
            model.load_state_dict(load_file(str(init_weights)))
        except RuntimeError as err:  # e.g. a classifier head over another number of classes
            raise ConfigError(f"model.init_from: weights of {init_weights.parent} do not fit this model: {err}") from err
    if distributed.is_main():
        save_config(cfg, run_dir / "experiment.yaml")
    collate = Collate(tokenizer, cfg.data.context_length)
    trainer = Trainer(model, train, cfg.train, run_dir, collate_fn=collate, resume=resume,
                      eval_fn=lambda m: evaluate(m, cfg, evaluation, classes, tokenizer))
    metrics = trainer.fit()
    if distributed.is_main():  # the ranks hold identical weights after DDP training
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(run_dir / "model.safetensors"))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    return metrics


def load_run(run_dir: str | os.PathLike, data_root: str | None = None, split: str | None = None):
    """Rebuild (config, model with trained weights, eval dataset, class names, tokenizer) from a run folder.

    A run with no dataset (``data.name: null``, an imported checkpoint) loads from the folder alone: the eval
    dataset is None and the class names are ``data.class_names`` (or none).
    """
    run_dir = Path(run_dir)
    for needed in ("experiment.yaml", "model.safetensors"):
        if not (run_dir / needed).is_file():
            raise ConfigError(f"{run_dir} is not a finished Chorus run: {needed} is missing")
    cfg = load_experiment(run_dir / "experiment.yaml")
    if split is not None:
        cfg.data.eval_split = split
    if cfg.data.name is None:  # nothing to build: everything is in the folder
        train, evaluation, classes = None, None, list(cfg.data.class_names or [])
    else:
        train, evaluation, classes = build_datasets(cfg, data_root)
    tokenizer = build_tokenizer(cfg, train, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
    return cfg, model, evaluation, classes, tokenizer


def evaluate_run(run_dir: str | os.PathLike, data_root: str | None = None, split: str | None = None) -> dict[str, Any]:
    """``chorus eval``: rebuild a run and evaluate it on its eval split (or ``split``)."""
    cfg, model, evaluation, classes, tokenizer = load_run(run_dir, data_root, split)
    if evaluation is None:
        raise ConfigError(f"{run_dir} has no dataset of its own (an imported checkpoint); evaluate it on one with "
                          "`chorus zeroshot RUN --dataset NAME` or `chorus retrieve RUN --dataset NAME`")
    return {"run_dir": str(run_dir), "dataset": cfg.data.name, "split": cfg.data.eval_split} | evaluate(
        model, cfg, evaluation, classes, tokenizer
    )
