"""``text_transformer``: CLIP's text tower over BPE token ids.

What: Radford et al. 2021 (CLIP), text side: token embedding + learned
positional embedding, the shared pre-LN
:class:`~chorus.encoders.transformer.Transformer` with causal attention (a
GPT-2-style language-model layout, Radford et al. 2019), ``ln_final``, and an
optional bias-free projection ``proj`` [width, output_dim] (``x @ proj``).
Names and shapes follow OpenCLIP's ``TextTransformer`` (``token_embedding``,
``positional_embedding``, ``transformer.resblocks.*``, ``ln_final``; its
``text_projection`` is our ``proj``), so CLIP weights load one-to-one.

Pooling: ``pooled`` is the feature at the end-of-text position, taken as the
last real token of each row of the mask. With CLIP's tokenisation (EOT last,
padding after it) this equals CLIP's ``argmax(ids)`` pooling, and it needs no
assumption about which id EOT has. With causal attention that position is the
only one that has seen the whole text. ``tokens`` are all positions after
``ln_final`` (and ``proj``), with the input mask.

Why/when: the text encoder to train CLIP from scratch or to load CLIP's
pretrained text tower; for frozen off-the-shelf sentence features prefer
``minilm``. ``causal=False`` gives a bidirectional encoder (padding then
handled by the key mask), which a mean-pooled baseline would use.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.inputs import check_token_ids
from chorus.encoders.masking import last_real_index, mask_or_all_real
from chorus.encoders.transformer import Activation, Transformer


@ENCODERS.register("text_transformer")
class TextTransformer(nn.Module):
    """CLIP-style text encoder; ``out_dim = output_dim`` if set, else ``width``."""

    modality = "text"
    sizes = {
        "tiny": {"width": 64, "layers": 2, "heads": 2},
        "small": {"width": 256, "layers": 4, "heads": 4},
        "base": {"width": 512, "layers": 12, "heads": 8, "output_dim": 512},
    }

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        vocab_size: int = 49408,
        context_length: int = 77,
        mlp_ratio: float = 4.0,
        act: Activation = "gelu",
        output_dim: int | None = None,
        ln_eps: float = 1e-5,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, act, ln_eps, causal=causal)
        self.ln_final = nn.LayerNorm(width, eps=ln_eps)
        self.proj = nn.Parameter(width**-0.5 * torch.randn(width, output_dim)) if output_dim else None
        self.out_dim = output_dim or width

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        """``x`` [B, L] token ids (L <= context_length), ``mask`` [B, L] True = real token."""
        check_token_ids(x, mask, self.vocab_size, self.context_length, "text_transformer")
        b, n = x.shape
        h = self.token_embedding(x) + self.positional_embedding[:n]
        h = self.ln_final(self.transformer(h, mask))
        if self.proj is not None:
            h = h @ self.proj
        pooled = h[torch.arange(b, device=x.device), last_real_index(mask, n, b, x.device)]
        return Encoded(pooled=pooled, tokens=h, mask=mask_or_all_real(mask, h))
