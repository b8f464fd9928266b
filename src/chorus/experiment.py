"""Config-driven experiments: what ``chorus train CONFIG`` and ``chorus eval RUN_DIR`` run.

An experiment YAML (see ``configs/``) names a dataset, the encoders and a task,
and carries a :class:`~chorus.train.TrainConfig`. Four tasks, one code path each:

- ``classify``: one encoder + linear head, cross-entropy (the unimodal baseline);
- ``contrastive``: CLIP-style towers trained on captions written from the class
  names (a labelled dataset) or on real captions (COCO), evaluated zero-shot;
- ``vqa``: an image and a question (``text``) encoder joined by the fusion
  ``model.fusion`` (e.g. ``relation_network``), classifying the answer
  (:class:`~chorus.fusion.vqa.VQAModel`); the BPE tokenizer is trained on the
  dataset's ``texts()``;
- ``fusion``: one encoder per non-text modality joined by the pooled fusion
  ``model.fusion`` (default ``early``) and trained end to end on the label
  (:class:`~chorus.fusion.classifier.FusionClassifier`): a user's rows that join
  an image, a sound and a label, or AV-Digits.

The run directory receives ``experiment.yaml`` (the full validated config, with
the class names filled in from the dataset), ``tokenizer.json`` (when a BPE
tokenizer was trained), ``model.safetensors``, ``metrics.json``, ``data.json``
(the class names as the data wrote them, the split rule, bad rows left out),
``curves.png`` and the Trainer's ``metrics.jsonl`` / checkpoints. Why the class
names go into the config: with them, the weights, the tokenizer and the
preprocessing parameters (image size and channels, sample rate, mel bins,
context length) the folder is everything needed to predict, so :func:`load_run`
never reads the training data and a run copied to a machine without the
datasets still loads, predicts and serves. Only evaluation
(:func:`build_eval_dataset`) needs data.

Pretrained CLIP checkpoints become run folders too (``chorus import``,
:mod:`chorus.run_import`): their ``experiment.yaml`` has no dataset
(``data.name: null``), ``data.tokenizer: clip`` reads the checkpoint's BPE
from the folder, and ``data.image_*`` carry its preprocessing. ``model.init_from:
RUN_DIR`` starts training from any such run: its architecture, preprocessing,
tokenizer and weights are taken over, and ``model.frozen`` locks towers (LiT).
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, Dataset

from chorus.classifier import Classifier
from chorus.config import CONFIG_DIR, load_config, save_config
from chorus.contrastive import ContrastiveModel, SigmoidLoss, build_zero_shot_classifier, zero_shot_accuracy
from chorus.contrastive.retrieval import dataset_retrieval
from chorus.contrastive.zeroshot import topk_below
from chorus.data import (
    BPETokenizer,
    Collate,
    ImageTransform,
    LogMel,
    SampleTransform,
    WordPieceTokenizer,
    build_dataset,
)
from chorus.data.audio import resample
from chorus.data.base import ChorusDataset, Sample
from chorus.data.captions import CaptionedDataset
from chorus.data.registry import USER_DATASETS, canonical_spec
from chorus.data.text import ClipTokenizer, SubwordTokenizer
from chorus.encoders import build_encoder, encoder_modality
from chorus.errors import ConfigError
from chorus.eval.mode import evaluating
from chorus.eval.plots import plot_metrics
from chorus.extras import ENCODER_EXTRAS, require
from chorus.fusion.classifier import FusionClassifier
from chorus.fusion.vqa import VQAModel, vqa_accuracy
from chorus.train import TrainConfig, Trainer, distributed, seed_everything
from chorus.train.checkpoint import latest_checkpoint
from chorus.train.logging import METRICS_FILE, read_metrics
from chorus.train.precision import resolve_precision

logger = logging.getLogger("chorus.experiment")


@dataclass
class DataConfig:
    """Which dataset, and how each modality is turned into tensors.

    A user's own files: ``name: folder`` or ``manifest`` with ``path`` (made absolute when the config is
    loaded, so a saved run finds its data from any directory) and optionally ``columns`` (role → column
    name, see :mod:`chorus.data.userdata`).
    """

    name: str | None = None  # None: a run with no dataset of its own (an imported checkpoint)
    path: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
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
    crop_scale: tuple[float, float] = (0.5, 1.0)  # area range of training's random crops
    sample_rate: int = 8000
    n_mels: int = 40
    tokenizer: Literal["bpe", "minilm", "clip"] = "bpe"  # clip: the run folder's pretrained CLIP BPE
    vocab_size: int = 1000
    context_length: int = 32
    class_names: list[str] | None = None
    caption_templates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if (self.path is not None or self.columns) and self.name not in USER_DATASETS:
            raise ConfigError(
                f"data.path and data.columns are for the {' and '.join(USER_DATASETS)} datasets, not {self.name!r}"
            )
        if self.name in USER_DATASETS:
            if not self.path:
                raise ConfigError(f"data.path: dataset {self.name!r} needs the path of the user's files")
            self.path = str(Path(self.path).expanduser().resolve())

    @property
    def spec(self) -> str:
        """The dataset as commands name it: a registered name, or ``folder:/absolute/path``."""
        return f"{self.name}:{self.path}" if self.path else (self.name or "")

    def same_dataset(self, spec: str) -> bool:
        """Whether a command-line dataset spec names this config's dataset."""
        return canonical_spec(spec) == self.spec

    def dataset_options(self, train: bool) -> dict[str, Any]:
        """Keywords for ``build_dataset(self.name, ...)``: options (+ eval_options), path and columns."""
        options = self.options if train else self.options | self.eval_options
        user = {"path": self.path} | ({"columns": self.columns} if self.columns else {}) if self.path else {}
        return options | user


@dataclass
class EncoderConfig:
    """An encoder by registry name and size; ``options`` override size defaults."""

    name: str
    size: str = "small"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    task: Literal["classify", "contrastive", "vqa", "fusion"]
    encoders: dict[str, EncoderConfig] = field(default_factory=dict)  # may be omitted with init_from
    # tasks vqa and fusion: a registered fusion (chorus.fusion.FUSIONS); default relation_network / early
    fusion: str | None = None
    fusion_options: dict[str, Any] = field(default_factory=dict)
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
        if self.model.task == "fusion" and (len(modalities) < 2 or "text" in modalities):
            raise ConfigError(f"model.encoders: task 'fusion' takes two or more non-text encoders, got {modalities}")
        if self.model.task == "vqa" and sorted(modalities) != ["image", "text"]:
            raise ConfigError(f"model.encoders: task 'vqa' takes an image and a text encoder, got {modalities}")


def load_experiment(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Validate an experiment YAML (plus ``key=value`` overrides) into an :class:`ExperimentConfig`."""
    return load_config(ExperimentConfig, path, overrides)


def find_experiment(name_or_path: str | os.PathLike) -> Path:
    """An experiment YAML given as a path, or a shipped config by name (``coco_clip``, see ``configs/``).

    A path that does not exist is an error naming the shipped config it most likely meant.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{path.name}.yaml"
    if path.name == str(name_or_path) and shipped.is_file():
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    guess = difflib.get_close_matches(path.stem, names, n=1)
    hint = f" (did you mean the shipped config {guess[0]!r}: `chorus train {guess[0]}`?)" if guess else ""
    raise ConfigError(f"config file not found: {path}{hint}; shipped configs: {', '.join(names)}")


def experiment_extras(cfg: ExperimentConfig) -> list[str]:
    """The optional extras an experiment's encoders and tokenizer need (``text`` for MiniLM, ...)."""
    needed = {ENCODER_EXTRAS[e.name] for e in cfg.model.encoders.values() if e.name in ENCODER_EXTRAS}
    if "text" in cfg.model.encoders and cfg.data.tokenizer == "minilm":
        needed.add("text")
    return sorted(needed)


# ---------------------------------------------------------------------------- data


class SampleFeatures:
    """Per-sample transform: images → normalised tensors, waveforms at any rate → resampled to
    ``data.sample_rate`` (polyphase, :func:`chorus.data.audio.resample`) → log-mel [n_mels, frames]."""

    def __init__(self, cfg: DataConfig, train: bool) -> None:
        self.sample_rate = cfg.sample_rate
        self.modalities = SampleTransform(
            {
                "image": ImageTransform(
                    cfg.image_size,
                    channels=cfg.image_channels,
                    train=train and cfg.augment,
                    flip=cfg.flip,
                    scale=cfg.crop_scale,
                    resize=cfg.image_resize,
                    crop_offset=cfg.image_crop_offset,
                    mean=0.5 if cfg.image_mean is None else cfg.image_mean,
                    std=0.5 if cfg.image_std is None else cfg.image_std,
                ),
                "audio": LogMel(sample_rate=cfg.sample_rate, n_mels=cfg.n_mels),
            }
        )

    def __call__(self, sample: Sample) -> Sample:
        if "audio" in sample and sample.get("sample_rate", self.sample_rate) != self.sample_rate:
            wave = resample(sample["audio"], sample["sample_rate"], self.sample_rate)
            sample = sample | {"audio": wave, "sample_rate": self.sample_rate}
        with torch.no_grad():
            return self.modalities(sample)


def build_datasets(
    cfg: ExperimentConfig, data_root: str | None = None
) -> tuple[ChorusDataset | CaptionedDataset, ChorusDataset, list[str]]:
    """(train, eval, class names) with transforms attached; captions added for contrastive tasks."""
    data, dataset = cfg.data, cfg.data.name
    if dataset is None:
        raise ConfigError(f"experiment {cfg.name!r} names no dataset (data.name); give one to train or evaluate on")
    root = data_root if data_root is not None else data.root

    def split(name: str, train: bool) -> ChorusDataset:
        return build_dataset(
            dataset,
            root=root,
            split=name,
            transform=SampleFeatures(data, train),
            on_error=data.on_error,
            **data.dataset_options(train),
        )

    train, evaluation = split(data.train_split, True), split(data.eval_split, False)
    classes = list(data.class_names or train.classes)
    if len(classes) != len(train.classes):
        raise ConfigError(
            f"data.class_names has {len(classes)} names, dataset {data.name!r} has {len(train.classes)} classes"
        )
    if cfg.model.task == "contrastive" and "text" in cfg.model.encoders and "text" not in train.modalities:
        if not data.caption_templates:
            raise ConfigError(
                f"data.caption_templates: dataset {data.name!r} has no text; give templates to caption it"
            )
        return CaptionedDataset(train, data.caption_templates, classes), evaluation, classes
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
            raise ConfigError(
                "data.tokenizer=clip reads a pretrained CLIP tokenizer from a run folder (`chorus import`)"
            )
        return ClipTokenizer.load(run_dir)
    saved = run_dir / "tokenizer.json" if run_dir is not None else None
    if saved is not None and saved.is_file():
        return BPETokenizer.load(saved)
    # CaptionedDataset, or a user's captions (chorus.data.userdata)
    if train is not None and hasattr(train, "captions"):
        corpus = train.captions()
    elif callable(texts := getattr(train, "texts", None)):  # datasets with their own text, e.g. VQA questions
        corpus = texts()
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
        assert tokenizer is not None  # build_tokenizer makes one whenever there is a text encoder
        implied = {"vocab_size": tokenizer.vocab_size, "context_length": cfg.data.context_length}
    return build_encoder(enc.name, enc.size, **{**implied, **enc.options})


def build_model(cfg: ExperimentConfig, num_classes: int, tokenizer: SubwordTokenizer | None) -> nn.Module:
    encoders = {m: _encoder(m, e, cfg, tokenizer) for m, e in cfg.model.encoders.items()}
    if cfg.model.task == "classify":
        ((modality, encoder),) = encoders.items()
        return Classifier(encoder, num_classes, modality, dropout=cfg.model.dropout)
    if cfg.model.task == "vqa":
        shape = (cfg.data.image_channels, cfg.data.image_size, cfg.data.image_size)
        return VQAModel.build(
            encoders["image"],
            encoders["text"],
            cfg.model.fusion or "relation_network",
            num_classes,
            shape,
            **cfg.model.fusion_options,
        )
    if cfg.model.task == "fusion":
        return FusionClassifier.build(encoders, cfg.model.fusion or "early", num_classes, **cfg.model.fusion_options)
    siglip = cfg.model.loss == "siglip"
    return ContrastiveModel(
        encoders,
        cfg.model.embed_dim,
        frozen=cfg.model.frozen,
        bias=-10.0 if siglip else None,
        loss=SigmoidLoss() if siglip else None,
    )


# ---------------------------------------------------------------------------- starting from a run

# What a run fixes about its inputs: a model started from it must see them exactly so.
_INHERITED_DATA = (
    "image_size",
    "image_channels",
    "image_resize",
    "image_crop_offset",
    "image_mean",
    "image_std",
    "sample_rate",
    "n_mels",
    "tokenizer",
    "vocab_size",
    "context_length",
)
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


def evaluate(
    model: nn.Module,
    cfg: ExperimentConfig,
    dataset: ChorusDataset,
    classes: list[str],
    tokenizer: SubwordTokenizer | None,
    batch_size: int = 256,
) -> dict[str, float]:
    """Accuracy (classify); zero-shot top-1/top-5 from class-name prompts (contrastive, labelled data); or
    Recall@1/5/10 both ways (contrastive on a dataset without classes, e.g. COCO captions)."""
    # The training precision: a run evaluated later (`chorus eval`) on the same hardware scores as during training.
    device = next(model.parameters()).device
    precision, _ = resolve_precision(cfg.train.precision, device, warn=False)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        return _evaluate(model, cfg, dataset, classes, tokenizer, batch_size)


def _evaluate(
    model: nn.Module,
    cfg: ExperimentConfig,
    dataset: ChorusDataset,
    classes: list[str],
    tokenizer: SubwordTokenizer | None,
    batch_size: int,
) -> dict[str, float]:
    if isinstance(model, VQAModel):
        return vqa_accuracy(
            model, DataLoader(dataset, batch_size, collate_fn=Collate(tokenizer, cfg.data.context_length))
        )
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=Collate())
    if isinstance(model, (Classifier, FusionClassifier)):
        correct = total = 0
        device = next(model.parameters()).device
        with evaluating(model), torch.no_grad():
            for batch in loader:
                inputs = {k: v.to(device) for k, v in batch.items() if k != "label" and isinstance(v, torch.Tensor)}
                pred = model(inputs)["logits"].argmax(-1).cpu()
                correct += int((pred == batch["label"]).sum())
                total += len(pred)
        return {"accuracy": correct / max(total, 1), "n": total}
    assert isinstance(model, ContrastiveModel)  # the one task left
    if tokenizer is None or "text" not in model.encoders:
        return {}
    query = next(m for m in model.encoders if m != "text")
    context = cfg.data.context_length
    if not classes:
        scores = dataset_retrieval(model, dataset, lambda t: tokenizer(t, context), query, batch_size=batch_size)
        return scores["metrics"] | {"n": scores["n"]}
    classifier = build_zero_shot_classifier(
        model, lambda t: tokenizer(t, context), classes, cfg.model.zero_shot_templates
    )
    scores = zero_shot_accuracy(model, loader, classifier, modality=query, ks=topk_below(len(classes)))
    return {f"zero_shot_{k}": v for k, v in scores.items()} | {"n": len(dataset)}


# ---------------------------------------------------------------------------- entry points


RUN_FILES = ("experiment.yaml", "model.safetensors", METRICS_FILE, "checkpoints")
"""Any of these in a folder means it already holds a run (finished or not)."""


def holds_run(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` already holds a (finished or unfinished) run."""
    return any((Path(run_dir) / name).exists() for name in RUN_FILES)


def prepare_run_dir(run_dir: str | os.PathLike, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Check (and with ``overwrite``, empty) a run folder before training writes into it.

    Why: training into a folder that holds another run would mix two runs' metrics and weights.
    So an existing run is continued only with ``resume`` (and only if it has a checkpoint: a run
    without one would silently restart from step 0) and replaced only with ``overwrite``.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ConfigError("--resume continues a run and --overwrite replaces it: give one of them")
    if holds_run(run_dir) and not resume and not overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run: --resume continues it, --overwrite replaces it, "
            f"or choose another --run-dir"
        )
    if resume and holds_run(run_dir) and latest_checkpoint(run_dir) is None:
        raise ConfigError(
            f"{run_dir} has no checkpoint to resume from (set train.checkpoint_every to write them); "
            f"--overwrite trains it again from scratch"
        )
    if overwrite and holds_run(run_dir) and distributed.is_main():
        shutil.rmtree(run_dir)
    distributed.barrier()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def train_experiment(
    cfg: ExperimentConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    data_root: str | None = None,
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir`` (resuming from its last checkpoint if asked); return final metrics.

    ``run_dir`` must not hold another run unless ``resume`` or ``overwrite`` (see :func:`prepare_run_dir`).
    """
    require(experiment_extras(cfg), f"experiment {cfg.name!r}")  # before any data is read
    distributed.init_distributed()  # under torchrun: ranks known before anything is written
    run_dir = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    init_weights = inherit_run(cfg, run_dir)
    seed_everything(cfg.train.seed)
    train, evaluation, classes = build_datasets(cfg, data_root)
    cfg = replace(cfg, data=replace(cfg.data, class_names=list(classes)))  # the run predicts without data
    tokenizer = build_tokenizer(cfg, train, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    if init_weights is not None:
        try:
            model.load_state_dict(load_file(str(init_weights)))
        except RuntimeError as err:  # e.g. a classifier head over another number of classes
            raise ConfigError(
                f"model.init_from: weights of {init_weights.parent} do not fit this model: {err}"
            ) from err
    if distributed.is_main():
        save_config(cfg, run_dir / "experiment.yaml")
    collate = Collate(tokenizer, cfg.data.context_length)
    trainer = Trainer(
        model,
        train,
        cfg.train,
        run_dir,
        collate_fn=collate,
        resume=resume,
        eval_fn=lambda m: evaluate(m, cfg, evaluation, classes, tokenizer),
    )
    metrics = trainer.fit()
    if distributed.is_main():  # the ranks hold identical weights after DDP training
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(run_dir / "model.safetensors"))
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        write_data_record(run_dir / "data.json", cfg.data, train, evaluation, classes)
        if (run_dir / METRICS_FILE).is_file():
            plot_metrics(read_metrics(run_dir / METRICS_FILE), run_dir / "curves.png")
    return metrics


def write_data_record(
    path: Path, data: DataConfig, train: ChorusDataset | CaptionedDataset, evaluation: ChorusDataset, classes: list[str]
) -> None:
    """``data.json``: the dataset, class names, split sizes and rule, and every bad row or item left out.

    Bad rows of a user's files are found once over all rows (both splits list the same ones); decode
    failures under ``on_error=skip`` are counted per split each time an item is read. Both are also logged
    as a warning here, at the end of training, so nothing is dropped unnoticed.
    """
    base = train.dataset if isinstance(train, CaptionedDataset) else train
    problems = [str(p) for p in getattr(base, "problems", [])]
    skips = {"train": getattr(base, "skipped", 0), "eval": getattr(evaluation, "skipped", 0)}
    record: dict[str, Any] = {
        "dataset": data.spec,
        "classes": classes,
        "splits": {data.train_split: len(train), data.eval_split: len(evaluation)},
        "bad_rows_left_out": problems,
        "reads_skipped": skips,
    }
    if hasattr(base, "split_record"):
        record["split_rule"] = base.split_record
    if problems or any(skips.values()):
        logger.warning(
            "%s: %d bad row(s) left out, reads skipped while decoding: %s%s (see %s)",
            data.spec,
            len(problems),
            skips,
            f"; first: {problems[0]}" if problems else "",
            path,
        )
    path.write_text(json.dumps(record, indent=1) + "\n")


def load_run(run_dir: str | os.PathLike) -> tuple[ExperimentConfig, nn.Module, list[str], SubwordTokenizer | None]:
    """(config, model with trained weights, class names, tokenizer) from a run folder alone — no dataset is read.

    An imported checkpoint (``data.name: null``) loads the same way: everything is in the folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist")
    for needed in ("experiment.yaml", "model.safetensors"):
        if not (run_dir / needed).is_file():
            raise ConfigError(f"{run_dir} is not a finished Chorus run: {needed} is missing")
    cfg = load_experiment(run_dir / "experiment.yaml")
    require(experiment_extras(cfg), f"run {run_dir}")
    if "text" in cfg.model.encoders and cfg.data.tokenizer == "bpe" and not (run_dir / "tokenizer.json").is_file():
        raise ConfigError(f"{run_dir} is not a finished Chorus run: tokenizer.json is missing")
    if cfg.data.class_names is None:
        raise ConfigError(
            f"{run_dir}/experiment.yaml has no data.class_names (a run saved by an older Chorus): "
            f"add them in the training set's order ([] for a dataset without classes)"
        )
    classes = list(cfg.data.class_names)
    tokenizer = build_tokenizer(cfg, None, run_dir)
    model = build_model(cfg, len(classes), tokenizer)
    try:
        weights = load_file(str(run_dir / "model.safetensors"))
    except Exception as err:  # safetensors raises its own error type for a truncated or foreign file
        raise ConfigError(f"{run_dir}/model.safetensors cannot be read: {err}") from None
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:  # wrong shapes or keys: the weights are not this config's
        first = str(err).strip().splitlines()[-1].strip()
        raise ConfigError(f"{run_dir}/model.safetensors does not fit its experiment.yaml: {first}") from None
    return cfg, model, classes, tokenizer


def build_eval_dataset(cfg: ExperimentConfig, data_root: str | None = None, split: str | None = None) -> ChorusDataset:
    """A run's evaluation split (or ``split``) with its eval-mode transforms: what ``chorus eval`` scores."""
    data = cfg.data
    root = data_root if data_root is not None else data.root
    if data.name is None:
        raise ConfigError(
            "this run has no dataset of its own (an imported checkpoint); evaluate it on one with "
            "`chorus zeroshot RUN --dataset NAME` or `chorus retrieve RUN --dataset NAME`"
        )
    return build_dataset(
        data.name,
        root=root,
        split=split or data.eval_split,
        transform=SampleFeatures(data, train=False),
        on_error=data.on_error,
        **data.dataset_options(train=False),
    )


def evaluate_run(run_dir: str | os.PathLike, data_root: str | None = None, split: str | None = None) -> dict[str, Any]:
    """``chorus eval``: rebuild a run and evaluate it on its eval split (or ``split``)."""
    cfg, model, classes, tokenizer = load_run(run_dir)
    evaluation = build_eval_dataset(cfg, data_root, split)
    return {"run_dir": str(run_dir), "dataset": cfg.data.spec, "split": split or cfg.data.eval_split} | evaluate(
        model, cfg, evaluation, classes, tokenizer
    )
