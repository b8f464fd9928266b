"""Captioning without a decoder: return existing captions found through an embedding space.

The two baselines every generative captioner here is compared with:

- :func:`nearest_neighbour_captions` — Devlin et al. 2015, "Exploring Nearest
  Neighbor Approaches for Image Captioning": the ``k`` training images nearest
  to the query image (cosine, image embeddings) pool their captions, and the
  consensus caption (highest CIDEr-D against the other candidates,
  :func:`~chorus.eval.caption_metrics.consensus_index`) is returned. Strong on
  COCO because many photos share a scene type.
- :func:`retrieve_captions` — cross-modal retrieval: the caption of a text-only
  corpus whose embedding is nearest to the image's in a shared image–text
  (CLIP) space. It needs no paired image for the corpus, only the space.

Both return human-written text, so they are fluent by construction; what they
measure is how well the embedding finds the right content.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from chorus.errors import DataError
from chorus.eval.caption_metrics import consensus_index


def nearest_neighbour_captions(
    queries: Tensor, gallery: Tensor, gallery_captions: Sequence[Sequence[str]], k: int = 5
) -> list[str]:
    """For each query embedding [Nq, D]: the consensus caption of its ``k`` nearest gallery images [Ng, D]."""
    if gallery.shape[0] != len(gallery_captions):
        raise DataError(f"{gallery.shape[0]} gallery embeddings but {len(gallery_captions)} caption lists")
    k = min(k, gallery.shape[0])
    nearest = (queries.float() @ gallery.float().T).topk(k, dim=-1).indices
    out = []
    for row in nearest.tolist():
        candidates = [c for i in row for c in gallery_captions[i]]
        out.append(candidates[consensus_index(candidates)])
    return out


def retrieve_captions(queries: Tensor, corpus: Tensor, texts: Sequence[str]) -> list[str]:
    """For each query embedding [Nq, D]: the text whose embedding (row of ``corpus`` [Nt, D]) is most similar."""
    if corpus.shape[0] != len(texts):
        raise DataError(f"{corpus.shape[0]} text embeddings but {len(texts)} texts")
    best = torch.argmax(queries.float() @ corpus.float().T, dim=-1)
    return [texts[i] for i in best.tolist()]
