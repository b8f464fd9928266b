"""A trained run loaded once for serving: model in eval mode + the exact preprocessing it was trained with.

Why a wrapper: the HTTP layer must turn raw uploads (a decoded image, a
waveform, a string) into the tensors the run's encoders expect. The run folder
already says how (``experiment.yaml``: image size and channels, sample rate,
mel bins, tokenizer, context length, class names), so :class:`LoadedRun` rebuilds that
preprocessing from the config with :func:`chorus.experiment.load_run` and the
same per-sample transform training used in eval mode. No dataset is read: a
run folder copied to a machine without the data serves the same answers. Requests then only read
the model: inference runs under ``torch.inference_mode`` on a model in eval
mode, which mutates no module state, so one instance serves concurrent requests.

Zero-shot classifiers (one text embedding per class, from the run's prompt
templates) are cached per class list because the page asks the same question
over and over.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from chorus.ask import Answer, VQAPredictor
from chorus.classifier import Classifier
from chorus.contrastive import ContrastiveModel, build_zero_shot_classifier
from chorus.data.audio import resample
from chorus.encoders.base import out_dim
from chorus.errors import ConfigError, DataError
from chorus.experiment import SampleFeatures, load_run
from chorus.fusion.classifier import FusionClassifier

Features = dict[str, Tensor]


def _device(explicit: str | None) -> torch.device:
    if explicit:
        return torch.device(explicit)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LoadedRun:
    """One run folder → model, tokenizer, class names and ``features(modality, raw)`` preprocessing."""

    def __init__(
        self, run_dir: str | os.PathLike[str], device: str | None = None, max_cached_classifiers: int = 32
    ) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.name = self.run_dir.name
        self.cfg, model, self.classes, self.tokenizer = load_run(self.run_dir)
        self.device = _device(device)
        self.model = model.to(self.device).eval()
        self.model.requires_grad_(False)
        self.transform = SampleFeatures(self.cfg.data, train=False)  # training's eval-mode preprocessing
        self.vqa = (
            VQAPredictor(self.cfg, self.model, self.classes, self.tokenizer, self.device)
            if self.task == "vqa"
            else None
        )
        self._classifiers: OrderedDict[tuple[str, ...], Tensor] = OrderedDict()
        self._max_cached = max_cached_classifiers
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ description

    @property
    def task(self) -> str:
        return self.cfg.model.task

    @property
    def modalities(self) -> list[str]:
        return list(self.cfg.model.encoders)

    @property
    def sample_rate(self) -> int:
        return self.cfg.data.sample_rate

    @property
    def embed_dim(self) -> int | None:
        if isinstance(self.model, ContrastiveModel):
            return self.model.embed_dim
        if isinstance(self.model, Classifier):
            return out_dim(self.model.encoder)
        return None  # VQA and fusion runs: no one embedding width

    def can_zero_shot(self, modality: str) -> bool:
        """Contrastive runs with a text tower rank any class names; classifiers rank their own classes."""
        if isinstance(self.model, Classifier):
            return modality == self.model.modality
        if isinstance(self.model, FusionClassifier):  # one modality alone: the fusion treats the others as missing
            return modality in self.modalities
        if self.vqa is not None:
            return False
        return "text" in self.modalities and modality in self.modalities and modality != "text"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "dataset": self.cfg.data.name,
            "modalities": self.modalities,
            "classes": self.classes,
            "embed_dim": self.embed_dim,
            "zero_shot": [m for m in self.modalities if self.can_zero_shot(m)],
        }

    def require(self, modality: str) -> None:
        if modality not in self.modalities:
            raise ConfigError(f"run {self.name!r} has no {modality} encoder; it reads {', '.join(self.modalities)}")

    # ------------------------------------------------------------------ preprocessing

    def features(self, modality: str, raw: Image.Image | tuple[Tensor, int] | str) -> Features:
        """Raw input → batch of one: ``{modality: [1, ...], f"{modality}_mask": [1, T]}`` on the model's device."""
        self.require(modality)
        if modality == "image":
            x = self.transform({"image": raw})["image"].unsqueeze(0)
            return {"image": x.to(self.device)}
        if modality == "audio":
            assert isinstance(raw, tuple), "audio comes as (waveform, sample rate)"
            wave, sr = raw
            wave = resample(wave, sr, self.sample_rate)
            mel = self.transform({"audio": wave, "sample_rate": self.sample_rate})["audio"].unsqueeze(0)
            mask = torch.ones(1, mel.shape[-1], dtype=torch.bool)
            return {"audio": mel.to(self.device), "audio_mask": mask.to(self.device)}
        assert isinstance(raw, str) and self.tokenizer is not None  # a run with a text encoder has a tokenizer
        ids, mask = self.tokenizer([raw], self.cfg.data.context_length)
        return {"text": ids.to(self.device), "text_mask": mask.to(self.device)}

    # ------------------------------------------------------------------ inference

    def ask(self, image: Image.Image, question: str) -> Answer:
        """Answer a question about an image (runs of task ``vqa``)."""
        if self.vqa is None:
            raise ConfigError(f"run {self.name!r} is a {self.task!r} run; questions need a run of task 'vqa'")
        with self._lock, torch.inference_mode():  # the attention model keeps its last maps: one question at a time
            return self.vqa.ask(image, question)

    def embed_batch(self, modality: str, batch: Features) -> Tensor:
        """Unit-norm embeddings [B, D] (the shared space of a contrastive run, pooled features of a classifier)."""
        self.require(modality)
        if self.vqa is not None:
            raise ConfigError(f"run {self.name!r} answers questions about images (POST /ask); it has no embedding")
        x, mask = batch[modality], batch.get(f"{modality}_mask")
        with torch.inference_mode():
            if isinstance(self.model, ContrastiveModel):
                z = self.model.encode(modality, x, mask)
            elif isinstance(self.model, FusionClassifier):
                z = self.model.encoders[modality](x, mask=mask).pooled
            else:
                assert isinstance(self.model, Classifier)  # the one task left: VQA runs were refused above
                z = self.model.encoder(x, mask=mask).pooled
            return F.normalize(z.float(), dim=-1)

    def embed(self, modality: str, raw: Image.Image | tuple[Tensor, int] | str) -> Tensor:
        return self.embed_batch(modality, self.features(modality, raw))[0]

    def _zero_shot_weights(self, classes: tuple[str, ...]) -> Tensor:
        with self._lock:
            if classes in self._classifiers:
                self._classifiers.move_to_end(classes)
                return self._classifiers[classes]
        model, tokenizer = self.model, self.tokenizer
        assert isinstance(model, ContrastiveModel) and tokenizer is not None  # can_zero_shot: a text tower
        with torch.inference_mode():
            weights = build_zero_shot_classifier(
                model,
                lambda t: tokenizer(t, self.cfg.data.context_length),
                list(classes),
                self.cfg.model.zero_shot_templates,
            )
        with self._lock:
            self._classifiers[classes] = weights
            while len(self._classifiers) > self._max_cached:
                self._classifiers.popitem(last=False)
        return weights

    def classify(
        self, modality: str, raw: Image.Image | tuple[Tensor, int], classes: list[str] | None = None
    ) -> list[tuple[str, float]]:
        """(class, probability) pairs, most likely first: zero-shot over ``classes`` or the classifier head."""
        if not self.can_zero_shot(modality):
            raise ConfigError(
                f"run {self.name!r} cannot classify {modality}: it needs a {modality} encoder "
                f"and either a text encoder or a classifier head"
            )
        batch = self.features(modality, raw)
        if isinstance(self.model, (Classifier, FusionClassifier)):
            if classes is not None and list(classes) != list(self.classes):
                raise DataError(
                    f"run {self.name!r} is a classifier over its own classes {self.classes}; "
                    f"it cannot rank other class names"
                )
            with torch.inference_mode():
                logits = self.model(batch)["logits"][0].float()
            names = self.classes
        else:
            names = list(classes) if classes is not None else list(self.classes)
            weights = self._zero_shot_weights(tuple(names))
            z = self.embed_batch(modality, batch)[0]
            assert isinstance(self.model, ContrastiveModel)  # can_zero_shot: a contrastive run
            with torch.inference_mode():
                logits = self.model.current_logit_scale().float() * (z @ weights.to(z.device).float())
        probs = logits.softmax(-1).cpu().tolist()
        return sorted(zip(names, probs), key=lambda p: -p[1])
