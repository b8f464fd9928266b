"""Image captioning: an image encoder → a learned prefix → a small autoregressive transformer decoder.

What: ClipCap (Mokady et al. 2021, "ClipCap: CLIP Prefix for Image
Captioning"). An image is encoded (any Chorus image tower; for COCO the
L2-normalised image embedding of a CLIP model), a :class:`PrefixMapper` turns
that into ``prefix_length`` vectors in the decoder's input space, and a GPT-style
causal :class:`CaptionDecoder` continues the prefix with the caption's tokens.
Training is next-token cross-entropy on the caption only (the prefix positions
predict nothing); inference is greedy or beam search
(:mod:`chorus.translate.decoding`).

Why it works with little paired data: the decoder is a language model first.
:meth:`CaptionDecoder.forward` trains it on text alone (no prefix), so it can be
pre-trained on captions that have no image — co-learning from the text
modality — and the paired stage then only has to learn how an image embedding
*steers* an already fluent model (ClipCap's point: with a frozen GPT-2 only the
mapping network trains). Two prefix mappers:

- ``"mlp"`` (ClipCap's MLP): a pooled feature [B, F] → a two-layer MLP →
  ``prefix_length`` vectors. Right for a global embedding such as CLIP's.
- ``"grid"``: the encoder's feature-map tokens [B, H·W, F] (a square map),
  average-pooled to a ``grid`` × ``grid`` map, each cell projected and given a
  learned position vector. Right when the caption must say *where* things are (scene captions):
  a pooled vector has thrown the layout away.

Baselines it should beat: nearest-neighbour captioning (Devlin et al. 2015) and
retrieving the closest caption of a text corpus through a shared embedding
space (see ``chorus bench caption``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from chorus.data.collate import Collate
from chorus.data.text import SubwordTokenizer
from chorus.encoders.base import out_dim
from chorus.encoders.transformer import Transformer
from chorus.errors import ConfigError, DataError
from chorus.train import TrainConfig, Trainer
from chorus.translate.decoding import Decoded, beam_search, greedy_search, strip


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of a :class:`CaptionDecoder` (saved in a captioner run so it can be rebuilt)."""

    vocab_size: int
    width: int = 192
    layers: int = 3
    heads: int = 4
    max_length: int = 64  # prefix vectors + caption tokens


class CaptionDecoder(nn.Module):
    """Causal transformer language model over token ids, optionally continuing a prefix of vectors.

    Token embedding and output layer are tied (Press & Wolf 2017): on a small
    corpus this halves the parameters that must be learned from word counts.
    """

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.max_length, cfg.width))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, causal=True)
        self.ln_final = nn.LayerNorm(cfg.width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)

    def logits(self, ids: Tensor, mask: Tensor | None = None, prefix: Tensor | None = None) -> Tensor:
        """Next-token logits [B, L, V] at each of the ``ids`` [B, L] positions (after ``prefix`` [B, P, W])."""
        x = self.token_embedding(ids)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], 1)
            if mask is not None:
                mask = torch.cat([mask.new_ones(mask.shape[0], prefix.shape[1]), mask], 1)
        if x.shape[1] > self.cfg.max_length:
            raise DataError(f"prefix + caption is {x.shape[1]} positions, the decoder holds {self.cfg.max_length}")
        h = self.transformer(x + self.positional_embedding[: x.shape[1]], mask)
        h = self.ln_final(h[:, x.shape[1] - ids.shape[1] :])
        return h @ self.token_embedding.weight.to(h.dtype).T

    def loss(self, ids: Tensor, mask: Tensor, prefix: Tensor | None = None) -> Tensor:
        """Mean cross-entropy of each real token given the ones before it (and the prefix)."""
        length = int(mask.sum(1).max())  # batches are padded to the context length: drop the all-pad tail
        ids, mask = ids[:, :length], mask[:, :length]
        logits = self.logits(ids, mask, prefix)[:, :-1].float()
        target = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Language-model training on text alone: ``batch["text"]``, ``batch["text_mask"]``."""
        return {"loss": self.loss(batch["text"], batch["text_mask"])}


@dataclass(frozen=True)
class PrefixConfig:
    """How image features become decoder input vectors."""

    kind: Literal["mlp", "grid"] = "mlp"
    feature_dim: int = 256
    prefix_length: int = 10  # "mlp": number of prefix vectors
    grid: int = 4  # "grid": the feature map is pooled to grid × grid cells


class PrefixMapper(nn.Module):
    """Image features → ``[B, P, width]`` prefix vectors (``"mlp"`` on pooled features, ``"grid"`` on tokens)."""

    def __init__(self, cfg: PrefixConfig, width: int) -> None:
        super().__init__()
        if cfg.kind not in ("mlp", "grid"):
            raise ConfigError(f"prefix kind must be 'mlp' or 'grid', got {cfg.kind!r}")
        self.cfg, self.width = cfg, width
        if cfg.kind == "mlp":
            hidden = cfg.prefix_length * width // 2
            self.net = nn.Sequential(
                nn.Linear(cfg.feature_dim, hidden), nn.Tanh(), nn.Linear(hidden, cfg.prefix_length * width)
            )
        else:
            self.net = nn.Sequential(nn.LayerNorm(cfg.feature_dim), nn.Linear(cfg.feature_dim, width))
            self.position = nn.Parameter(torch.randn(cfg.grid * cfg.grid, width) * 0.02)

    @property
    def length(self) -> int:
        return self.cfg.prefix_length if self.cfg.kind == "mlp" else self.cfg.grid**2

    def forward(self, features: Tensor) -> Tensor:
        if self.cfg.kind == "mlp":
            if features.dim() != 2:
                raise DataError(f"an 'mlp' prefix reads pooled features [B, F], got shape {tuple(features.shape)}")
            return self.net(features).view(features.shape[0], self.cfg.prefix_length, self.width)
        side = math.isqrt(features.shape[1]) if features.dim() == 3 else 0
        if side * side != features.shape[1] or side == 0:
            raise DataError(
                f"a 'grid' prefix reads the tokens of a square feature map [B, H*W, F], "
                f"got shape {tuple(features.shape)}"
            )
        fmap = features.transpose(1, 2).reshape(features.shape[0], -1, side, side)
        cells = F.adaptive_avg_pool2d(fmap, self.cfg.grid).flatten(2).transpose(1, 2)  # [B, g², F]
        return self.net(cells) + self.position


class ImageFeatures(nn.Module):
    """Images (uint8 [B, 3, H, W], or floats in [0, 1]) → what a :class:`PrefixMapper` reads.

    Normalises with ``mean``/``std`` (the statistics the encoder was trained
    with), runs any Chorus image encoder and returns ``output``: ``"embedding"``
    — ``projection`` of the pooled vector, L2-normalised (a CLIP model's image
    embedding); ``"pooled"``; or ``"tokens"`` (the feature map's cells, for a
    ``"grid"`` prefix).
    """

    def __init__(
        self,
        encoder: nn.Module,
        output: Literal["embedding", "pooled", "tokens"],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        projection: nn.Linear | None = None,
    ) -> None:
        super().__init__()
        if output not in ("embedding", "pooled", "tokens"):
            raise ConfigError(f"image feature output must be embedding, pooled or tokens, got {output!r}")
        if (output == "embedding") != (projection is not None):
            raise ConfigError("image features: a projection is needed for, and only for, output='embedding'")
        self.encoder, self.output = encoder, output
        self.projection: nn.Linear | None = projection
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    @property
    def out_dim(self) -> int:
        return self.projection.out_features if self.projection is not None else out_dim(self.encoder)

    def forward(self, images: Tensor) -> Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        encoded = self.encoder((x - mean) / std)
        if self.output == "tokens":
            return encoded.tokens
        if self.output == "pooled":
            return encoded.pooled
        assert self.projection is not None  # checked in __init__
        return F.normalize(self.projection(encoded.pooled).float(), dim=-1)


class Captioner(nn.Module):
    """Image → caption tokens: ``image_encoder`` (optional) → :class:`PrefixMapper` → :class:`CaptionDecoder`.

    ``image_encoder`` (e.g. :class:`ImageFeatures`) maps a batch of images to the
    mapper's input: pooled features [B, F] for ``"mlp"``, feature-map tokens
    [B, H·W, F] for ``"grid"``.
    Without one, ``batch["image"]`` already holds those features (e.g. cached
    embeddings of a frozen tower, computed once for every training run).
    ``freeze_decoder`` trains only the mapper (and encoder), ClipCap's
    frozen-language-model variant.
    """

    def __init__(
        self,
        decoder: CaptionDecoder,
        mapper: PrefixMapper,
        image_encoder: nn.Module | None = None,
        freeze_decoder: bool = False,
    ) -> None:
        super().__init__()
        if mapper.width != decoder.cfg.width:
            raise ConfigError(f"prefix width {mapper.width} != decoder width {decoder.cfg.width}")
        self.decoder, self.mapper, self.image_encoder = decoder, mapper, image_encoder
        if freeze_decoder:
            decoder.requires_grad_(False)

    def features(self, images: Tensor) -> Tensor:
        """The mapper's input for a batch of images (the images themselves without an encoder)."""
        return images if self.image_encoder is None else self.image_encoder(images)

    def prefix(self, images: Tensor) -> Tensor:
        return self.mapper(self.features(images))

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        return {"loss": self.decoder.loss(batch["text"], batch["text_mask"], self.prefix(batch["image"]))}

    @torch.no_grad()
    def generate(
        self,
        images: Tensor,
        start_id: int,
        end_id: int,
        max_tokens: int = 30,
        beam: int = 1,
        length_penalty: float = 1.0,
    ) -> Decoded:
        """Greedy (``beam=1``) or beam search captions of ``images`` (ids start with ``start_id``); beams are
        ranked by mean log-probability per token by default (``length_penalty``, see :func:`beam_search`)."""
        was_training = self.training
        self.eval()
        try:
            prefix = self.prefix(images)
            max_tokens = min(max_tokens, self.decoder.cfg.max_length - prefix.shape[1] - 1)

            def step(rows: Tensor, ids: Tensor) -> Tensor:
                return self.decoder.logits(ids, None, prefix[rows])[:, -1].float().log_softmax(-1)

            search = greedy_search if beam == 1 else beam_search
            options: dict[str, Any] = {} if beam == 1 else {"width": beam, "length_penalty": length_penalty}
            return search(step, images.shape[0], start_id, end_id, max_tokens, device=prefix.device, **options)
        finally:
            self.train(was_training)

    def caption(self, images: Tensor, tokenizer: SubwordTokenizer, max_tokens: int = 30, beam: int = 1) -> list[str]:
        """Caption strings for ``images`` with a :class:`~chorus.data.text.SubwordTokenizer`."""
        start, end = tokenizer.sot_id, tokenizer.eot_id
        if start is None or end is None:
            raise ConfigError("captioning needs a tokenizer with start and end tokens")
        out = self.generate(images, start, end, max_tokens, beam)
        return [tokenizer.decode(seq).strip() for seq in strip(out.ids, start, end)]


class CaptionPairs(Dataset):
    """Items ``{"image": images[i], "text": caption}``, one per (image, caption) pair.

    ``images`` may be pixels or cached features (whatever the captioner's
    ``batch["image"]`` reads); ``captions[i]`` is the list of image i's captions.
    """

    def __init__(self, images: Tensor, captions: Sequence[Sequence[str]]) -> None:
        if len(images) != len(captions):
            raise DataError(f"{len(images)} images but {len(captions)} caption lists")
        self.images = images
        self.pairs = [(i, text) for i, texts in enumerate(captions) for text in texts]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i, text = self.pairs[index]
        return {"image": self.images[i], "text": text}


def fit(
    model: nn.Module,
    data: Dataset,
    tokenizer: SubwordTokenizer,
    context_length: int,
    run_dir: str | Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    weight_decay: float = 0.01,
    bf16: bool = True,
) -> dict[str, Any]:
    """Train a :class:`CaptionDecoder` (text batches) or :class:`Captioner` with the one Trainer:
    AdamW, cosine schedule with 5 % warm-up, ``steps`` optimizer steps."""
    cfg = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        warmup_steps=max(1, steps // 20),
        precision="auto" if bf16 else "fp32",  # auto: bf16 only where the hardware runs it fast
        progress=False,
        tensorboard=False,
        log_every=max(1, steps // 10),
    )
    return Trainer(model, data, cfg, run_dir, collate_fn=Collate(tokenizer, context_length)).fit()
