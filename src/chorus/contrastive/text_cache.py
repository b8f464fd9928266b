"""A frozen text tower replaced by a lookup table of its embeddings for a fixed set of texts.

What: ``CachedTextEncoder.build(encoder, tokenizer, texts)`` runs a frozen text
encoder (e.g. ``minilm``) once over every distinct text a run can ever show it
— the (class name × template) prompts of Caltech-101, the 1,195 COCO captions —
and keeps the pooled outputs in a buffer. The "token ids" it reads are row
numbers: its ``tokenizer`` maps texts to rows, so ``Collate(cache.tokenizer)``
and :func:`~chorus.contrastive.build_zero_shot_classifier` work unchanged, and
the cache drops into :class:`~chorus.contrastive.ContrastiveModel` as the
``"text"`` encoder (with ``frozen=("text",)``).

Why it is exact: a frozen tower in eval mode is a deterministic function of
its input, so ``table[row(text)]`` equals ``encoder(tokenize(text)).pooled``
(up to the float precision the table was computed in). Under LiT (Zhai et al.
2022) only the image tower and the text projection learn, so the 22M-parameter
MiniLM forward pass — most of a step's cost on a CPU — is paid once per text
instead of once per text per step.

Limit: only the texts given at build time exist; any other text raises a
ConfigError naming it (add it to ``texts``). Its pooled output is computed in
float32 outside autocast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.errors import ConfigError, DataError
from chorus.eval.mode import evaluating

__all__ = ["CachedTextEncoder"]

Tokenize = Callable[[list[str], int], tuple[Tensor, Tensor]]


class RowTokenizer:
    """``(texts, context_length=None) -> (rows [N, 1], mask [N, 1])``: a text's row in the cache table."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.rows = {text: i for i, text in enumerate(texts)}

    def __call__(self, texts: Sequence[str], context_length: int | None = None) -> tuple[Tensor, Tensor]:
        missing = [t for t in texts if t not in self.rows]
        if missing:
            raise ConfigError(
                f"text {missing[0]!r} is not in the text-embedding cache ({len(self.rows)} texts); "
                "add it to the texts the cache is built from"
            )
        ids = torch.tensor([self.rows[t] for t in texts], dtype=torch.long).view(-1, 1)
        return ids, torch.ones_like(ids, dtype=torch.bool)


class CachedTextEncoder(nn.Module):
    """Encoder over row ids [B, 1] (or [B]) of a fixed text list; ``pooled`` = the stored embedding.

    ``tokens`` and ``mask`` are None: only the pooled output is cached.
    """

    modality = "text"
    table: Tensor

    def __init__(self, table: Tensor, texts: Sequence[str]) -> None:
        super().__init__()
        if table.ndim != 2 or table.shape[0] != len(texts):
            raise DataError(f"table must be [len(texts)={len(texts)}, D], got {tuple(table.shape)}")
        if len(set(texts)) != len(texts):
            raise DataError("texts of a CachedTextEncoder must be distinct")
        self.register_buffer("table", table.float())
        self.texts = list(texts)
        self.tokenizer = RowTokenizer(self.texts)
        self.out_dim: int = table.shape[1]

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        encoder: nn.Module,
        tokenize: Tokenize,
        texts: Sequence[str],
        context_length: int = 64,
        batch_size: int = 256,
    ) -> CachedTextEncoder:
        """Embed every distinct text of ``texts`` with ``encoder`` (eval mode, fp32) and keep the table."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            raise ConfigError("CachedTextEncoder.build needs at least one text")
        device = next(encoder.parameters()).device
        chunks = []
        with evaluating(encoder), torch.autocast(device.type, enabled=False):
            for start in range(0, len(unique), batch_size):
                ids, mask = tokenize(unique[start : start + batch_size], context_length)
                chunks.append(encoder(ids.to(device), mask.to(device)).pooled.float().cpu())
        return cls(torch.cat(chunks), unique)

    @classmethod
    def minilm(cls, texts: Sequence[str]) -> CachedTextEncoder:
        """Frozen pretrained all-MiniLM-L6-v2 (the ``minilm`` encoder and its WordPiece tokenizer) over ``texts``:
        the LiT text tower."""
        from chorus.data import WordPieceTokenizer
        from chorus.encoders import build_encoder

        return cls.build(build_encoder("minilm"), WordPieceTokenizer.from_minilm(), texts)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        if x.dtype != torch.long or x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] != 1):
            raise DataError(f"CachedTextEncoder reads row ids [B, 1] (long), got {x.dtype} {tuple(x.shape)}")
        rows = x.reshape(-1)
        if rows.numel() and (rows.min() < 0 or rows.max() >= self.table.shape[0]):
            raise DataError(
                f"row ids must lie in [0, {self.table.shape[0]}), got {rows.min().item()}..{rows.max().item()}"
            )
        return Encoded(pooled=self.table[rows], tokens=None, mask=None)
