"""Visual question answering as fusion of an image and a question: relation network, FiLM, question attention.

A VQA model (:class:`VQAModel`) is an image encoder whose final feature map
gives one token per cell (the CNN's "objects"), a text encoder over the
question, and a fusion that maps both to answer logits. Three fusions here
take the image *tokens* and the question (tokens + mask; the pooled question
is the last real token, as the text tower pools); the baseline is the existing
``early`` fusion on the flattened feature map and the pooled question (the
CNN+MLP of Santoro et al. 2017). Each image fusion appends the cell's (x, y)
coordinates in [-1, 1] to its features, since where an object is matters to
the questions; the grid is taken to be square (``H = W``).

- ``relation_network`` (Santoro et al., "A simple neural network module for
  relational reasoning", NeurIPS 2017): ``f(Σ_ij g(o_i, o_j, q))`` over all
  ordered pairs of cells, taken as the mean over pairs (the sum divided by
  N², which keeps ``f``'s inputs at the scale of one pair's, so Adam's step
  on ``f`` does not grow with the number of pairs). Why it works: ``g`` sees two objects and the question
  at once, so "closest to X" becomes a per-pair comparison the sum aggregates;
  an MLP on concatenated features has to learn every pair interaction from
  positions in a flat vector. ``g``'s first layer is applied per object and
  summed per pair (``W[o_i; o_j; q] = W_i o_i + W_j o_j + W_q q``), an exact
  rewrite that saves one of its matrix products per pair.
- ``film`` (Perez et al., "FiLM: Visual Reasoning with a General Conditioning
  Layer", AAAI 2018): residual conv blocks over the feature map whose
  batch-normalised activations are scaled and shifted per channel by
  ``γ(q), β(q)``. Why it works: the question selects which feature detectors
  (colours, shapes) stay on, and later convolutions relate what is left.
- ``question_attention``: the question's tokens attend over the image cells in
  pre-norm cross-attention blocks (the blocks of Chorus's cross-modal
  transformer), each followed by question self-attention; the end-of-question
  token is classified. After each forward in eval mode ``attention`` holds the
  per-layer weights [B, heads, L, cells] for inspection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chorus.encoders.masking import last_real_index
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating
from chorus.fusion.base import FUSIONS, Fusion, build_fusion
from chorus.fusion.cross_transformer import AttentionBlock
from chorus.fusion.layers import mlp

IMAGE, TEXT = "image", "text"


def grid_coordinates(cells: int, like: Tensor) -> Tensor:
    """(x, y) in [-1, 1] of each cell [cells, 2] of a square row-major grid (x = column)."""
    side = round(cells**0.5)
    if side * side != cells:
        raise DataError(f"image tokens must form a square grid, got {cells} cells")
    axis = torch.linspace(-1.0, 1.0, side, device=like.device, dtype=like.dtype)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


class ImageQuestionFusion(Fusion):
    """Common checks of the VQA fusions: modalities ``image`` (cells) and ``text`` (question tokens)."""

    accepts_tokens = True

    def __init__(self, dims: Mapping[str, int], out_dim: int) -> None:
        super().__init__(dims, out_dim)
        if set(self.dims) != {IMAGE, TEXT}:
            raise ConfigError(f"{type(self).__name__} fuses exactly 'image' and 'text', got {list(self.dims)}")

    def inputs(
        self, features: Mapping[str, Tensor], masks: Mapping[str, Tensor] | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(cells with coordinates [B, N, C+2], question tokens [B, L, D], question mask [B, L], pooled question [B, D])."""
        if set(features) != {IMAGE, TEXT}:
            raise DataError(f"VQA fusion needs both 'image' and 'text' features, got {sorted(features)}")
        xs, _ = self.prepare(features, None)
        cells, tokens = xs[IMAGE], xs[TEXT]
        mask = (masks or {}).get(TEXT)
        if mask is None:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if mask.dtype != torch.bool or tuple(mask.shape) != tuple(tokens.shape[:2]):
            raise DataError(
                f"masks['text'] has dtype {mask.dtype} and shape {tuple(mask.shape)}; expected bool {tuple(tokens.shape[:2])}"
            )
        coords = grid_coordinates(cells.shape[1], cells).expand(cells.shape[0], -1, -1)
        b, n = tokens.shape[:2]
        pooled = tokens[torch.arange(b, device=tokens.device), last_real_index(mask, n, b, tokens.device)]
        return torch.cat([cells, coords], -1), tokens, mask, pooled


VQA_FUSIONS = ("relation_network", "film", "question_attention")
"""The registered fusions of an image's cells with a question's tokens (the AV fusion benchmark leaves them out)."""


@FUSIONS.register("relation_network")
class RelationNetwork(ImageQuestionFusion):
    """``f(mean_ij g(o_i, o_j, q))``; ``g`` has ``g_layers`` layers of width ``hidden``, ``f`` three."""

    def __init__(
        self, dims: Mapping[str, int], out_dim: int, hidden: int = 128, g_layers: int = 3, dropout: float = 0.1
    ) -> None:
        super().__init__(dims, out_dim)
        if g_layers < 1:
            raise ConfigError(f"relation_network g_layers must be >= 1, got {g_layers}")
        obj = self.dims[IMAGE] + 2
        self.g_first = nn.Linear(obj, hidden)  # o_i's part of g's first layer (with the bias)
        self.g_second = nn.Linear(obj, hidden, bias=False)  # o_j's part
        self.g_question = nn.Linear(self.dims[TEXT], hidden, bias=False)
        self.g_rest = nn.Sequential(*(m for _ in range(g_layers - 1) for m in (nn.Linear(hidden, hidden), nn.ReLU())))
        # Most of the N² pairs are background cells, so the mean over pairs is nearly the same vector for
        # every image; batch normalisation removes that shared part and rescales what differs, which is
        # what f has to read.
        self.norm = nn.BatchNorm1d(hidden)
        self.f = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), mlp(hidden, hidden, out_dim, dropout))

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor] | None = None,
        masks: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        objects, _, _, question = self.inputs(features, masks)
        first = self.g_first(objects) + self.g_question(question).unsqueeze(1)  # [B, N, H]
        pairs = F.relu(first.unsqueeze(2) + self.g_second(objects).unsqueeze(1))  # [B, N, N, H]
        return self.f(self.norm(self.g_rest(pairs).mean(dim=(1, 2))))


class FiLMBlock(nn.Module):
    """Perez et al.'s residual block: 1×1 conv, ReLU, 3×3 conv, BatchNorm without affine, FiLM, ReLU, + input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels + 2, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels, affine=False)

    def forward(self, x: Tensor, coords: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        h = F.relu(self.conv1(torch.cat([x, coords], 1)))
        h = self.norm(self.conv2(h)) * (1 + gamma[..., None, None]) + beta[..., None, None]
        return h.relu() + x


@FUSIONS.register("film")
class FiLM(ImageQuestionFusion):
    """``blocks`` FiLM'd residual blocks of ``channels`` over the image cells, then 1×1 conv, max-pool, MLP."""

    def __init__(
        self,
        dims: Mapping[str, int],
        out_dim: int,
        channels: int = 64,
        blocks: int = 3,
        hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims, out_dim)
        self.stem = nn.Conv2d(self.dims[IMAGE] + 2, channels, 1)
        self.blocks = nn.ModuleList(FiLMBlock(channels) for _ in range(blocks))
        self.film = nn.Linear(self.dims[TEXT], 2 * channels * blocks)  # γ, β per block and channel from q
        self.classifier = nn.Conv2d(channels + 2, hidden, 1)
        self.head = mlp(hidden, hidden, out_dim, dropout)

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor] | None = None,
        masks: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        cells, _, _, question = self.inputs(features, masks)
        b, n, c = cells.shape
        side = round(n**0.5)
        grid = cells.transpose(1, 2).reshape(b, c, side, side)
        coords = grid[:, -2:]
        x = F.relu(self.stem(grid))
        params = self.film(question).view(b, len(self.blocks), 2, -1)
        for k, block in enumerate(self.blocks):
            x = block(x, coords, params[:, k, 0], params[:, k, 1])
        x = F.relu(self.classifier(torch.cat([x, coords], 1)))
        return self.head(x.amax(dim=(2, 3)))


@FUSIONS.register("question_attention")
class QuestionAttention(ImageQuestionFusion):
    """``layers`` × (question tokens cross-attend over image cells, question self-attention); EOT token → MLP."""

    def __init__(
        self,
        dims: Mapping[str, int],
        out_dim: int,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        hidden: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(dims, out_dim)
        if d_model % heads:
            raise ConfigError(f"d_model={d_model} must be divisible by heads={heads}")
        self.image_embed = nn.Linear(self.dims[IMAGE] + 2, d_model)
        self.text_embed = nn.Linear(self.dims[TEXT], d_model)
        self.cross = nn.ModuleList(AttentionBlock(d_model, heads, dropout, cross=True) for _ in range(layers))
        self.self_attention = nn.ModuleList(AttentionBlock(d_model, heads, dropout, cross=False) for _ in range(layers))
        self.head = mlp(d_model, hidden, out_dim, dropout)
        self.attention: list[Tensor] = []

    def forward(
        self,
        features: Mapping[str, Tensor],
        present: Mapping[str, Tensor] | None = None,
        masks: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        cells, tokens, mask, _ = self.inputs(features, masks)
        image = self.image_embed(cells)
        h = self.text_embed(tokens)
        all_cells = torch.ones(image.shape[:2], dtype=torch.bool, device=image.device)
        self.attention = []
        for cross, own in zip(self.cross, self.self_attention, strict=True):
            if not self.training:
                self.attention.append(attention_weights(cast(AttentionBlock, cross), h, image).detach())
            h = own(cross(h, all_cells, image), mask)
        b, n = mask.shape
        return self.head(h[torch.arange(b, device=h.device), last_real_index(mask, n, b, h.device)])


def attention_weights(block: AttentionBlock, x: Tensor, context: Tensor) -> Tensor:
    """The softmax weights [B, heads, Tq, Tk] a cross-attention block gives ``context`` for queries ``x``.

    Recomputed from the block's own projections (its fused attention kernel does not return them).
    """
    q = block._split(block.query(block.norm_q(x)))
    norm = block.norm_kv if block.norm_kv is not None else block.norm_q
    k = block._split(block.key_value(norm(context)).chunk(2, -1)[0])
    return torch.softmax(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1)


class VQAModel(nn.Module):
    """Image encoder + question encoder + fusion → answer logits; trained by :class:`~chorus.train.Trainer`.

    Token fusions (``accepts_tokens``) get the image cells and question
    tokens; pooled fusions (``early``) get the flattened feature map and the
    pooled question. ``forward(batch)`` reads ``image`` [B, 3, H, W], ``text``
    [B, L], ``text_mask`` and optionally ``image_id`` (equal ids = same image), and returns ``{"logits"}`` plus ``{"loss",
    "acc"}`` when the batch has a ``label``.
    """

    def __init__(self, image_encoder: nn.Module, text_encoder: nn.Module, fusion: Fusion) -> None:
        super().__init__()
        self.image_encoder, self.text_encoder, self.fusion = image_encoder, text_encoder, fusion

    @classmethod
    def build(
        cls,
        image_encoder: nn.Module,
        text_encoder: nn.Module,
        fusion: str,
        num_answers: int,
        image_shape: tuple[int, int, int],
        **hyper: Any,
    ) -> VQAModel:
        """Build the fusion named ``fusion`` with dims read off the encoders (one dry run at ``image_shape``)."""
        with evaluating(image_encoder):
            cells = image_encoder(torch.zeros(1, *image_shape)).tokens.shape[1]
        token_fusion = FUSIONS.get(fusion).accepts_tokens  # type: ignore[attr-defined]
        widths = {
            name: getattr(encoder, "out_dim", None) for name, encoder in ((IMAGE, image_encoder), (TEXT, text_encoder))
        }
        if not all(isinstance(w, int) for w in widths.values()):
            raise ConfigError(f"VQA encoders need an integer out_dim, got {widths}")
        dims = {IMAGE: cast(int, widths[IMAGE]) * (1 if token_fusion else cells), TEXT: cast(int, widths[TEXT])}
        return cls(image_encoder, text_encoder, build_fusion(fusion, dims, num_answers, **hyper))

    def logits(
        self, image: Tensor, text: Tensor, text_mask: Tensor | None, image_id: Sequence[Any] | None = None
    ) -> Tensor:
        """Answer logits [B, answers]; rows with equal ``image_id`` (or equal token ids) are encoded once.

        Many questions share an image and few distinct questions exist, so
        encoding each distinct image and question once and indexing the
        features back is exact and saves most of the encoders' work; so is
        dropping the columns that are padding in every row.
        """
        where = torch.arange(image.shape[0], device=image.device)
        if image_id is not None:
            if len(image_id) != image.shape[0]:
                raise DataError(f"image_id has {len(image_id)} entries for {image.shape[0]} images")
            slot: dict[Any, int] = {}
            firsts: list[int] = []
            for row, key in enumerate(image_id):
                if key not in slot:
                    slot[key] = len(firsts)
                    firsts.append(row)
            where = torch.tensor([slot[key] for key in image_id], device=image.device)
            image = image[firsts]
        if text_mask is None:
            text_mask = torch.ones_like(text, dtype=torch.bool)
        longest = int(text_mask.sum(1).max())  # columns of padding only change nothing under the mask: drop them
        text, text_mask = text[:, :longest], text_mask[:, :longest]
        unique, inverse = torch.unique(torch.cat([text, text_mask.long()], 1), dim=0, return_inverse=True)
        seen = self.image_encoder(image)
        heard = self.text_encoder(unique[:, : text.shape[1]], mask=unique[:, text.shape[1] :].bool())
        if self.fusion.accepts_tokens:
            return self.fusion(
                {IMAGE: seen.tokens[where], TEXT: heard.tokens[inverse]}, masks={TEXT: heard.mask[inverse]}
            )
        return self.fusion({IMAGE: seen.tokens.flatten(1)[where], TEXT: heard.pooled[inverse]})

    def forward(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        missing = [k for k in (IMAGE, TEXT) if k not in batch]
        if missing:
            raise DataError(
                f"VQA batch lacks {missing}; keys: {sorted(batch)} (tokenize the questions with Collate(tokenizer))"
            )
        logits = self.logits(batch[IMAGE], batch[TEXT], batch.get("text_mask"), batch.get("image_id"))
        out = {"logits": logits}
        if "label" in batch:
            out["loss"] = F.cross_entropy(logits.float(), batch["label"])
            out["acc"] = (logits.argmax(-1) == batch["label"]).float().mean()
        return out


def vqa_accuracy(model: VQAModel, loader: Any) -> dict[str, float]:
    """Accuracy overall, on relational and non-relational questions, and per ``question_type`` (batches from Collate)."""
    device = next(model.parameters()).device
    hits: dict[str, list[int]] = {}
    with evaluating(model):
        for batch in loader:
            pred = (
                model.logits(
                    batch[IMAGE].to(device),
                    batch[TEXT].to(device),
                    batch["text_mask"].to(device),
                    batch.get("image_id"),
                )
                .argmax(-1)
                .cpu()
            )
            right = (pred == batch["label"]).tolist()
            groups = [["accuracy"] for _ in right]
            for i, kind in enumerate(batch.get("question_type", [])):
                groups[i].append(f"accuracy_{kind}")
            for i, relational in enumerate(batch.get("relational", [])):
                groups[i].append("accuracy_relational" if relational else "accuracy_non_relational")
            for ok, names in zip(right, groups, strict=True):
                for name in names:
                    hits.setdefault(name, []).append(int(ok))
    return {name: sum(v) / len(v) for name, v in sorted(hits.items())} | {"n": float(len(hits.get("accuracy", [])))}
