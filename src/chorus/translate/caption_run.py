"""A captioner run folder: everything needed to caption a new image, and nothing that needs the data.

Layout::

    RUN/captioner.json     image encoder (name, size, options, input size, normalisation, output),
                           prefix and decoder shapes, context length, default decoding
    RUN/tokenizer.json     the decoder's BPE tokenizer
    RUN/model.safetensors  the whole captioner (image encoder, prefix mapper, decoder)

Why a self-contained folder: ``chorus caption RUN IMAGE...`` and the web
explorer load a captioner without rebuilding any training set (the run-folder
rule of the architecture). An image is prepared as in evaluation: shorter
side resized to ``image_size`` (bicubic), centre-cropped, scaled to [0, 1];
:class:`~chorus.translate.caption.ImageFeatures` applies the normalisation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from chorus.data.image import ImageTransform
from chorus.data.text import BPETokenizer
from chorus.encoders import build_encoder
from chorus.encoders.base import out_dim
from chorus.errors import ConfigError, DataError
from chorus.translate.caption import (
    CaptionDecoder,
    Captioner,
    DecoderConfig,
    ImageFeatures,
    PrefixConfig,
    PrefixMapper,
)

SPEC = "captioner.json"


@dataclass(frozen=True)
class ImageSpec:
    """How to rebuild the image side: a ``chorus.encoders`` encoder and its input/output conventions."""

    encoder: str
    size: str
    image_size: int
    output: Literal["embedding", "pooled", "tokens"]  # what ImageFeatures returns
    mean: tuple[float, ...]
    std: tuple[float, ...]
    options: dict[str, Any] = field(default_factory=dict)
    embed_dim: int | None = None  # the projection's width when output == "embedding"


@dataclass(frozen=True)
class CaptionerSpec:
    image: ImageSpec
    prefix: PrefixConfig
    decoder: DecoderConfig
    context_length: int = 32
    max_tokens: int = 30
    beam: int = 3


def build_image_features(spec: ImageSpec) -> ImageFeatures:
    """A fresh (untrained) :class:`ImageFeatures` of this shape."""
    encoder = build_encoder(spec.encoder, spec.size, image_size=spec.image_size, **spec.options)
    projection = None
    if spec.output == "embedding":
        if spec.embed_dim is None:
            raise ConfigError("image features with output 'embedding' need embed_dim")
        projection = nn.Linear(out_dim(encoder), spec.embed_dim, bias=False)
    return ImageFeatures(encoder, spec.output, tuple(spec.mean), tuple(spec.std), projection)


def build_captioner(spec: CaptionerSpec) -> Captioner:
    """A fresh captioner of this shape (weights to be trained or loaded)."""
    decoder = CaptionDecoder(spec.decoder)
    return Captioner(decoder, PrefixMapper(spec.prefix, spec.decoder.width), build_image_features(spec.image))


def save_captioner(
    run_dir: str | os.PathLike[str], model: Captioner, tokenizer: BPETokenizer, spec: CaptionerSpec
) -> Path:
    """Write the three files of a captioner run into ``run_dir``."""
    if model.image_encoder is None:
        raise ConfigError(
            "a captioner run needs its image encoder (the model was trained on cached features: "
            "attach the encoder before saving)"
        )
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / SPEC).write_text(json.dumps(asdict(spec), indent=2) + "\n")
    tokenizer.save(run_dir / "tokenizer.json")
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(run_dir / "model.safetensors")
    )
    return run_dir


def is_captioner_run(run_dir: str | os.PathLike[str]) -> bool:
    return (Path(run_dir) / SPEC).is_file()


class LoadedCaptioner:
    """A captioner run ready to caption PIL images: ``LoadedCaptioner(run_dir).caption([img, ...])``."""

    def __init__(self, run_dir: str | os.PathLike[str], device: str | None = None) -> None:
        run_dir = Path(run_dir)
        for needed in (SPEC, "tokenizer.json", "model.safetensors"):
            if not (run_dir / needed).is_file():
                raise ConfigError(f"{run_dir} is not a captioner run: {needed} is missing")
        try:
            raw = json.loads((run_dir / SPEC).read_text())
            self.spec = CaptionerSpec(
                ImageSpec(**raw["image"]),
                PrefixConfig(**raw["prefix"]),
                DecoderConfig(**raw["decoder"]),
                **{k: v for k, v in raw.items() if k not in ("image", "prefix", "decoder")},
            )
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ConfigError(f"{run_dir / SPEC}: not a captioner spec ({err})") from err
        self.name = run_dir.name
        self.tokenizer = BPETokenizer.load(run_dir / "tokenizer.json")
        self.model = build_captioner(self.spec)
        self.model.load_state_dict(load_file(str(run_dir / "model.safetensors")))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device).eval().requires_grad_(False)
        self._transform = ImageTransform(self.spec.image.image_size, mean=0.0, std=1.0)  # [0, 1]; the model normalises

    def caption(
        self, images: Sequence[Image.Image], beam: int | None = None, max_tokens: int | None = None
    ) -> list[str]:
        """One caption per image (beam search of the run's default width unless ``beam`` is given)."""
        if not images:
            raise DataError("no images to caption")
        x = torch.stack([self._transform(img) for img in images]).to(self.device)
        with torch.inference_mode():
            return self.model.caption(x, self.tokenizer, max_tokens or self.spec.max_tokens, beam or self.spec.beam)
