"""The shared digit space: an image–text CLIP on MNIST with an audio tower bound to its image side.

What: :func:`train_space` builds the towers of ``configs/mnist_clip.yaml``
(image CNN, text transformer, BPE tokenizer trained on the label captions,
``embed_dim`` 64) and trains them with InfoNCE on in-memory MNIST tensors;
:func:`bind_audio` then trains an ``audio_cnn`` tower so that a spoken digit
lands next to the *frozen* embedding of the MNIST image it is paired with in
AV-Digits — :func:`chorus.colearn.bind_to_pivot`, the one binding of Chorus,
with images as the pivot. Any modality then maps to any other through one
64-d unit sphere.

Why binding to the frozen image side works (ImageBind, Girdhar et al.,
CVPR 2023): the image embeddings already cluster by digit and sit next to the
matching captions, so pulling each recording onto its paired image's
embedding places speech in the same clusters; text↔speech alignment then
emerges without a single text–speech pair. Freezing the image tower *and its
projection* is what keeps the space fixed, so the generators conditioned on
text embeddings also accept speech embeddings.

Why in-memory instead of ``chorus.experiment.train_experiment``: the same
architecture and loss, but reading pre-decoded tensors instead of PIL images
makes a step several times cheaper on a shared CPU; the batch budget is a
parameter so the benchmark can trade fidelity for time.

Baseline: the same towers at random initialisation (``steps=0``): retrieval at
chance.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from chorus.colearn.pivot import bind_to_pivot
from chorus.contrastive import ContrastiveModel
from chorus.contrastive.text_cache import CachedTextEncoder
from chorus.data import BPETokenizer, Collate
from chorus.data.augment import TensorImages
from chorus.data.captions import CaptionedDataset, fill_template
from chorus.data.text import TextTokenizer
from chorus.encoders import build_encoder
from chorus.encoders.speaker_robust import SPEECH_TOWER
from chorus.errors import ConfigError
from chorus.eval.mode import evaluating
from chorus.train import TrainConfig, Trainer, seed_everything
from chorus.translate.digits import DigitData

__all__ = ["SharedSpace", "SpaceConfig", "train_space", "bind_audio"]


class _Rows(Dataset):
    """A map-style dataset over precomputed per-item dicts."""

    def __init__(self, rows: Sequence[dict]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


def _train_config(steps: int, batch_size: int, lr: float, seed: int) -> TrainConfig:
    return TrainConfig(
        max_steps=max(steps, 1),
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(20, steps // 5),
        precision="auto",
        seed=seed,
        progress=False,
        tensorboard=False,
        log_every=max(steps, 1),
    )


@dataclass
class SharedSpace:
    """The trained towers and how to reach them: ``embed_images``, ``embed_texts``, ``embed_audio``."""

    clip: ContrastiveModel  # image + text
    tokenizer: Callable[..., tuple[Tensor, Tensor]]  # BPE, or the row lookup of a cached frozen MiniLM
    context_length: int
    class_names: list[str]
    audio: ContrastiveModel | None = None  # clip's towers frozen + a bound audio tower (bind_audio)

    @torch.no_grad()
    def embed_images(self, pixels: Tensor, batch_size: int = 512) -> Tensor:
        with evaluating(self.clip):
            return torch.cat(
                [
                    self.clip.encode("image", pixels[i : i + batch_size]).float()
                    for i in range(0, len(pixels), batch_size)
                ]
            )

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> Tensor:
        ids, mask = self.tokenizer(list(texts), self.context_length)
        with evaluating(self.clip):
            return self.clip.encode("text", ids, mask).float()

    def prompts(self, templates: Sequence[str], digits: Sequence[int]) -> list[str]:
        return [fill_template(t, self.class_names[d]) for t in templates for d in digits]

    @torch.no_grad()
    def embed_audio(self, mels: Sequence[Tensor], batch_size: int = 256) -> Tensor:
        if self.audio is None:
            raise ConfigError("SharedSpace.embed_audio: no audio tower yet; call bind_audio(space, ...)")
        out = []
        with evaluating(self.audio):
            for i in range(0, len(mels), batch_size):
                batch = Collate()([{"audio": m} for m in mels[i : i + batch_size]])
                assert batch is not None  # no sample was skipped
                out.append(self.audio.encode("audio", batch["audio"], batch["audio_mask"]).float())
        return torch.cat(out)


@dataclass(frozen=True)
class SpaceConfig:
    """The towers and training settings of the shared space: what :func:`train_space` reads.

    Its own small config (instead of the experiment pipeline's) keeps :mod:`chorus.translate` below
    :mod:`chorus.experiment` in the layer order; :meth:`from_experiment` reads an experiment YAML's values.
    """

    class_names: tuple[str, ...]
    caption_templates: tuple[str, ...]
    image_encoder: str = "cnn"
    image_encoder_size: str = "small"
    image_encoder_options: dict[str, Any] = field(default_factory=dict)
    image_size: int = 28
    text_encoder: str = "text_transformer"
    text_encoder_size: str = "tiny"
    text_encoder_options: dict[str, Any] = field(default_factory=dict)
    vocab_size: int = 1000
    context_length: int = 32
    embed_dim: int = 64
    lr: float = 1e-3

    @classmethod
    def from_experiment(cls, cfg: Any) -> SpaceConfig:
        """The values of an experiment config (``chorus.experiment.ExperimentConfig``, e.g. ``mnist_clip.yaml``)."""
        image, text = cfg.model.encoders["image"], cfg.model.encoders["text"]
        return cls(
            class_names=tuple(cfg.data.class_names or [str(d) for d in range(10)]),
            caption_templates=tuple(cfg.data.caption_templates),
            image_encoder=image.name,
            image_encoder_size=image.size,
            image_encoder_options=dict(image.options),
            image_size=cfg.data.image_size,
            text_encoder=text.name,
            text_encoder_size=text.size,
            text_encoder_options=dict(text.options),
            vocab_size=cfg.data.vocab_size,
            context_length=cfg.data.context_length,
            embed_dim=cfg.model.embed_dim,
            lr=cfg.train.lr,
        )


def train_space(
    cfg: SpaceConfig,
    data: DigitData,
    steps: int,
    run_dir: str | os.PathLike,
    seed: int = 0,
    batch_size: int = 128,
    image_size: str | None = None,
    frozen_text_prompts: Sequence[str] | None = None,
) -> SharedSpace:
    """Train the image–text towers of ``cfg`` (e.g. ``configs/mnist_clip.yaml``'s) for ``steps`` on MNIST train.

    ``image_size`` overrides the image encoder size (e.g. ``"tiny"`` for a cheaper tower).
    ``frozen_text_prompts``: instead of the config's text tower trained from scratch, use the frozen
    pretrained all-MiniLM-L6-v2 (LiT) cached over these prompts — the training captions are added; every
    text the space will embed must be among them. Why: a text tower trained on six caption templates
    generalises imperfectly to new wording, a pretrained sentence encoder has seen most wordings.
    """
    seed_everything(seed)
    names = list(cfg.class_names)
    templates = list(cfg.caption_templates)
    captions = [fill_template(t, n) for n in names for t in templates]
    image = build_encoder(
        cfg.image_encoder,
        image_size or cfg.image_encoder_size,
        in_channels=1,
        image_size=cfg.image_size,
        **cfg.image_encoder_options,
    )
    tokenizer: TextTokenizer
    if frozen_text_prompts is None:
        bpe = BPETokenizer.train(captions, vocab_size=cfg.vocab_size, min_frequency=1)
        tokenizer = bpe
        text = build_encoder(
            cfg.text_encoder,
            cfg.text_encoder_size,
            vocab_size=bpe.vocab_size,
            context_length=cfg.context_length,
            **cfg.text_encoder_options,
        )
        frozen: tuple[str, ...] = ()
    else:
        text = CachedTextEncoder.minilm(captions + list(frozen_text_prompts))
        tokenizer, frozen = text.tokenizer, ("text",)
    clip = ContrastiveModel({"image": image, "text": text}, cfg.embed_dim, frozen=frozen)
    train_idx = data.mnist_train
    if steps > 0:
        pixels, labels = data.pixels[train_idx], data.digit_of_image[train_idx].tolist()
        dataset = CaptionedDataset(TensorImages(pixels, lambda i: {"label": labels[i]}), templates, names)
        Trainer(
            clip,
            dataset,
            _train_config(steps, batch_size, cfg.lr, seed),
            run_dir,
            collate_fn=Collate(tokenizer, cfg.context_length),
        ).fit()
    return SharedSpace(clip.eval(), tokenizer, cfg.context_length, names)


def bind_audio(
    space: SharedSpace,
    data: DigitData,
    pairs: Tensor,
    steps: int,
    run_dir: str | os.PathLike,
    seed: int = 0,
    batch_size: int = 64,
    size: str = "tiny",
    lr: float = 3e-3,
) -> SharedSpace:
    """A copy of ``space`` with a speech tower bound to its frozen image side on ``pairs`` [N, 2] of (clip, image).

    The binding itself is :func:`chorus.colearn.bind_to_pivot` (images as the pivot); this adds the
    in-memory pairs and the training run. The tower is :data:`~chorus.encoders.speaker_robust.SPEECH_TOWER`'s ``audio_cnn``.
    """
    seed_everything(seed)
    audio = build_encoder("audio_cnn", size, n_mels=data.logmel.n_mels, **SPEECH_TOWER)
    model = bind_to_pivot(space.clip, audio, "audio")
    if steps > 0:
        rows = [{"image": data.pixels[i], "audio": data.mels[c]} for c, i in pairs.tolist()]
        Trainer(model, _Rows(rows), _train_config(steps, batch_size, lr, seed), run_dir, collate_fn=Collate()).fit()
    return replace(space, audio=model.eval())
