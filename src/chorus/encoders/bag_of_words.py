"""``bag_of_words``: the mean of learned token embeddings, the classical text baseline.

What: each token id has an embedding; the text is the mean of its real
tokens' embeddings (Zhou et al. 2015, "Simple Baseline for Visual Question
Answering", fed such a bag of words to a linear classifier beside CNN image
features). ``tokens`` are causal running means — position ``t`` holds the mean
of tokens ``0..t`` — so the last real token pools the whole text, the same
convention as ``text_transformer``, and fusions that read the end-of-text
position get the bag.

Why/when: every word reaches the output through one linear path that training
cannot close: the mean changes whenever a word changes, so a model downstream
can always read which colour or relation a question names. A transformer
trained from scratch can learn to discard a word that does not help yet (and
then has no gradient to learn it back); a bag of words cannot. It ignores word
order, which suffices for templated questions; use ``text_transformer`` or
``minilm`` where order carries meaning.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from chorus.encoders.base import Encoded
from chorus.encoders.factory import ENCODERS
from chorus.encoders.inputs import check_token_ids


@ENCODERS.register("bag_of_words")
class BagOfWords(nn.Module):
    """Mean of token embeddings; ``out_dim = width``."""

    modality = "text"
    sizes = {"tiny": {"width": 64}, "small": {"width": 256}, "base": {"width": 512}}

    def __init__(self, width: int, vocab_size: int = 49408, context_length: int = 77, init_std: float = 1.0) -> None:
        super().__init__()
        self.vocab_size, self.context_length, self.out_dim = vocab_size, context_length, width
        self.token_embedding = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.token_embedding.weight, std=init_std)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Encoded:
        """``x`` [B, L] token ids, ``mask`` [B, L] True = real token."""
        check_token_ids(x, mask, self.vocab_size, self.context_length, "bag_of_words")
        real = torch.ones_like(x, dtype=torch.bool) if mask is None else mask
        weights = real.unsqueeze(-1).to(self.token_embedding.weight.dtype)
        summed = (self.token_embedding(x) * weights).cumsum(dim=1)
        tokens = summed / weights.cumsum(dim=1).clamp(min=1)
        pooled = summed[:, -1] / weights.sum(dim=1).clamp(min=1)
        return Encoded(pooled=pooled, tokens=tokens, mask=real)
