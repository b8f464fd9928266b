"""Turn a list of samples into one batch dict following the project's batch conventions.

- ``"image"``: tensors [C, H, W] stacked → [B, C, H, W] (apply an ImageTransform first).
- ``"audio"``: log-mels [n_mels, T_i] right-padded with zeros → [B, n_mels, T]
  or waveforms [T_i] → [B, T]; either way ``"audio_mask"`` [B, T] (True = real frame/sample).
- ``"text"``: strings tokenized when a tokenizer is given → LongTensor [B, L] and
  ``"text_mask"`` [B, L]; the strings are kept under ``"text_raw"`` (for BLEU,
  logging). Without a tokenizer strings stay a list.
- ``"label"`` → LongTensor [B]; every other key stays a Python list.

``None`` samples (items a dataset skipped under ``on_error="skip"``) are dropped
and counted in ``dropped``; a batch in which every sample was skipped comes out
as ``None``, which the training loop should skip.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from chorus.data.text import TextTokenizer
from chorus.errors import DataError

logger = logging.getLogger("chorus.data")
Sample = dict[str, Any]


def pad_time(items: Sequence[Tensor], key: str) -> tuple[Tensor, Tensor]:
    """Right-pad tensors along their last axis → (stacked [B, ..., T], mask [B, T])."""
    leading = {tuple(x.shape[:-1]) for x in items}
    if len(leading) != 1:
        raise DataError(f"collate: {key!r} tensors differ in leading shape {sorted(leading)}")
    lengths = torch.tensor([x.shape[-1] for x in items])
    longest = int(lengths.max())
    out = items[0].new_zeros((len(items), *items[0].shape[:-1], longest))
    for i, x in enumerate(items):
        out[i, ..., : x.shape[-1]] = x
    mask = torch.arange(longest)[None, :] < lengths[:, None]
    return out, mask


class Collate:
    """``collate_fn`` for DataLoader; see the module docstring for the batch layout."""

    def __init__(self, tokenizer: TextTokenizer | None = None, context_length: int = 77) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.dropped = 0

    def __call__(self, samples: Sequence[Sample | None]) -> dict[str, Any] | None:
        kept = [s for s in samples if s is not None]
        if len(kept) < len(samples):
            self.dropped += len(samples) - len(kept)
            logger.info("collate: dropped %d skipped sample(s)", len(samples) - len(kept))
        if not kept:
            return None
        keys = set(kept[0])
        for s in kept[1:]:
            if set(s) != keys:
                raise DataError(f"collate: samples have different keys {sorted(keys)} vs {sorted(s)}")
        batch: dict[str, Any] = {}
        for key in kept[0]:
            values = [s[key] for s in kept]
            if key == "image":
                if not all(isinstance(v, Tensor) for v in values):
                    raise DataError("collate: 'image' must be tensors; add an ImageTransform to the dataset")
                shapes = {tuple(v.shape) for v in values}
                if len(shapes) != 1:
                    raise DataError(f"collate: images differ in shape {sorted(shapes)}")
                batch["image"] = torch.stack(values)
            elif key == "audio":
                if not all(isinstance(v, Tensor) and v.dim() in (1, 2) for v in values):
                    raise DataError("collate: 'audio' must be waveforms [T] or log-mels [n_mels, T]")
                batch["audio"], batch["audio_mask"] = pad_time(values, "audio")
            elif key == "text" and self.tokenizer is not None:
                batch["text"], batch["text_mask"] = self.tokenizer(values, self.context_length)
                batch["text_raw"] = values
            elif key == "label":
                batch["label"] = torch.as_tensor(values, dtype=torch.long)
            else:
                batch[key] = values
        return batch
